package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/internal/buildinfo"
)

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the revision it was built from and the Go version (also --version)",
		Long: `Print which build this is: its version, the VCS revision it was built from and
the Go version that built it. A running server exports the same as the
sendguard_build_info metric on /metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), versionText())
			return err
		},
	}
}

// versionText is what `sendguard version` and `sendguard --version` print.
func versionText() string {
	b := buildinfo.Get()
	rev := b.Revision
	if b.Modified {
		rev += " (with uncommitted changes)"
	}
	return fmt.Sprintf("sendguard %s\n  revision: %s\n  go:       %s\n", b.Version, rev, b.GoVersion)
}
