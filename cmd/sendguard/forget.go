package main

import (
	"context"
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func forgetCmd() *cobra.Command {
	var (
		business, userID, region string
		forgetOptOut, asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "forget [PHONE] --business B [--user-id U] [--forget-opt-out]",
		Short: "Erase what a business holds about a number (an opt-out survives as a suppression entry unless --forget-opt-out)",
		Long: `Erase every record of a recipient for a business (ForgetContact), e.g. for an
erasure request: its relationship with the business (opt-out and consent, sends,
events, the service window) and its user ID link; the number-wide facts (131049,
130472, 131026) go too when no other business holds state for the number. An
opt-out survives as a keyed-hash suppression entry, so that the user is not
messaged again, unless --forget-opt-out. Forgetting twice is harmless.
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
			return c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: business, Phone: phone, UserId: userID, ForgetOptOut: forgetOptOut, Region: region})
		})
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd, resp)
		}
		writeForget(&printer{w: cmd.OutOrStdout()}, business, strings.TrimSpace(phone+" "+userID), forgetOptOut, resp)
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&business, "business", "", "the business (required)")
	f.StringVar(&userID, "user-id", "", "the recipient's business-scoped user ID (BSUID)")
	f.BoolVar(&forgetOptOut, "forget-opt-out", false, "erase the opt-out too (otherwise it survives as a suppression entry)")
	f.BoolVar(&asJSON, "json", false, "print the response as JSON")
	addRegionFlag(cmd, &region)
	_ = cmd.MarkFlagRequired("business")
	return cmd
}

// writeForget says what a ForgetContact erased and what it kept. The answer
// says whether anything was stored (found) and whether an opt-out is kept as a
// suppression entry; whether the number-wide facts went too is not in it (they
// go when no other business holds state for the number), so it is said as the
// rule it is.
func writeForget(p *printer, business, who string, forgetOptOut bool, resp *sgv1.ForgetContactResponse) {
	if resp.GetFound() {
		p.f("forgot %s for business %s\n", who, business)
		p.f("  erased:  its relationship with %s: opt-out and consent, sends, events, the service window and any user ID link\n", business)
		p.f("  number:  the number-wide facts (131049 cooldown, 130472, 131026 backoff) are erased too unless another business holds state for the number\n")
	} else {
		p.f("nothing was stored about %s for business %s\n", who, business)
	}
	switch {
	case resp.GetSuppressed():
		p.f("  opt-out: kept as a suppression entry (a keyed hash, no number): marketing to it stays blocked; --forget-opt-out erases it\n")
	case forgetOptOut:
		p.f("  opt-out: none kept: any suppression entry for it was dropped, and a later marketing check may allow it\n")
	case resp.GetFound():
		p.f("  opt-out: none (it had not opted out)\n")
	}
}
