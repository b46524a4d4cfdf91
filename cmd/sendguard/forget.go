package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func forgetCmd() *cobra.Command {
	var (
		business, userID     string
		forgetOptOut, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "forget [PHONE] --business B [--user-id U] [--forget-opt-out]",
		Short: "Erase what a business holds about a number (an opt-out survives as a suppression entry unless --forget-opt-out)",
		Long: `Erase every record of a recipient for a business (ForgetContact), e.g. for an
erasure request; the number-wide facts go too when no other business holds state for
the number. An opt-out survives as a keyed-hash suppression entry, so that the user
is not messaged again, unless --forget-opt-out. Forgetting twice is harmless.
` + connHelp,
		Args: cobra.MaximumNArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var phone string
		if len(args) == 1 {
			phone = args[0]
		}
		if phone == "" && userID == "" {
			return errors.New("name the recipient: PHONE or --user-id")
		}
		resp, err := callServer(cmd, cf, "ForgetContact", func(ctx context.Context, c *client.Client) (*sgv1.ForgetContactResponse, error) {
			return c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: business, Phone: phone, UserId: userID, ForgetOptOut: forgetOptOut})
		})
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd, resp)
		}
		who := strings.TrimSpace(phone + " " + userID)
		out := cmd.OutOrStdout()
		if resp.GetFound() {
			fmt.Fprintf(out, "forgot %s for business %s: every record erased\n", who, business)
		} else {
			fmt.Fprintf(out, "nothing was stored about %s for business %s\n", who, business)
		}
		switch {
		case resp.GetSuppressed():
			fmt.Fprintf(out, "the opt-out is kept as a suppression entry (a keyed hash): marketing stays blocked; --forget-opt-out erases it too\n")
		case forgetOptOut:
			fmt.Fprintf(out, "no opt-out is kept: a later marketing check may allow this number\n")
		}
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&business, "business", "", "the business (required)")
	f.StringVar(&userID, "user-id", "", "the recipient's business-scoped user ID (BSUID)")
	f.BoolVar(&forgetOptOut, "forget-opt-out", false, "erase the opt-out too (otherwise it survives as a suppression entry)")
	f.BoolVar(&asJSON, "json", false, "print the response as JSON")
	_ = cmd.MarkFlagRequired("business")
	return cmd
}
