// Command sendguard runs the sendguard server (serve) and talks to one.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "sendguard:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "sendguard",
		Short:         "Ask before every WhatsApp send: ALLOW, DEFER or DENY, from each number's history",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), replayCmd(), keygenCmd())
	root.AddCommand(backupCmd(), restoreCmd())
	root.AddCommand(benchCmd())
	root.AddCommand(clientCmds()...)
	return root
}
