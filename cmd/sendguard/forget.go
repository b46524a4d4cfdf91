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
		loc, err := cf.location()
		if err != nil {
			return err
		}
		c, err := cf.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		req := &sgv1.ForgetContactRequest{BusinessId: business, Phone: phone, UserId: userID, ForgetOptOut: forgetOptOut, Region: region}
		if asJSON {
			resp, err := c.Forget(cmd.Context(), req)
			if err != nil {
				return callError("ForgetContact", cf.addr, err)
			}
			return printJSON(cmd, resp)
		}
		before, resp, err := forgetOne(cmd.Context(), c, cf.addr, req)
		if err != nil {
			return err
		}
		who := recipient(before.GetPhoneE164(), "", userID, strings.TrimSpace(phone+" "+userID))
		writeForget(&printer{w: cmd.OutOrStdout(), loc: loc}, business, who, forgetOptOut, before, resp)
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

// forgetOne reads the contact (GetContact), to say what the forget erases, and
// forgets it. What it says is the state just before the forget: an event
// recorded between the two calls is erased too but not listed. addr names the
// server in errors.
func forgetOne(ctx context.Context, c *client.Client, addr string, req *sgv1.ForgetContactRequest) (*sgv1.Contact, *sgv1.ForgetContactResponse, error) {
	before, err := c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: req.GetBusinessId(), Phone: req.GetPhone(), UserId: req.GetUserId(), Region: req.GetRegion()})
	if err != nil {
		return nil, nil, callError("GetContact", addr, err)
	}
	resp, err := c.Forget(ctx, req)
	if err != nil {
		return nil, nil, callError("ForgetContact", addr, err)
	}
	return before, resp, nil
}

// writeForget says what a ForgetContact erased, item by item as the contact read
// just before it (before) holds them, a suppression entry of an earlier forget
// included, and what it kept. Whether the number-wide facts went too is not in
// the answer (they go when no other business holds state for the number), so
// it is said as the rule it is.
func writeForget(p *printer, business, who string, forgetOptOut bool, before *sgv1.Contact, resp *sgv1.ForgetContactResponse) {
	erased := erasedItems(p, before, forgetOptOut)
	if !resp.GetFound() && len(erased) == 0 {
		if resp.GetSuppressed() {
			p.f("nothing is stored about %s for business %s but the suppression entry of an earlier forget\n", who, business)
			p.f("  kept:    that suppression entry (a keyed hash, no number): marketing to it stays blocked; --forget-opt-out erases it\n")
			return
		}
		p.f("nothing was stored about %s for business %s\n", who, business)
		return
	}
	p.f("forgot %s for business %s\n", who, business)
	for i, item := range erased {
		head := "  erased:  "
		if i > 0 {
			head = "           "
		}
		p.f("%s%s\n", head, item)
	}
	if hasFacts(before.GetNumber()) {
		p.f("  number:  the number-wide facts (%s) are erased too unless another business holds state for the number\n", numberFacts(p, before.GetNumber()))
	}
	optedOut := before.GetOptedOut() || before.GetMetaOptedOut() || before.GetSuppressed()
	switch {
	case resp.GetSuppressed():
		p.f("  kept:    the opt-out, as a suppression entry (a keyed hash, no number): marketing to it stays blocked; --forget-opt-out erases it\n")
	case forgetOptOut && optedOut:
		p.f("  kept:    nothing: with --forget-opt-out no suppression entry is kept, and a later marketing check may allow it\n")
	default:
		p.f("  kept:    nothing (it had not opted out)\n")
	}
}

// erasedItems lists what a forget erases of a contact, one line each.
func erasedItems(p *printer, c *sgv1.Contact, forgetOptOut bool) []string {
	var items []string
	if c.GetMetaOptedOut() {
		items = append(items, "Meta's opt-out record (131050)")
	}
	if c.GetOptedOut() {
		items = append(items, "the business's opt-out of "+p.ts(c.GetOptedOutAt())+reasonSuffix(c.GetOptOutReason()))
	}
	if c.GetSuppressed() && forgetOptOut {
		items = append(items, "the suppression entry an earlier forget left (it blocked marketing to it)")
	}
	if c.GetConsentAt() != nil {
		items = append(items, "the consent of "+p.ts(c.GetConsentAt())+reasonSuffix(c.GetConsentReason()))
	}
	var history []string
	if n := len(c.GetSends()); n > 0 {
		history = append(history, plural(n, "send"))
	}
	if n := len(c.GetEvents()); n > 0 {
		history = append(history, plural(n, "event"))
	}
	if c.GetLastInboundAt() != nil {
		history = append(history, "the time of the last inbound message ("+p.ts(c.GetLastInboundAt())+")")
	}
	if c.GetServiceWindowUntil() != nil {
		history = append(history, "the service window (open until "+p.ts(c.GetServiceWindowUntil())+")")
	}
	if c.GetFreeEntryWindowUntil() != nil {
		history = append(history, "the free entry point window (open until "+p.ts(c.GetFreeEntryWindowUntil())+")")
	}
	if len(history) > 0 {
		items = append(items, strings.Join(history, ", "))
	}
	if c.GetUserId() != "" && c.GetPhoneE164() != "" {
		items = append(items, "the link between the number and user "+c.GetUserId())
	}
	return items
}

// numberFacts names the number-wide facts held about a number.
func numberFacts(p *printer, n *sgv1.NumberFacts) string {
	var facts []string
	if u := n.GetEcosystemUntil(); u != nil {
		facts = append(facts, "131049 cooldown until "+p.ts(u))
	}
	if u := n.GetExperimentUntil(); u != nil {
		facts = append(facts, "130472 until "+p.ts(u))
	}
	if u := n.GetUndeliverableUntil(); u != nil {
		facts = append(facts, "131026 backoff until "+p.ts(u))
	}
	if n.GetLastDeliveredAt() != nil {
		facts = append(facts, "last delivered "+p.ts(n.GetLastDeliveredAt()))
	}
	return strings.Join(facts, ", ")
}

// plural counts n things: "1 send", "3 sends".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
