package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/client"
	"github.com/sendguard/sendguard/internal/enumword"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func reportCmd() *cobra.Command {
	var (
		business, phone, userID, messageID, messageRef, statusFlag string
		errorTitle, category, template, campaign, at, region       string
		sender, language, pricing                                  string
		errorCode                                                  int32
		asJSON                                                     bool
	)
	cmd := &cobra.Command{
		Use:   "report --business B --phone P --status STATUS --message-id WAMID [flags]",
		Short: "Record what happened to a send: sent, delivered, read, played, or failed with Meta's error code",
		Long: `Record the send API's answer or a status webhook (ReportResult), e.g. a marketing
template that Meta refused with 131049:

  sendguard report --business acme --phone 5511987654321 --message-id wamid.HBgL001 \
    --status failed --error-code 131049 --category marketing --template black_friday

Reports are idempotent: the same event twice changes nothing the second time
("already recorded"). --message-id (Meta's wamid) or --message-ref (your id of the
send, e.g. from a reservation) is required. --at says when it happened (default now).
` + connHelp,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		loc, err := cf.location()
		if err != nil {
			return err
		}
		if phone == "" && userID == "" {
			return errors.New("--phone or --user-id is required")
		}
		if messageID == "" && messageRef == "" {
			return errors.New("--message-id or --message-ref is required (the report's idempotency key)")
		}
		st, err := parseStatus(statusFlag)
		if err != nil {
			return fmt.Errorf("--status: %w", err)
		}
		if st == sgv1.MessageStatus_MESSAGE_STATUS_FAILED && errorCode == 0 {
			return errors.New("--status failed needs --error-code (Meta's code, e.g. 131049)")
		}
		req := &sgv1.ReportResultRequest{
			BusinessId: business, Phone: phone, UserId: userID, MessageId: messageID, MessageRef: messageRef,
			Status: st, ErrorCode: errorCode, ErrorTitle: errorTitle, Template: template, CampaignId: campaign, Region: region,
			Sender: sender, TemplateLanguage: language, PricingCategory: pricing,
		}
		if category != "" {
			if req.Category, err = parseCategory(category); err != nil {
				return fmt.Errorf("--category: %w", err)
			}
		}
		if req.Timestamp, err = optionalTime("at", at, time.Now(), loc); err != nil {
			return err
		}
		resp, err := callServer(cmd, cf, "ReportResult", func(ctx context.Context, c *client.Client) (*sgv1.ReportResultResponse, error) {
			return c.Report(ctx, req)
		})
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd, resp)
		}
		what := statusWord(st)
		if errorCode != 0 {
			what += fmt.Sprintf(" %d", errorCode)
		}
		who := recipient(resp.GetPhoneE164(), "", userID, phone)
		if resp.GetDuplicate() {
			fmt.Fprintf(cmd.OutOrStdout(), "already recorded: %s for %s; nothing changed\n", what, who)
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "recorded: %s for %s\n", what, who)
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&business, "business", "", "the sender's business_id (required)")
	f.StringVar(&phone, "phone", "", "the recipient's number (Meta's recipient_id is fine)")
	f.StringVar(&userID, "user-id", "", "the recipient's business-scoped user ID (BSUID)")
	f.StringVar(&messageID, "message-id", "", "Meta's message id (wamid)")
	f.StringVar(&messageRef, "message-ref", "", "your id of the send (a reservation's message_ref, or biz_opaque_callback_data)")
	f.StringVar(&statusFlag, "status", "", "sent, delivered, read, played or failed (required)")
	f.Int32Var(&errorCode, "error-code", 0, "Meta's error code, with --status failed (e.g. 131049, 131050, 131026)")
	f.StringVar(&errorTitle, "error-title", "", "Meta's error title (kept for people)")
	f.StringVar(&category, "category", "", "the message's category: marketing, utility, authentication or service")
	f.StringVar(&template, "template", "", "the template name")
	f.StringVar(&language, "template-language", "", "the template's language (e.g. pt_BR): Meta's pauses and categories are per language")
	f.StringVar(&pricing, "pricing-category", "", "Meta's pricing.category of the status, verbatim (marketing or marketing_lite marks the template as marketing)")
	f.StringVar(&sender, "sender", "", "the sending number's phone_number_id (default: the business's only mapped number, else none)")
	f.StringVar(&campaign, "campaign", "", "the campaign id")
	f.StringVar(&at, "at", "", "when it happened (RFC 3339, local \"2026-11-27 10:00\", or -2h; default now)")
	f.BoolVar(&asJSON, "json", false, "print the response as JSON")
	addRegionFlag(cmd, &region)
	_ = cmd.MarkFlagRequired("business")
	_ = cmd.MarkFlagRequired("status")
	return cmd
}

func inboundCmd() *cobra.Command {
	var (
		business, phone, userID, messageID, text, at, region, sender string
		call, asJSON                                                 bool
	)
	cmd := &cobra.Command{
		Use:   "inbound --business B --phone P --message-id ID [--text TEXT | --call] [flags]",
		Short: "Record a message or call from the user: it opens the service window; STOP and START keywords change the opt-out",
		Long: `Record a message or a call from the user (ReportInbound). It opens the 24-hour
customer service window; a text that is an opt-out keyword (STOP, PARAR, …) opts the
user out of this business's marketing, an opt-in keyword (START, …) records consent.
Idempotent by --message-id (Meta's id of the inbound message).
` + connHelp,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		loc, err := cf.location()
		if err != nil {
			return err
		}
		if phone == "" && userID == "" {
			return errors.New("--phone or --user-id is required")
		}
		if call && text != "" {
			return errors.New("--call and --text do not go together")
		}
		req := &sgv1.ReportInboundRequest{BusinessId: business, Phone: phone, UserId: userID, MessageId: messageID, Text: text, Region: region, Sender: sender}
		if call {
			req.Kind = sgv1.InboundKind_INBOUND_KIND_CALL
		}
		now := time.Now()
		if req.Timestamp, err = optionalTime("at", at, now, loc); err != nil {
			return err
		}
		resp, err := callServer(cmd, cf, "ReportInbound", func(ctx context.Context, c *client.Client) (*sgv1.ReportInboundResponse, error) {
			return c.Inbound(ctx, req)
		})
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd, resp)
		}
		p := &printer{w: cmd.OutOrStdout(), loc: loc}
		if at == "" {
			p.ref = now // "in 24h00m" only when the event is now
		}
		what := "message"
		if call {
			what = "call"
		}
		who := recipient(resp.GetPhoneE164(), "", userID, phone)
		if resp.GetDuplicate() {
			p.f("already recorded: %s from %s; nothing changed\n", what, who)
		} else {
			p.f("recorded: %s from %s\n", what, who)
		}
		if w := resp.GetServiceWindowUntil(); w != nil {
			p.f("  window:  the customer service window is open until %s\n", p.when(w))
		}
		if resp.GetOptedOut() {
			p.f("  opt-out: the text is an opt-out keyword: the user is opted out of your marketing\n")
		}
		if resp.GetOptedIn() {
			p.f("  opt-in:  the text is an opt-in keyword: consent is recorded\n")
		}
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&business, "business", "", "the business the user wrote to (required)")
	f.StringVar(&phone, "phone", "", "the user's number (Meta's \"from\")")
	f.StringVar(&userID, "user-id", "", "the user's business-scoped user ID (BSUID)")
	f.StringVar(&messageID, "message-id", "", "Meta's id of the message (the idempotency key)")
	f.StringVar(&text, "text", "", "the text of the message (checked for opt-out and opt-in keywords)")
	f.BoolVar(&call, "call", false, "the user called (instead of writing)")
	f.StringVar(&sender, "sender", "", "the business number written to or called (its phone_number_id)")
	f.StringVar(&at, "at", "", "when it happened (RFC 3339, local \"2026-11-27 10:00\", or -2h; default now)")
	f.BoolVar(&asJSON, "json", false, "print the response as JSON")
	addRegionFlag(cmd, &region)
	_ = cmd.MarkFlagRequired("business")
	return cmd
}

func statusWord(s sgv1.MessageStatus) string { return enumword.Statuses.Lower(s) }
