package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/server"
)

func keygenCmd() *cobra.Command {
	var (
		name       string
		businesses []string
		admin      bool
	)
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make a new API key and the config entry that stores its hash",
		Long: `Print a new random API key (give it to the client; sendguard never stores it) and the
api_keys entry for the server's config file, which keeps only the key's SHA-256.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			key := "sg_" + base64.RawURLEncoding.EncodeToString(b)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "API key (give it to the client as SENDGUARD_API_KEY; it is shown once):\n  %s\n\n", key)
			fmt.Fprintf(out, "Config entry (api_keys in the server's config file):\n")
			fmt.Fprintf(out, "  - name: %s\n    sha256: %s\n    businesses: [%s]\n    admin: %v\n", name, server.HashAPIKey(key), quoteList(businesses), admin)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "client", "a name for the key (in logs)")
	f.StringSliceVar(&businesses, "business", []string{"*"}, `business_ids the key may act for ("*" for all); repeat or comma-separate`)
	f.BoolVar(&admin, "admin", false, "admin scope: policies and ForgetContact")
	return cmd
}

func quoteList(xs []string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", x)
	}
	return s
}
