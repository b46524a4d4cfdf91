package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/internal/enumword"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Human output of the client subcommands. Times are printed in the reader's time
// zone (--time-zone, or TZ); the reasons' sentences come from the server as they
// are (their times are UTC there, so they read the same in every log).

// printJSON prints an API message as the HTTP API answers it: protojson with its
// defaults (lowerCamelCase field names, enum names, unset fields left out),
// indented by two spaces. protojson varies its spacing from build to build on
// purpose; its compact form re-indented by encoding/json is stable.
func printJSON(cmd *cobra.Command, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = cmd.OutOrStdout().Write(buf.Bytes())
	return err
}

// timeLayout prints a time for a person: weekday, date, time and zone.
const timeLayout = "Mon 2006-01-02 15:04:05 MST"

func verdictWord(v sgv1.Verdict) string   { return enumword.Verdicts.Upper(v) }
func ruleWord(r sgv1.Rule) string         { return enumword.Rules.Upper(r) }
func categoryWord(c sgv1.Category) string { return enumword.Categories.Lower(c) }

// printer formats for one reader: a time zone and a reference time ("in 3h").
type printer struct {
	w   io.Writer
	loc *time.Location
	ref time.Time // relative times are measured from here; zero: none printed
}

func (p *printer) time(t time.Time) string { return t.In(p.loc).Format(timeLayout) }

func (p *printer) ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return p.time(t.AsTime())
}

// when prints a time and how far it is from the reference time.
func (p *printer) when(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	s := p.ts(t)
	if p.ref.IsZero() {
		return s
	}
	d := t.AsTime().Sub(p.ref)
	switch {
	case d > 0:
		return s + " (in " + humanDuration(d) + ")"
	case d < 0:
		return s + " (" + humanDuration(-d) + " ago)"
	}
	return s
}

func (p *printer) f(format string, args ...any) { fmt.Fprintf(p.w, format, args...) }

// humanDuration prints a duration to the minute: "3d04h", "18h07m", "4m30s", "12s".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd%02dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// verdictLine says what to do about a decision.
func (p *printer) verdictLine(resp *sgv1.CheckSendResponse) string {
	switch resp.GetVerdict() {
	case sgv1.Verdict_VERDICT_ALLOW:
		if resp.GetDuplicate() {
			// The send was reserved before, by this message_ref: the headline
			// must not say to send it again, nor start as an ALLOW does (a
			// script may read only this line); validate's word for it.
			return "DUPLICATE: already reserved; do not send it twice"
		}
		return "ALLOW: send it"
	case sgv1.Verdict_VERDICT_DEFER:
		return "DEFER: do not send now; retry at " + p.when(resp.GetRetryAt())
	case sgv1.Verdict_VERDICT_DENY:
		return "DENY: do not send"
	}
	if e := resp.GetError(); e != nil {
		return "ERROR: " + e.GetMessage()
	}
	return verdictWord(resp.GetVerdict())
}

// recipient names who a decision is about.
func recipient(phoneE164, waID, userID, fallback string) string {
	var parts []string
	if phoneE164 != "" {
		parts = append(parts, phoneE164)
	}
	if waID != "" && waID != strings.TrimPrefix(phoneE164, "+") {
		parts = append(parts, "WhatsApp ID "+waID)
	}
	if userID != "" {
		parts = append(parts, "user "+userID)
	}
	if len(parts) == 0 {
		return fallback
	}
	return strings.Join(parts, ", ")
}

// reasons prints each reason as a sentence under a one-line heading.
func (p *printer) reasons(indent string, rs []*sgv1.Reason) {
	for i, r := range rs {
		head := ruleWord(r.GetRule())
		var notes []string
		if r.GetVerdict() != sgv1.Verdict_VERDICT_UNSPECIFIED {
			notes = append(notes, verdictWord(r.GetVerdict()))
		}
		if c := r.GetMetaErrorCode(); c != 0 {
			notes = append(notes, fmt.Sprintf("Meta would answer %d", c))
		}
		if r.GetUntil() != nil {
			notes = append(notes, "until "+p.ts(r.GetUntil()))
		}
		if r.GetShadow() {
			notes = append(notes, "shadow: not blocking")
		}
		if len(notes) > 0 {
			head += " (" + strings.Join(notes, "; ") + ")"
		}
		p.f("%s%d. %s\n%s   %s\n", indent, i+1, head, indent, r.GetDetail())
	}
}

// checkView is what `sendguard check` prints around a decision.
type checkView struct {
	phone, userID string
	category      sgv1.Category
	template      string
	language      string    // the template's, "" any
	sendAt        time.Time // zero: now
	messageRef    string    // set when reserving
}

// writeDecision prints one decision for a person.
func writeDecision(p *printer, v checkView, resp *sgv1.CheckSendResponse) {
	p.f("%s\n", p.verdictLine(resp))
	p.f("  to:       %s\n", recipient(resp.GetPhoneE164(), resp.GetWaId(), resp.GetUserId(), strings.TrimSpace(v.phone+" "+v.userID)))
	what := categoryWord(v.category)
	if v.template != "" {
		what += fmt.Sprintf(" template %q", v.template)
		if v.language != "" {
			what += " (" + v.language + ")"
		}
	}
	if v.sendAt.IsZero() {
		what += ", now"
	} else {
		what += ", at " + p.time(v.sendAt)
	}
	p.f("  send:     %s\n", what)
	if eff := resp.GetEffectiveCategory(); eff != sgv1.Category_CATEGORY_UNSPECIFIED && eff != v.category {
		p.f("  judged:   as %s: Meta treats this template as %s\n", categoryWord(eff), categoryWord(eff))
	}
	if v.messageRef != "" {
		switch {
		case resp.GetDuplicate():
			p.f("  reserved: already, by an earlier check with message_ref %q: nothing new was counted; do not send it twice\n", v.messageRef)
		case resp.GetVerdict() == sgv1.Verdict_VERDICT_ALLOW:
			p.f("  reserved: yes, as message_ref %q (it counts toward the caps from now on)\n", v.messageRef)
		default:
			p.f("  reserved: no (nothing was counted; the message_ref %q is still free)\n", v.messageRef)
		}
	}
	if w := resp.GetServiceWindowUntil(); w != nil {
		p.f("  window:   the customer service window is open until %s\n", p.ts(w))
	}
	if resp.GetShadow() {
		p.f("  shadow:   a rule in shadow mode would have blocked this send\n")
	}
	if len(resp.GetReasons()) > 0 {
		p.f("  why:\n")
		p.reasons("    ", resp.GetReasons())
	}
}

// writeContact prints everything GetContact returned about a recipient.
func writeContact(p *printer, business, asked string, c *sgv1.Contact) {
	p.f("%s for business %s\n", recipient(c.GetPhoneE164(), c.GetWaId(), c.GetUserId(), asked), business)
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	switch {
	case c.GetOptedOut() && c.GetMetaOptedOut():
		row("opt-out:", "opted out here and at Meta (131050); since "+p.ts(c.GetOptedOutAt())+reasonSuffix(c.GetOptOutReason()))
	case c.GetOptedOut():
		row("opt-out:", "opted out of this business's marketing on "+p.ts(c.GetOptedOutAt())+reasonSuffix(c.GetOptOutReason()))
	case c.GetMetaOptedOut():
		row("opt-out:", "Meta recorded a stop (131050) on "+p.ts(c.GetOptedOutAt())+"; only Meta's resume lifts it")
	case c.GetSuppressed():
		row("opt-out:", "forgotten after opting out: a suppression entry still blocks marketing")
	default:
		row("opt-out:", "none")
	}
	if c.GetConsentAt() != nil {
		row("consent:", "opted in on "+p.ts(c.GetConsentAt())+reasonSuffix(c.GetConsentReason()))
	} else {
		row("consent:", "none recorded")
	}
	if c.GetLastInboundAt() != nil {
		row("last inbound:", p.ts(c.GetLastInboundAt()))
	} else {
		row("last inbound:", "never")
	}
	if c.GetServiceWindowUntil() != nil {
		row("window:", "open until "+p.ts(c.GetServiceWindowUntil()))
	} else {
		row("window:", "closed")
	}
	if c.GetFreeEntryWindowUntil() != nil { // shown only when open: few users come from ads
		row("free entry window:", "open until "+p.ts(c.GetFreeEntryWindowUntil()))
	}
	_ = tw.Flush()

	writeRestrictions(p, c.GetRestrictions())

	if n := c.GetNumber(); n != nil && hasFacts(n) {
		p.f("number-wide facts (what Meta holds about the number for every business):\n")
		tw = tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
		if n.GetEcosystemUntil() != nil {
			fmt.Fprintf(tw, "  131049 cooldown:\tuntil %s\t(last %s, streak %d)\n", p.ts(n.GetEcosystemUntil()), p.ts(n.GetEcosystemLimitedAt()), n.GetEcosystemStreak())
		}
		if n.GetExperimentUntil() != nil {
			fmt.Fprintf(tw, "  130472 experiment:\tuntil %s\t(last %s)\n", p.ts(n.GetExperimentUntil()), p.ts(n.GetExperimentAt()))
		}
		if n.GetUndeliverableUntil() != nil {
			fmt.Fprintf(tw, "  131026 backoff:\tuntil %s\t(last %s, streak %d)\n", p.ts(n.GetUndeliverableUntil()), p.ts(n.GetUndeliverableAt()), n.GetUndeliverableStreak())
		}
		if n.GetLastDeliveredAt() != nil {
			fmt.Fprintf(tw, "  last delivered:\t%s\n", p.ts(n.GetLastDeliveredAt()))
		}
		_ = tw.Flush()
	}

	if sends := c.GetSends(); len(sends) > 0 {
		p.f("recent sends (%d):\n", len(sends))
		tw = tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
		for _, s := range sends {
			var notes []string
			if s.GetTemplate() != "" {
				notes = append(notes, fmt.Sprintf("template %q", s.GetTemplate()))
			}
			if s.GetCampaignId() != "" {
				notes = append(notes, "campaign "+s.GetCampaignId())
			}
			if s.GetMessageRef() != "" {
				notes = append(notes, "ref "+s.GetMessageRef())
			}
			if s.GetMessageId() != "" {
				notes = append(notes, s.GetMessageId())
			}
			if s.GetFailed() {
				notes = append(notes, "failed: not counted toward the caps")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.ts(s.GetAt()), categoryWord(s.GetCategory()), strings.Join(notes, ", "))
		}
		_ = tw.Flush()
	}

	if evs := c.GetEvents(); len(evs) > 0 {
		p.f("recent events (newest first):\n")
		for _, e := range evs {
			p.f("  %s  %s\n", p.ts(e.GetAt()), e.GetDescription())
		}
	} else {
		p.f("recent events: none\n")
	}

	p.f("decisions now:\n")
	for _, d := range c.GetDecisions() {
		resp := d.GetDecision()
		p.f("  %-15s %s\n", categoryWord(d.GetCategory())+":", p.verdictLine(resp))
		if len(resp.GetReasons()) > 0 {
			p.reasons("    ", resp.GetReasons())
		}
	}
}

// writeRestrictions prints the account and sender restrictions in force.
func writeRestrictions(p *printer, rs []*sgv1.Restriction) {
	if len(rs) == 0 {
		return
	}
	p.f("restrictions in force (the account and its sending numbers, for every recipient):\n")
	for _, r := range rs {
		who := "the account"
		switch {
		case r.GetSender() != "":
			who = "sender " + r.GetSender()
		case r.GetRule() == sgv1.Rule_RULE_SENDER_LIMITED:
			who = "every sender"
		}
		until := "until lifted"
		if r.GetUntil() != nil {
			until = "until " + p.ts(r.GetUntil())
		}
		p.f("  %s %d (%s, %s; %s)\n    %s\n", ruleWord(r.GetRule()), r.GetMetaErrorCode(), who,
			verdictWord(r.GetVerdict()), until, r.GetDetail())
	}
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

func hasFacts(n *sgv1.NumberFacts) bool {
	return n.GetEcosystemUntil() != nil || n.GetExperimentUntil() != nil || n.GetUndeliverableUntil() != nil || n.GetLastDeliveredAt() != nil
}

// plurals is n with the singular or the plural form given.
func plurals(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
