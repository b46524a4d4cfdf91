package validator

import (
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Check is what the server knows about one planned send, resolved from the request.
type Check struct {
	Category      sgv1.Category
	Template      string
	Language      string           // the template's language ("" any)
	SendAt        time.Time        // judge as of this time
	HasNumber     bool             // a phone was given or linked (false: user_id only)
	Number        NumberProblem    // what is wrong with the phone, if anything (INVALID_NUMBER)
	InvalidDetail string           // why it is NumberImpossible, for the reason's sentence
	Region        string           // ISO region of the number ("US", "CA"), "" if unknown
	Zones         []*time.Location // the number's time zones (quiet hours); may be empty
	Suppressed    bool             // a forgotten opt-out's suppression entry matches: treat as OPTED_OUT
	Sender        string           // the sending number (phone_number_id); "" = judged against every sender
}

// NumberProblem says what is wrong with a check's phone, if anything: what
// INVALID_NUMBER judges (recipient.go).
type NumberProblem uint8

const (
	// NumberOK is a valid number, or no phone given.
	NumberOK NumberProblem = iota
	// NumberImpossible means the phone is not a possible number (Check.InvalidDetail
	// says why). Always INVALID_NUMBER.
	NumberImpossible
	// NumberNational means the phone is spelled nationally (no '+' or "00") and no
	// region was given to read it by. Always INVALID_NUMBER.
	NumberNational
	// NumberNotValid is a possible number that libphonenumber does not call
	// valid (outside the ranges it knows are assigned). INVALID_NUMBER unless
	// the policy takes possible numbers or the history proves the number real.
	NumberNotValid
)

// Input is everything Decide reads. Rel, Facts, Business and Policy are never nil
// (zero values for unknown).
type Input struct {
	Check Check
	Rel   *Relationship
	// Facts are the number-wide facts this business reads: the shared record, or
	// &Rel.Local when the policy does not share them.
	Facts    *NumberFacts
	Business *Business
	Policy   *Policy
}

// Reason is one rule that applies to a check.
type Reason struct {
	Rule    sgv1.Rule
	Verdict sgv1.Verdict // DEFER or DENY: the verdict this rule gives alone
	// Detail is one sentence for humans. It never says which business's message
	// taught a number-wide fact.
	Detail string
	// MetaErrorCode is the Meta error the rule predicts, 0 if none.
	MetaErrorCode int32
	// Until is when the rule stops applying (zero for rules with no known end).
	Until  time.Time
	Shadow bool
}

// Decision is the answer to a check.
type Decision struct {
	Verdict sgv1.Verdict
	// Reasons: DENY reasons in Rule order, then DEFER reasons by Until (latest
	// first, ties in Rule order), then shadowed reasons ordered the same way.
	Reasons []Reason
	// RetryAt (DEFER only) is the earliest T >= SendAt at which judging every rule
	// that is not shadowed at T gives no DEFER.
	RetryAt time.Time
	// WindowUntil is when the service window closes, if it is open at SendAt.
	WindowUntil time.Time
	// Shadow is set when a shadowed rule would have blocked the send.
	Shadow bool
	// EffectiveCategory is the category judged: the check's, or MARKETING when
	// Meta treats its template as marketing (EffectiveCategory).
	EffectiveCategory sgv1.Category
}

// maxRetryRounds bounds the search for RetryAt. Each round jumps to the latest
// Until of the rules still deferring, so a round is only needed when rules take
// turns (a cooldown ending in quiet hours, a cap freed just before a planned send);
// 32 rounds is far more than any real history needs. Past the bound RetryAt is the
// time the last round reached: no earlier time is free, and a check at RetryAt
// answers with the next one.
const maxRetryRounds = 32

// Decide judges one planned send against every rule, as of in.Check.SendAt.
func Decide(in *Input) Decision {
	var hs hits
	t := in.Check.SendAt
	named := in.Check.Category
	if eff := EffectiveCategory(in.Business, &in.Check, t); eff != named {
		promoted := *in
		promoted.Check.Category = eff
		in = &promoted
	}
	judge(in, t, &hs)

	d := Decision{Verdict: sgv1.Verdict_VERDICT_ALLOW, EffectiveCategory: in.Check.Category}
	for i := 0; i < hs.n; i++ {
		h := &hs.h[i]
		switch {
		case h.shadow:
			d.Shadow = true
		case h.verdict == sgv1.Verdict_VERDICT_DENY:
			d.Verdict = sgv1.Verdict_VERDICT_DENY
		case d.Verdict != sgv1.Verdict_VERDICT_DENY:
			d.Verdict = sgv1.Verdict_VERDICT_DEFER
		}
	}
	d.WindowUntil = WindowUntil(in.Rel, in.Policy, in.Check.Sender, t)
	if d.Verdict == sgv1.Verdict_VERDICT_DEFER {
		d.RetryAt = retryAt(in, &hs)
	}
	if hs.n == 0 {
		return d
	}
	hs.sort()
	d.Reasons = make([]Reason, hs.n)
	for i := 0; i < hs.n; i++ {
		h := &hs.h[i]
		d.Reasons[i] = Reason{
			Rule:          h.rule,
			Verdict:       h.verdict,
			Detail:        detail(in, t, h) + promotedDetail(in, named),
			MetaErrorCode: h.code,
			Until:         h.until,
			Shadow:        h.shadow,
		}
	}
	return d
}

// retryAt finds the earliest time from which no rule that is not shadowed defers.
// Every rule's until is the earliest time it stops deferring, so no time before
// the latest until of a round can be free: jumping there and judging again is
// exact, not a guess.
func retryAt(in *Input, first *hits) time.Time {
	t, _ := first.latestDefer()
	var hs hits
	for range maxRetryRounds {
		judge(in, t, &hs)
		next, ok := hs.latestDefer()
		if !ok || !next.After(t) {
			// Free at t. (A rule whose until is not after t would be a bug; stopping
			// here answers with t rather than looping.)
			return t
		}
		t = next
	}
	return t
}

// numRules is the number of rules: at most one hit each.
const numRules = len(ruleTable)

// hit is one rule that applies at the judged time, before it becomes a Reason.
// The sentence is built only for the hits Decide returns, from the fields below.
type hit struct {
	rule    sgv1.Rule
	verdict sgv1.Verdict
	code    int32
	until   time.Time
	shadow  bool
	// What the sentence needs (meaning depends on the rule).
	at time.Time
	n  int
	d  time.Duration
}

type hits struct {
	n int
	h [numRules]hit
}

func (hs *hits) add(p *Policy, h *hit) {
	h.shadow = p.Shadowed(h.rule)
	hs.h[hs.n] = *h
	hs.n++
}

// latestDefer returns the latest until among the DEFER hits that are not shadowed.
func (hs *hits) latestDefer() (time.Time, bool) {
	var u time.Time
	ok := false
	for i := 0; i < hs.n; i++ {
		h := &hs.h[i]
		if h.shadow || h.verdict != sgv1.Verdict_VERDICT_DEFER {
			continue
		}
		if !ok || h.until.After(u) {
			u = h.until
		}
		ok = true
	}
	return u, ok
}

// sort orders the hits as Decision.Reasons are ordered (insertion sort: at most
// numRules items, no allocation).
func (hs *hits) sort() {
	for i := 1; i < hs.n; i++ {
		for j := i; j > 0 && hs.h[j].before(&hs.h[j-1]); j-- {
			hs.h[j], hs.h[j-1] = hs.h[j-1], hs.h[j]
		}
	}
}

func (a *hit) before(b *hit) bool {
	if a.shadow != b.shadow {
		return !a.shadow
	}
	if a.verdict != b.verdict {
		return a.verdict == sgv1.Verdict_VERDICT_DENY
	}
	if a.verdict == sgv1.Verdict_VERDICT_DEFER && !a.until.Equal(b.until) {
		return a.until.After(b.until)
	}
	return a.rule < b.rule
}

// ruleTable is every rule, in the Rule enum's order (TestRuleTable holds it
// so): judge runs each, and a check has at most one hit per rule.
var ruleTable = [...]sgv1.Rule{
	sgv1.Rule_RULE_INVALID_NUMBER,
	sgv1.Rule_RULE_REGION_BLOCKED,
	sgv1.Rule_RULE_OPTED_OUT,
	sgv1.Rule_RULE_NO_CONSENT,
	sgv1.Rule_RULE_ECOSYSTEM_LIMIT,
	sgv1.Rule_RULE_EXPERIMENT,
	sgv1.Rule_RULE_FREQUENCY_CAP,
	sgv1.Rule_RULE_SERVICE_WINDOW,
	sgv1.Rule_RULE_UNDELIVERABLE,
	sgv1.Rule_RULE_PAIR_RATE,
	sgv1.Rule_RULE_TEMPLATE_PAUSED,
	sgv1.Rule_RULE_MESSAGING_LIMIT,
	sgv1.Rule_RULE_QUIET_HOURS,
	sgv1.Rule_RULE_TEMPLATE_REPEAT,
	sgv1.Rule_RULE_ACCOUNT_RESTRICTED,
	sgv1.Rule_RULE_SENDER_LIMITED,
}

// judge evaluates every rule at time t (which is in.Check.SendAt or a later time
// tried for RetryAt; the rules read t, never in.Check.SendAt). Each rule is a
// direct call (a table of functions would move the hit to the heap and stop
// inlining); a rule of the table without its case panics, in TestRuleTable.
func judge(in *Input, t time.Time, hs *hits) {
	hs.n = 0
	var h hit
	for _, r := range ruleTable {
		var ok bool
		switch r {
		case sgv1.Rule_RULE_INVALID_NUMBER:
			ok = invalidNumber(in, &h)
		case sgv1.Rule_RULE_REGION_BLOCKED:
			ok = regionBlocked(in, &h)
		case sgv1.Rule_RULE_OPTED_OUT:
			ok = optedOut(in, &h)
		case sgv1.Rule_RULE_NO_CONSENT:
			ok = noConsent(in, &h)
		case sgv1.Rule_RULE_ECOSYSTEM_LIMIT:
			ok = ecosystemLimit(in, t, &h)
		case sgv1.Rule_RULE_EXPERIMENT:
			ok = experiment(in, t, &h)
		case sgv1.Rule_RULE_FREQUENCY_CAP:
			ok = frequencyCap(in, t, &h)
		case sgv1.Rule_RULE_SERVICE_WINDOW:
			ok = serviceWindow(in, t, &h)
		case sgv1.Rule_RULE_UNDELIVERABLE:
			ok = undeliverable(in, t, &h)
		case sgv1.Rule_RULE_PAIR_RATE:
			ok = pairRate(in, t, &h)
		case sgv1.Rule_RULE_TEMPLATE_PAUSED:
			ok = templatePaused(in, t, &h)
		case sgv1.Rule_RULE_MESSAGING_LIMIT:
			ok = messagingLimit(in, t, &h)
		case sgv1.Rule_RULE_QUIET_HOURS:
			ok = quietHours(in, t, &h)
		case sgv1.Rule_RULE_TEMPLATE_REPEAT:
			ok = templateRepeat(in, t, &h)
		case sgv1.Rule_RULE_ACCOUNT_RESTRICTED:
			ok = accountRestricted(in, t, &h)
		case sgv1.Rule_RULE_SENDER_LIMITED:
			ok = senderLimited(in, t, &h)
		default:
			panic("validator: no judge for " + r.String())
		}
		if ok {
			hs.add(in.Policy, &h)
		}
	}
}

const (
	marketing = sgv1.Category_CATEGORY_MARKETING
	service   = sgv1.Category_CATEGORY_SERVICE
	deny      = sgv1.Verdict_VERDICT_DENY
	deferV    = sgv1.Verdict_VERDICT_DEFER
)

// isTemplate reports whether a category is a template category (marketing,
// utility, authentication): what the messaging limit counts.
func isTemplate(c sgv1.Category) bool {
	return c == marketing || c == sgv1.Category_CATEGORY_UTILITY || c == sgv1.Category_CATEGORY_AUTHENTICATION
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
