// Command sendguard runs the sendguard server (serve) and talks to one.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/internal/buildinfo"
)

func main() {
	err := rootCmd().Execute()
	if err == nil {
		return
	}
	var ex *exitError
	if errors.As(err, &ex) {
		if ex.err != nil {
			fmt.Fprintln(os.Stderr, "sendguard:", ex.err)
		}
		os.Exit(ex.code)
	}
	fmt.Fprintln(os.Stderr, "sendguard:", err)
	os.Exit(1)
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "sendguard",
		Short:         "Ask before every WhatsApp send: ALLOW, DEFER or DENY, from each number's history",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Get().Version, // --version prints versionText
	}
	root.SetVersionTemplate(versionText())
	root.AddGroup(
		&cobra.Group{ID: groupServer, Title: "Server and its data:"},
		&cobra.Group{ID: groupClient, Title: "Client (calls a running server):"},
	)
	for _, c := range []*cobra.Command{serveCmd(), keygenCmd(), backupCmd(), restoreCmd()} {
		c.GroupID = groupServer
		root.AddCommand(c)
	}
	for _, c := range append(clientCmds(), replayCmd()) {
		c.GroupID = groupClient
		root.AddCommand(c)
	}
	root.AddCommand(versionCmd())
	return root
}

// The groups of the root command's help (the load command is apart:
// cmd/sendguard-bench).
const (
	groupServer = "server"
	groupClient = "client"
)

// exitUnreadLines is the exit status of a run that completed but found lines
// of its input that are not CSV (reported and skipped), or, for optout --in,
// rows it could not import (an invalid number). Beside it: 0 success, 1 could
// not run, exitInterrupted (130) for SIGINT or SIGTERM.
const exitUnreadLines = 3

// exitError ends the process with code, printing err (nil: nothing more to say).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }
