package validator

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sendguard/sendguard/internal/enumword"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Applying events. The server calls these inside one atomic storage update. Events
// arrive more than once (the server drops repeats by key), late and out of order,
// so every update is a max() or is guarded by timestamps: an older event never
// overwrites newer state, and the state after a set of events does not depend on
// their order, except where noted at the update (escalation streaks, which count
// events in time order, and the few guards the stored state cannot support).

// Result is a send's outcome: the send API's answer or a status webhook.
type Result struct {
	Status     sgv1.MessageStatus
	ErrorCode  int32
	Category   sgv1.Category // may be unspecified: then taken from the matching Send if any
	Template   string        // may be empty: then taken from the matching Send (by Ref or MessageID)
	CampaignID string
	MessageID  string
	Ref        string
	At         time.Time
	// Sender is the sender the result is attributed to ("" the implicit
	// sender); a send that names none takes it.
	Sender string
	// Language is the template's language; may be empty: then taken from the
	// matching Send.
	Language string
	// PricingCategory is Meta's pricing.category of a status, verbatim
	// ("marketing", "marketing_lite", "utility", ...; "" unknown): marketing or
	// marketing_lite marks the send's template as marketing.
	PricingCategory string
}

// MarketingPricing reports whether Meta's pricing.category says the message was
// billed as marketing.
func MarketingPricing(category string) bool {
	return category == "marketing" || category == "marketing_lite"
}

// ApplyResult applies a result to the relationship and to the number-wide facts
// the reporting business contributes to (the shared record, or &rel.Local when it
// does not share). It returns the template effect for the business state.
//
// The report is matched to a send by Ref, else by MessageID, and binds the ids,
// category and template the send lacks. Every report carries the send's time or a
// later one, so the send's time becomes the earliest reported (a reservation
// planned later than it was sent moves back). A report that matches no send
// records one (so SENT, DELIVERED and FAILED build the same history in any order):
// a SENT or a delivery as Reserve would, a FAILED as a failed send; none of them
// counts toward the business's messaging limit, which only reservations feed.
func ApplyResult(rel *Relationship, facts *NumberFacts, p *Policy, r Result) TemplateEffect {
	// The sender's state is kept from its first event ("" beyond MaxSenders).
	cat, tmpl, lang, sender := r.Category, r.Template, r.Language, rel.State(r.Sender).Sender
	failed := r.Status == sgv1.MessageStatus_MESSAGE_STATUS_FAILED
	delivered := r.Status == sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED ||
		r.Status == sgv1.MessageStatus_MESSAGE_STATUS_READ || r.Status == sgv1.MessageStatus_MESSAGE_STATUS_PLAYED
	if i := matchSend(rel, r.Ref, r.MessageID); i >= 0 {
		s := &rel.Sends[i]
		bind(&s.Category, &cat)
		bindString(&s.Template, &tmpl)
		bindString(&s.Language, &lang)
		bindString(&s.Ref, &r.Ref)
		bindString(&s.MessageID, &r.MessageID)
		bindString(&s.CampaignID, &r.CampaignID)
		bindString(&s.Sender, &sender)
		s.Delivered = s.Delivered || delivered
		s.Failed = (s.Failed || failed) && !s.Delivered
		// The send time is known once a SENT names it; a report that moves it
		// earlier makes it the report's time, known only for a SENT.
		earlier := !r.At.IsZero() && r.At.Before(s.At)
		switch {
		case r.Status == sgv1.MessageStatus_MESSAGE_STATUS_SENT:
			s.Inferred = false
		case earlier:
			s.Inferred = true
		}
		if earlier {
			moveEarlier(rel, i, r.At)
		}
	} else if knownStatus(r.Status) && !r.At.IsZero() && (r.Status == sgv1.MessageStatus_MESSAGE_STATUS_SENT || r.Ref != "" || r.MessageID != "") {
		s := Send{
			At: r.At, Ref: r.Ref, MessageID: r.MessageID, Sender: sender,
			Category: cat, Template: tmpl, Language: lang, CampaignID: r.CampaignID, Failed: failed, Delivered: delivered,
			Inferred: r.Status != sgv1.MessageStatus_MESSAGE_STATUS_SENT,
		}
		s.Reached = !failed && reaches(rel, p, &s)
		recordSend(rel, p, s)
	}
	// The send's time, as far as it is known: a 131026 of a send made inside
	// the window does not count, and a delivered marketing message sent after
	// Meta's stop lifts it (whichever of its SENT and its delivery came last).
	sentAt := r.At
	if i := FindSend(rel, r.Ref, r.MessageID); i >= 0 && (r.Ref != "" || r.MessageID != "") {
		snd := &rel.Sends[i]
		sentAt = snd.At
		if snd.Delivered && !snd.Inferred && snd.Category == marketing {
			liftMeta(rel, snd.Sender, snd.At)
		}
	}

	desc := describe(cat, tmpl)
	// A message billed as marketing says the template was marketing when it
	// was sent.
	effect := TemplateEffect{Template: tmpl, Language: lang, At: r.At}
	if MarketingPricing(r.PricingCategory) {
		effect.Marketing, effect.MarkedFrom = true, sentAt
	}
	switch r.Status {
	case sgv1.MessageStatus_MESSAGE_STATUS_SENT:
		effect.Kind = TemplateOK
		AddEvent(rel, r.At, "sent"+desc)
	case sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, sgv1.MessageStatus_MESSAGE_STATUS_READ, sgv1.MessageStatus_MESSAGE_STATUS_PLAYED:
		// READ and PLAYED imply DELIVERED.
		effect.Kind = TemplateOK
		applyDelivered(rel, facts, p, sender, cat == marketing, r.At)
		AddEvent(rel, r.At, statusWord(r.Status)+desc)
	case sgv1.MessageStatus_MESSAGE_STATUS_FAILED:
		switch r.ErrorCode {
		case 132015:
			effect.Kind = TemplatePaused
		case 132016:
			effect.Kind = TemplateDisabled
		}
		applyFailure(rel, facts, p, sender, r.ErrorCode, r.At, sentAt)
		AddEvent(rel, r.At, "failed "+strconv.FormatInt(int64(r.ErrorCode), 10)+desc)
	}
	if tmpl == "" {
		effect = TemplateEffect{}
	}
	return effect
}

// matchSend finds the send a report is about. When the report carries both a ref
// and a message id that name two different sends (a status that only carried the
// message id arrived before the report that binds it to the reservation, and was
// recorded apart), they are one send: merged into the reservation.
func matchSend(rel *Relationship, ref, messageID string) int {
	i := FindSend(rel, ref, messageID)
	if i < 0 || ref == "" || messageID == "" || rel.Sends[i].Ref != ref {
		return i
	}
	j := -1
	for k := len(rel.Sends) - 1; k >= 0; k-- {
		if k != i && rel.Sends[k].MessageID == messageID && rel.Sends[k].Ref == "" {
			j = k
			break
		}
	}
	if j < 0 {
		return i
	}
	dup := rel.Sends[j]
	rel.Sends = slices.Delete(rel.Sends, j, j+1)
	if j < i {
		i--
	}
	s := &rel.Sends[i]
	bind(&s.Category, &dup.Category)
	bindString(&s.Template, &dup.Template)
	bindString(&s.Language, &dup.Language)
	bindString(&s.MessageID, &dup.MessageID)
	bindString(&s.CampaignID, &dup.CampaignID)
	s.Delivered = s.Delivered || dup.Delivered
	s.Failed = (s.Failed || dup.Failed) && !s.Delivered
	s.Reached = s.Reached || dup.Reached
	if dup.At.Before(s.At) {
		s.Inferred = dup.Inferred
		moveEarlier(rel, i, dup.At)
		i = FindSend(rel, ref, "")
	}
	return i
}

func knownStatus(s sgv1.MessageStatus) bool {
	return s >= sgv1.MessageStatus_MESSAGE_STATUS_SENT && s <= sgv1.MessageStatus_MESSAGE_STATUS_FAILED
}

// bind fills whichever of the send's and the report's category is unspecified from
// the other.
func bind(send, report *sgv1.Category) {
	if *report == sgv1.Category_CATEGORY_UNSPECIFIED {
		*report = *send
	} else if *send == sgv1.Category_CATEGORY_UNSPECIFIED {
		*send = *report
	}
}

func bindString(send, report *string) {
	if *report == "" {
		*report = *send
	} else if *send == "" {
		*send = *report
	}
}

// applyDelivered applies a delivered, read or played status from sender at t.
//
// Any delivery proves the number reachable (resets the 131026 streak after it) and
// the pair no longer limited (resets the 131056 streak of the states that concern
// the sender). (A delivered marketing message sent after Meta's stop lifts it: see
// liftMeta, called with the send's time.) Outside the sender's service window a
// delivered marketing message also proves that Meta's per-user limit let it through (the
// 131049 streak resets) and that the number has left the marketing experiment (the
// flag is cleared: Meta refuses marketing outside the window to a number in the
// experiment, so one that got through is out of it). Inside the window Meta lets
// marketing through whatever the limit or the experiment, so such a delivery proves
// neither and LastMarketingDeliveredAt, which later failures are compared with,
// only records the deliveries outside the window.
func applyDelivered(rel *Relationship, f *NumberFacts, p *Policy, sender string, mkt bool, t time.Time) {
	f.LastDeliveredAt = maxTime(f.LastDeliveredAt, t)
	if f.UndeliverableStreak > 0 && !t.Before(f.UndeliverableAt) {
		f.UndeliverableStreak = 0
	}
	for i := range rel.states() {
		if st := rel.stateAt(i); concerns(st.Sender, sender) && st.PairStreak > 0 && !t.Before(st.PairLimitedAt) {
			st.PairStreak = 0
		}
	}
	if !mkt || windowOpen(rel, p, sender, t) {
		return
	}
	f.LastMarketingDeliveredAt = maxTime(f.LastMarketingDeliveredAt, t)
	if f.EcoStreak > 0 && !t.Before(f.EcoAt) {
		f.EcoStreak = 0
	}
	if !f.ExperimentAt.IsZero() && !t.Before(f.ExperimentAt) {
		f.ExperimentAt = time.Time{}
	}
}

// liftMeta applies Meta's evidence from sender at `at` that the user takes
// marketing (a resume, or a delivered marketing message sent at `at`): it lifts
// that sender's record of a stop before `at`, and the implicit sender's, which
// evidence from any sender lifts (DESIGN.md, Who is who).
func liftMeta(rel *Relationship, sender string, at time.Time) {
	st := rel.State(sender)
	st.MetaResumeAt = maxTime(st.MetaResumeAt, at)
	rel.MetaResumeAt = maxTime(rel.MetaResumeAt, at)
}

// applyFailure applies a FAILED status from sender with Meta's error code at t,
// of a send made at sentAt (t when unknown). Codes that say nothing about the
// recipient are only recorded as events (by the caller).
func applyFailure(rel *Relationship, f *NumberFacts, p *Policy, sender string, code int32, t, sentAt time.Time) {
	switch code {
	case 131049: // per-user marketing limit (or the US block)
		if t.After(f.LastMarketingDeliveredAt) {
			f.EcoStreak, f.EcoAt = escalate(f.EcoStreak, f.EcoAt, t, ecoCooldown(p, f.EcoStreak))
		}
	case 131050: // the user stopped marketing from this sender
		st := rel.State(sender)
		st.MetaStopAt = maxTime(st.MetaStopAt, t)
	case 130472: // number in Meta's marketing experiment
		if t.After(f.LastMarketingDeliveredAt) {
			f.ExperimentAt = maxTime(f.ExperimentAt, t)
		}
	case 131026: // undeliverable. A send made while the window was open does not
		// count: the user had just written, so the number is on WhatsApp.
		if t.After(f.LastDeliveredAt) && !windowOpen(rel, p, sender, sentAt) {
			f.UndeliverableStreak, f.UndeliverableAt = escalate(f.UndeliverableStreak, f.UndeliverableAt, t, undeliverableBackoff(p, f.UndeliverableStreak))
		}
	case 131047: // re-engagement: the sender's window is closed, and the implicit
		// sender's (which may have been this sender's). A close before the last
		// inbound message has no effect (open compares them), so the latest is kept.
		st := rel.State(sender)
		st.WindowClosedAt = maxTime(st.WindowClosedAt, t)
		rel.WindowClosedAt = maxTime(rel.WindowClosedAt, t)
	case 131056: // pair rate limit. Counted whatever its time: consecutive 131056s
		// arrive close together, and the streak only sets a backoff of seconds.
		st := rel.State(sender)
		st.PairStreak = min(st.PairStreak+1, maxPairStreak)
		st.PairLimitedAt = maxTime(st.PairLimitedAt, t)
	}
}

// escalate applies a failure at t to a backoff streak that started or last
// escalated at `at` and lasts `backoff`. The caller has already dropped a failure
// that a delivery after it answers. The first failure starts the streak; a later
// one escalates it only when it happened once the current backoff was over
// (failures of messages in flight during the backoff do not); an older one changes
// nothing.
//
// A streak counts failures in time order, and the state keeps only the last one,
// so reports that arrive out of order can escalate differently than in order (an
// older failure reported after a newer one is dropped, where in order it would have
// started the streak). Each way of redoing that from the stored times goes wrong
// when a delivery between the two failures arrives later still, so the rule stays
// the simple one.
func escalate(streak int, at, t time.Time, backoff time.Duration) (int, time.Time) {
	switch {
	case streak <= 0:
		return 1, t
	case t.Before(at.Add(backoff)):
		return streak, at // older, or in flight
	}
	return streak + 1, t
}

// InboundKeyword is what the server's keyword matcher made of an inbound text.
type InboundKeyword uint8

// The keywords an inbound text can carry: none, an opt-out or an opt-in.
const (
	KeywordNone InboundKeyword = iota
	KeywordOptOut
	KeywordOptIn
)

// Inbound is a message or call from the user.
type Inbound struct {
	Kind      sgv1.InboundKind // unspecified means a message
	Keyword   InboundKeyword
	At        time.Time
	MessageID string
	Text      string
	// Sender is the business number written to ("" the implicit sender).
	Sender string
	// Referral is set for a message from a click-to-WhatsApp ad or a Page
	// button (Meta's referral, ReportInbound's ad_referral): a free entry point.
	Referral bool
	// Reason is what matched the keyword, recorded as the opt-out's or lift's
	// reason (e.g. `button "Stop promotions"`); "" for `keyword "<Text>"`.
	Reason string
}

// ApplyInbound applies a message or call from the user at in.At: it opens the
// sender's service window, a message (not a call) ends the undeliverable streak
// before it, a message with an ad referral is a free entry point (answered by a
// send already recorded, it opens the free entry point window at once), an
// opt-out keyword records the business's own opt-out, and an opt-in keyword
// lifts it, recording consent too only when p.KeywordOptInIsConsent, each with
// the keyword as its reason. A stop and a lift of the same time: the stop wins
// (see OwnOptedOut), whichever arrives first.
func ApplyInbound(rel *Relationship, facts *NumberFacts, p *Policy, in Inbound) {
	st := rel.State(in.Sender)
	st.LastInboundAt = maxTime(st.LastInboundAt, in.At)
	call := in.Kind == sgv1.InboundKind_INBOUND_KIND_CALL
	if in.Referral && !call {
		st.ReferralAt = maxTime(st.ReferralAt, in.At)
		for i := range rel.Sends {
			if snd := &rel.Sends[i]; snd.Sender == st.Sender && !snd.Failed {
				st.answerReferral(snd.At)
			}
		}
	}
	if !call && facts.UndeliverableStreak > 0 && !in.At.Before(facts.UndeliverableAt) {
		facts.UndeliverableStreak = 0
	}
	reason := in.Reason
	if reason == "" {
		reason = KeywordReason(in.Text)
	}
	switch in.Keyword {
	case KeywordOptOut:
		setOwn(rel, true, reason, in.At)
		AddEvent(rel, in.At, "opted out: "+reason)
	case KeywordOptIn:
		setOwn(rel, false, reason, in.At)
		if p.KeywordOptInIsConsent {
			setConsent(rel, reason, in.At)
			AddEvent(rel, in.At, "opted in: "+reason)
		} else {
			AddEvent(rel, in.At, "opt-out lifted (not consent): "+reason)
		}
	default:
		if call {
			AddEvent(rel, in.At, "inbound call")
		} else {
			AddEvent(rel, in.At, "inbound message")
		}
	}
}

// KeywordReason is the reason recorded for an opt-out or opt-in keyword text.
func KeywordReason(text string) string {
	return "keyword " + strconv.Quote(strings.TrimSpace(text))
}

// SetOptOut records the business's own opt-out (optedOut), or an opt-in: the
// lift of that opt-out and consent, both with its time and reason. It does not
// touch Meta's record.
//
// It is an operator's command, not a report that may arrive late, so it always
// takes effect: when the opposite record is at the same time or later (a frozen
// clock, a keyword stamped ahead by a skewed sender clock), it is recorded just
// after that one.
func SetOptOut(rel *Relationship, optedOut bool, reason string, at time.Time) {
	if optedOut && !at.After(rel.OwnStartAt) && !rel.OwnStartAt.IsZero() {
		at = rel.OwnStartAt.Add(time.Nanosecond)
	}
	if !optedOut && !at.After(rel.OwnStopAt) && !rel.OwnStopAt.IsZero() {
		at = rel.OwnStopAt.Add(time.Nanosecond)
	}
	setOwn(rel, optedOut, reason, at)
	if !optedOut {
		setConsent(rel, reason, at)
	}
	if optedOut {
		AddEvent(rel, at, "opted out: "+reason)
	} else {
		AddEvent(rel, at, "opted in: "+reason)
	}
}

// setConsent records consent at `at`, unless a later one is recorded.
func setConsent(rel *Relationship, reason string, at time.Time) {
	if !at.Before(rel.ConsentAt) {
		rel.ConsentAt, rel.ConsentReason = at, reason
	}
}

func setOwn(rel *Relationship, stop bool, reason string, at time.Time) {
	if stop {
		if !at.Before(rel.OwnStopAt) {
			rel.OwnStopAt, rel.OwnStopReason = at, reason
		}
		return
	}
	if !at.Before(rel.OwnStartAt) {
		rel.OwnStartAt, rel.OwnStartReason = at, reason
	}
}

// ApplyUserPreference applies Meta's user_preferences webhook for marketing
// messages: the user stopped (stop) or resumed marketing from sender. A resume
// lifts that sender's record and the implicit sender's (see liftMeta).
func ApplyUserPreference(rel *Relationship, sender string, stop bool, at time.Time) {
	if stop {
		st := rel.State(sender)
		st.MetaStopAt = maxTime(st.MetaStopAt, at)
		AddEvent(rel, at, "Meta: user stopped marketing messages")
		return
	}
	liftMeta(rel, sender, at)
	AddEvent(rel, at, "Meta: user resumed marketing messages")
}

// describe is the " (marketing, template promo)" part of an event text.
func describe(c sgv1.Category, tmpl string) string {
	name := categoryName(c)
	switch {
	case name == "" && tmpl == "":
		return ""
	case tmpl == "":
		return " (" + name + ")"
	case name == "":
		return " (template " + tmpl + ")"
	}
	return " (" + name + ", template " + tmpl + ")"
}

// categoryName is "marketing", "utility", "authentication", "service", or ""
// for an unspecified or unknown category.
func categoryName(c sgv1.Category) string {
	if c == sgv1.Category_CATEGORY_UNSPECIFIED || !enumword.Categories.Known(c) {
		return ""
	}
	return enumword.Categories.Lower(c)
}

// statusWord is "sent", "delivered", "read", "played", "failed", or "status"
// for an unspecified or unknown status.
func statusWord(s sgv1.MessageStatus) string {
	if s == sgv1.MessageStatus_MESSAGE_STATUS_UNSPECIFIED || !enumword.Statuses.Known(s) {
		return "status"
	}
	return enumword.Statuses.Lower(s)
}
