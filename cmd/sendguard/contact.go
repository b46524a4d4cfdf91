package main

import (
	"context"
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func contactCmd() *cobra.Command {
	var (
		business, userID, region, sender string
		asJSON                           bool
	)
	cmd := &cobra.Command{
		Use:   "contact [PHONE] --business B [--user-id U] [--sender PHONE_NUMBER_ID]",
		Short: "Show everything known about a number: opt-out, consent, window, sends, recent events, and why it would be blocked now",
		Long: `Show what sendguard knows about one recipient of a business (GetContact): the opt-out
and consent in force, the service window, the number-wide facts Meta holds (131049
cooldown, 130472 experiment, 131026 backoff), the counted sends, the recent events,
the account and sending-number restrictions in force (131048, 131031...), and the
decision each category would get now, with its reasons (as --sender would get them;
without it, as any sender of the business would). Times are in the local time zone
(TZ).
` + connHelp,
		Args: cobra.MaximumNArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		loc, err := cf.location()
		if err != nil {
			return err
		}
		var phone string
		if len(args) == 1 {
			phone = args[0]
		}
		if phone == "" && userID == "" {
			return errors.New("name the recipient: PHONE or --user-id")
		}
		resp, err := callServer(cmd, cf, "GetContact", func(ctx context.Context, c *client.Client) (*sgv1.GetContactResponse, error) {
			return c.API().GetContact(ctx, &sgv1.GetContactRequest{BusinessId: business, Phone: phone, UserId: userID, Region: region, Sender: sender})
		})
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd, resp)
		}
		p := &printer{w: cmd.OutOrStdout(), loc: loc}
		writeContact(p, business, strings.TrimSpace(phone+" "+userID), resp.GetContact())
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&business, "business", "", "the business (required)")
	f.StringVar(&userID, "user-id", "", "the recipient's business-scoped user ID (BSUID)")
	f.StringVar(&sender, "sender", "", "judge as this sending number (its phone_number_id) would be judged")
	f.BoolVar(&asJSON, "json", false, "print the response as JSON")
	addRegionFlag(cmd, &region)
	_ = cmd.MarkFlagRequired("business")
	return cmd
}
