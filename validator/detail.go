package validator

import (
	"strconv"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The one-sentence explanations of Reason.Detail. They are built only for the
// reasons Decide returns, into a stack buffer (one allocation: the string). A
// sentence about a number-wide fact never says which business's message taught it.

func detail(in *Input, t time.Time, h *hit) string {
	var buf [256]byte
	b := buf[:0]
	switch h.rule {
	case sgv1.Rule_RULE_INVALID_NUMBER:
		b = invalidNumberDetail(b, in)
	case sgv1.Rule_RULE_REGION_BLOCKED:
		if h.code == 130497 {
			b = appendRestriction(b, &in.Business.Restrictions[h.n])
			break
		}
		if metaBlocks(in.Check.Region) {
			b = append(b, "Meta does not deliver marketing templates to numbers of region "...)
			b = append(b, in.Check.Region...)
			b = append(b, " (they fail with 131049)."...)
			break
		}
		b = append(b, "This business does not send marketing to "...)
		b = append(b, in.Check.Region...)
		b = append(b, " (its own blocked_regions policy; Meta would deliver it)."...)
	case sgv1.Rule_RULE_OPTED_OUT:
		b = optedOutDetail(b, in)
	case sgv1.Rule_RULE_NO_CONSENT:
		b = append(b, "The policy requires an opt-in for marketing and none is in force for this user"...)
		if !in.Rel.ConsentAt.IsZero() {
			b = append(b, " (the last one, on "...)
			b = appendTime(b, in.Rel.ConsentAt)
			b = append(b, ", was withdrawn)"...)
		}
		b = append(b, '.')
	case sgv1.Rule_RULE_ECOSYSTEM_LIMIT:
		b = append(b, "Meta refused marketing to this number with 131049 (per-user marketing limit) on "...)
		b = appendTime(b, h.at)
		b = append(b, "; cooldown "...)
		b = appendStreak(b, h.d, h.n)
		b = append(b, " ends "...)
		b = appendTime(b, h.at.Add(h.d))
		b = appendWindowOpens(b, h, h.at.Add(h.d))
	case sgv1.Rule_RULE_EXPERIMENT:
		b = append(b, "Meta refused marketing to this number with 130472 (number in a marketing experiment) on "...)
		b = appendTime(b, h.at)
		b = append(b, "; marketing reaches it only inside the service window or a free entry point window until the flag expires "...)
		b = appendTime(b, h.at.Add(h.d))
		if h.until.Before(h.at.Add(h.d)) {
			b = append(b, "; a window opens at "...)
			b = appendTime(b, h.until)
		}
		b = append(b, '.')
	case sgv1.Rule_RULE_FREQUENCY_CAP:
		b = append(b, "The cap of "...)
		b = strconv.AppendInt(b, int64(h.n), 10)
		b = append(b, " marketing message"...)
		if h.n != 1 {
			b = append(b, 's')
		}
		b = append(b, " per "...)
		b = appendDuration(b, h.d)
		b = append(b, " to this number is reached; the next one fits at "...)
		b = appendTime(b, h.until)
		b = append(b, '.')
	case sgv1.Rule_RULE_SERVICE_WINDOW:
		b = serviceWindowDetail(b, in)
	case sgv1.Rule_RULE_UNDELIVERABLE:
		b = append(b, "Meta could not deliver to this number with 131026 (not on WhatsApp, terms not accepted or app too old) on "...)
		b = appendTime(b, h.at)
		b = append(b, "; backoff "...)
		b = appendStreak(b, h.d, h.n)
		b = append(b, " ends "...)
		b = appendTime(b, h.until)
		b = append(b, '.')
	case sgv1.Rule_RULE_PAIR_RATE:
		b = pairDetail(b, in, t, h)
	case sgv1.Rule_RULE_TEMPLATE_PAUSED:
		b = append(b, "Meta "...)
		if h.verdict == sgv1.Verdict_VERDICT_DENY {
			b = append(b, "disabled template "...)
			b = strconv.AppendQuote(b, in.Check.Template)
			b = append(b, " (132016) on "...)
			b = appendTime(b, h.at)
			b = append(b, "; it stays disabled until a SENT or DELIVERED report of it."...)
			break
		}
		b = append(b, "paused template "...)
		b = strconv.AppendQuote(b, in.Check.Template)
		b = append(b, " for low quality (132015) on "...)
		b = appendTime(b, h.at)
		b = append(b, "; the "...)
		b = appendDuration(b, h.d)
		b = append(b, " pause ("...)
		b = appendOrdinal(b, h.n)
		b = append(b, ") ends "...)
		b = appendTime(b, h.until)
		b = append(b, '.')
	case sgv1.Rule_RULE_MESSAGING_LIMIT:
		b = append(b, "The business reached "...)
		b = strconv.AppendInt(b, int64(h.n), 10)
		b = append(b, " users outside the service window in the last 24h (messaging limit "...)
		b = strconv.AppendInt(b, int64(in.Policy.MessagingLimit), 10)
		b = append(b, "); a slot for this user frees at "...)
		b = appendTime(b, h.until)
		b = append(b, '.')
	case sgv1.Rule_RULE_QUIET_HOURS:
		q := in.Policy.QuietHours
		z := in.Check.Zones[h.n]
		b = append(b, "It is quiet hours ("...)
		b = appendClock(b, q.Start)
		b = append(b, "-"...)
		b = appendClock(b, q.End)
		b = append(b, " local time) in "...)
		b = append(b, z.String()...)
		b = append(b, " (now "...)
		b = t.In(z).AppendFormat(b, "15:04")
		b = append(b, "); they are over in all of the number's time zones at "...)
		b = appendTime(b, h.until)
		b = append(b, '.')
	case sgv1.Rule_RULE_TEMPLATE_REPEAT:
		b = append(b, "Template "...)
		b = strconv.AppendQuote(b, in.Check.Template)
		b = append(b, " went or is reserved to this number at "...)
		b = appendTime(b, h.at)
		b = append(b, " (repeat window "...)
		b = appendDuration(b, h.d)
		b = append(b, "); the next one fits at "...)
		b = appendTime(b, h.until)
		b = append(b, '.')
	case sgv1.Rule_RULE_ACCOUNT_RESTRICTED, sgv1.Rule_RULE_SENDER_LIMITED:
		b = appendRestriction(b, &in.Business.Restrictions[h.n])
	}
	return string(b)
}

// RestrictionDetail is the sentence that explains a restriction (a reason's
// detail, and Restriction.detail in GetPolicy and GetContact).
func RestrictionDetail(r Restriction) string { return string(appendRestriction(nil, &r)) }

// appendRestriction writes what Meta said, when, and until when.
func appendRestriction(b []byte, r *Restriction) []byte {
	switch r.Kind {
	case SenderThroughput, SenderSpam:
		b = append(b, "Meta limited "...)
		if r.Sender == "" {
			b = append(b, "a sending number of this business (reported without a sender, so every sender waits)"...)
		} else {
			b = append(b, "sending number "...)
			b = strconv.AppendQuote(b, r.Sender)
		}
		if r.Kind == SenderSpam {
			b = append(b, " with 131048 (spam rate limit: earlier messages were blocked or flagged; every template sent now makes it worse) on "...)
		} else {
			b = append(b, " with 130429 (throughput reached) on "...)
		}
	case AccountLocked:
		b = append(b, "Meta locked the business account (131031) on "...)
	case AccountPolicy:
		b = append(b, "Meta blocked the business account for policy violations (368) on "...)
	case AccountPayment:
		b = append(b, "Meta refused templates for a payment problem of the business account (131042) on "...)
	case AccountBusinessInitiated:
		b = append(b, "Meta restricted the business account from starting conversations (account_update RESTRICTED_BIZ_INITIATED_MESSAGING) on "...)
	case AccountUserInitiated:
		b = append(b, "Meta restricted the business account from replying to users (account_update RESTRICTED_CUSTOMER_INITIATED_MESSAGING) on "...)
	case AccountDisabled:
		b = append(b, "Meta disabled the business account (account_update DISABLED_UPDATE) on "...)
	case AccountRegion:
		b = append(b, "Meta restricted the business account from messaging users in region "...)
		b = append(b, r.Sender...)
		b = append(b, " (130497) on "...)
		b = appendTime(b, r.At)
		b = append(b, "; it lasts until a DELIVERED to that region of a message sent after it, or ClearRestriction naming the region."...)
		return b
	}
	b = appendTime(b, r.At)
	end := r.End()
	switch {
	case end.IsZero():
		b = append(b, "; it lasts until lifted: by ClearRestriction, by Meta's webhook saying it ended, or by a SENT or DELIVERED of a message sent after it."...)
	case r.Step() > 0:
		b = append(b, "; backoff "...)
		b = appendStreak(b, r.Step(), r.Streak)
		b = append(b, " ends "...)
		b = appendTime(b, end)
		b = append(b, '.')
	default:
		b = append(b, "; Meta lifts it "...)
		b = appendTime(b, end)
		b = append(b, '.')
	}
	return b
}

func optedOutDetail(b []byte, in *Input) []byte {
	rel := in.Rel
	b = append(b, "The user opted out of marketing from this business: "...)
	sep := false
	if st := metaStop(rel, in.Check.Sender); st != nil {
		b = append(b, "Meta recorded a stop (131050) on "...)
		b = appendTime(b, st.MetaStopAt)
		if st.Sender != "" && st.Sender != in.Check.Sender {
			b = append(b, " from sender "...)
			b = strconv.AppendQuote(b, st.Sender)
		}
		sep = true
	}
	if rel.OwnOptedOut() {
		if sep {
			b = append(b, "; "...)
		}
		b = append(b, "opted out on "...)
		b = appendTime(b, rel.OwnStopAt)
		if rel.OwnStopReason != "" {
			b = append(b, " ("...)
			b = append(b, rel.OwnStopReason...)
			b = append(b, ')')
		}
		sep = true
	}
	if in.Check.Suppressed {
		if sep {
			b = append(b, "; "...)
		}
		b = append(b, "forgotten after opting out (suppression list)"...)
	}
	return append(b, '.')
}

func serviceWindowDetail(b []byte, in *Input) []byte {
	rel, p := lastInbound(in.Rel, in.Check.Sender), in.Policy
	b = append(b, "The service window is closed ("...)
	switch {
	case rel.LastInboundAt.IsZero():
		b = append(b, "the user never wrote"...)
	case rel.WindowClosedAt.After(rel.LastInboundAt):
		b = append(b, "Meta answered 131047 on "...)
		b = appendTime(b, rel.WindowClosedAt)
		b = append(b, ", after the user wrote on "...)
		b = appendTime(b, rel.LastInboundAt)
	default:
		b = append(b, "the user last wrote on "...)
		b = appendTime(b, rel.LastInboundAt)
		b = append(b, "; window "...)
		b = appendDuration(b, p.ServiceWindow)
	}
	return append(b, "); only a template can reach this user now."...)
}

func pairDetail(b []byte, in *Input, t time.Time, h *hit) []byte {
	p, rel := in.Policy, in.Rel
	if h.n&pairGCRA != 0 {
		b = append(b, "Sends from this business to this number are over the pair rate (one per "...)
		b = appendDuration(b, p.PairInterval)
		b = append(b, ", bursts of "...)
		b = strconv.AppendInt(b, int64(p.PairBurst), 10)
		b = append(b, "); the next one fits at "...)
		b = appendTime(b, gcraFree(rel, p, in.Check.Sender, t))
		b = append(b, '.')
	}
	if h.n&pair131056 != 0 {
		if h.n&pairGCRA != 0 {
			b = append(b, ' ')
		}
		b = append(b, "Meta refused a send to this number with 131056 (pair rate limit) on "...)
		b = appendTime(b, h.at)
		b = append(b, "; backoff "...)
		st, until := pairLimited(rel, in.Check.Sender)
		b = appendStreak(b, pairBackoff(st.PairStreak), st.PairStreak)
		b = append(b, " ends "...)
		b = appendTime(b, until)
		b = append(b, '.')
	}
	return b
}

// appendWindowOpens ends a sentence whose rule is lifted early by a service window
// that opens before its end.
func appendWindowOpens(b []byte, h *hit, end time.Time) []byte {
	if h.until.Before(end) {
		b = append(b, "; the service window opens at "...)
		b = appendTime(b, h.until)
	}
	return append(b, '.')
}

// appendStreak writes "48h (2nd in a row)", or just "24h" for the first.
func appendStreak(b []byte, d time.Duration, n int) []byte {
	b = appendDuration(b, d)
	if n > 1 {
		b = append(b, " ("...)
		b = appendOrdinal(b, n)
		b = append(b, " in a row)"...)
	}
	return b
}

// appendTime writes a time in UTC to the minute ("2026-11-26 10:00 UTC"), with
// seconds when it has them. (By hand: time.AppendFormat is the slowest part of a
// decision otherwise.)
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	hh, mm, ss := t.Clock()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, "2006-01-02 15:04:05 UTC")
	}
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	b = append2(b, int(mo))
	b = append(b, '-')
	b = append2(b, d)
	b = append(b, ' ')
	b = append2(b, hh)
	b = append(b, ':')
	b = append2(b, mm)
	if ss != 0 || t.Nanosecond() != 0 {
		b = append(b, ':')
		b = append2(b, ss)
	}
	return append(b, " UTC"...)
}

func append2(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }

// FormatDuration writes a duration the way the policy is written (see
// appendDuration): "400d", "1h", "6s".
func FormatDuration(d time.Duration) string { return string(appendDuration(nil, d)) }

// appendDuration writes a duration the way the policy is written: "7d" for whole
// weeks and longer, "48h", "30m", "6s".
func appendDuration(b []byte, d time.Duration) []byte {
	switch {
	case d >= week && d%day == 0:
		return append(strconv.AppendInt(b, int64(d/day), 10), 'd')
	case d >= time.Hour && d%time.Hour == 0:
		return append(strconv.AppendInt(b, int64(d/time.Hour), 10), 'h')
	case d >= time.Minute && d%time.Minute == 0:
		return append(strconv.AppendInt(b, int64(d/time.Minute), 10), 'm')
	case d%time.Second == 0:
		return append(strconv.AppendInt(b, int64(d/time.Second), 10), 's')
	}
	return append(b, d.String()...)
}

func appendOrdinal(b []byte, n int) []byte {
	b = strconv.AppendInt(b, int64(n), 10)
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return append(b, "th"...)
	case n%10 == 1:
		return append(b, "st"...)
	case n%10 == 2:
		return append(b, "nd"...)
	case n%10 == 3:
		return append(b, "rd"...)
	}
	return append(b, "th"...)
}

// appendClock writes minutes after midnight as "HH:MM".
func appendClock(b []byte, m int) []byte {
	return append(append2(b, m/60), ':', byte('0'+m%60/10), byte('0'+m%10))
}

func invalidNumberDetail(b []byte, in *Input) []byte {
	switch in.Check.Number {
	case NumberNational:
		return append(b, "The phone number is in national format (no + or 00) and there is no region to read it by: set a region (the request's region, or the policy's default_region)."...)
	case NumberNotValid:
		return append(b, "The phone number is possible but not valid: libphonenumber knows no such range (such as an unassigned area code), and no delivery to it or message from it is on record (number_validation POSSIBLE would accept it)."...)
	}
	b = append(b, "The phone number is not a possible number"...)
	if in.Check.InvalidDetail != "" {
		b = append(b, ": "...)
		b = append(b, in.Check.InvalidDetail...)
	}
	return append(b, '.')
}

// promotedDetail is what a reason adds when the check was judged as marketing
// although the caller named another category: Meta treats its template as
// marketing. "" otherwise.
func promotedDetail(in *Input, named sgv1.Category) string {
	if in.Check.Category == named {
		return ""
	}
	b := []byte(" Judged as marketing, not ")
	b = append(b, categoryName(named)...)
	b = append(b, ": Meta treats template "...)
	b = strconv.AppendQuote(b, in.Check.Template)
	if in.Check.Language != "" {
		b = append(b, " ("...)
		b = append(b, in.Check.Language...)
		b = append(b, ')')
	}
	b = append(b, " as marketing."...)
	return string(b)
}
