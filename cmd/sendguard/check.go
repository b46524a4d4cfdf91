package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func checkCmd() *cobra.Command {
	var (
		business, phone, userID, category, template, campaign, sendAt, messageRef, region string
		sender, language                                                                  string
		reserve, asJSON                                                                   bool
	)
	cmd := &cobra.Command{
		Use:   "check [PHONE] --business B [flags]",
		Short: "Ask whether one message may be sent now: ALLOW, DEFER (and until when) or DENY, and why",
		Long: `Ask sendguard about one planned send (CheckSend) and print the decision for a
person: the verdict, each rule that decided as a sentence, and for DEFER the time to
retry, in the local time zone (TZ). --json prints the response as JSON instead.
The recipient is PHONE (or --phone), in any spelling, or --user-id; --region reads
a national spelling such as "(31) 99551-1909".

--send-at judges a planned time instead of now: RFC 3339 (2026-11-27T10:00:00Z), a
local date and time (2026-11-27 10:00), or relative to now (+2h, +1d).

--reserve records the send when it is allowed, atomically per number, so that
concurrent workers cannot both pass a cap; it needs --message-ref, your id for the
send, which makes it safe to repeat (a repeat answers "already reserved").

The exit status is 0 whatever the verdict (read it from the output or --json); it is
non-zero only when the question could not be asked.
` + connHelp,
		Args: cobra.MaximumNArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		loc, err := cf.location()
		if err != nil {
			return err
		}
		if phone, err = recipientArg(args, phone); err != nil {
			return err
		}
		cat, err := parseCategory(category)
		if err != nil {
			return fmt.Errorf("--category: %w", err)
		}
		if phone == "" && userID == "" {
			return errors.New("name the recipient: PHONE (or --phone) or --user-id")
		}
		if reserve && messageRef == "" {
			return errors.New("--reserve needs --message-ref (your id for the send; it makes the reservation safe to repeat)")
		}
		if !reserve && messageRef != "" {
			return errors.New("--message-ref goes with --reserve")
		}
		req := &sgv1.CheckSendRequest{
			BusinessId: business, Phone: phone, UserId: userID, Category: cat,
			Template: template, CampaignId: campaign, Reserve: reserve, MessageRef: messageRef, Region: region,
			Sender: sender, TemplateLanguage: language,
		}
		now := time.Now()
		var at time.Time
		if sendAt != "" {
			if at, err = parseTime(sendAt, now, loc); err != nil {
				return fmt.Errorf("--send-at: %w", err)
			}
			req.SendAt = timestamppb.New(at)
		}
		resp, err := callServer(cmd, cf, "CheckSend", func(ctx context.Context, c *client.Client) (*sgv1.CheckSendResponse, error) {
			return c.Check(ctx, req)
		})
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd, resp)
		}
		ref := at
		if ref.IsZero() {
			ref = now
		}
		writeDecision(&printer{w: cmd.OutOrStdout(), loc: loc, ref: ref}, checkView{
			phone: phone, userID: userID, category: cat, template: template, language: language, sendAt: at, messageRef: messageRef,
		}, resp)
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&business, "business", "", "the sender's business_id (required)")
	f.StringVar(&phone, "phone", "", "the recipient's number, in any spelling (or give it as PHONE)")
	f.StringVar(&userID, "user-id", "", "the recipient's business-scoped user ID (BSUID), for users whose number is hidden")
	f.StringVar(&category, "category", "marketing", "marketing, utility, authentication or service")
	f.StringVar(&template, "template", "", "the template name")
	f.StringVar(&language, "template-language", "", "the template's language (e.g. pt_BR): Meta's pauses and categories are per language (default: any language)")
	f.StringVar(&sender, "sender", "", "the sending number's phone_number_id (default: judged against every sender of the business)")
	f.StringVar(&campaign, "campaign", "", "the campaign id (recorded with a reservation)")
	f.StringVar(&sendAt, "send-at", "", "judge a planned send time instead of now (RFC 3339, local \"2026-11-27 10:00\", or +2h)")
	f.BoolVar(&reserve, "reserve", false, "record the send when it is allowed (needs --message-ref)")
	f.StringVar(&messageRef, "message-ref", "", "your id for the send (with --reserve)")
	f.BoolVar(&asJSON, "json", false, "print the response as JSON")
	addRegionFlag(cmd, &region)
	_ = cmd.MarkFlagRequired("business")
	return cmd
}
