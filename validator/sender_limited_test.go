package validator

import (
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func TestSenderLimited(t *testing.T) {
	limited := func(code string, until time.Time) string { return "DEFER SENDER_LIMITED " + code + " " + fmtT(until) }
	tests := []struct {
		name   string
		setup  func(f *fixture)
		cat    sgv1.Category
		sender string
		when   time.Time
		want   want
	}{
		{"131048: templates from that sender wait 1h", func(f *fixture) { f.restrict(SenderSpam, "pn-a", t0) },
			mkt, "pn-a", at(min1), deferred(at(hour), limited("131048", at(hour)))},
		{"131048: utility and authentication too", func(f *fixture) { f.restrict(SenderSpam, "pn-a", t0) },
			auth, "pn-a", at(min1), deferred(at(hour), limited("131048", at(hour)))},
		{"131048: another sender of the business is free", func(f *fixture) { f.restrict(SenderSpam, "pn-a", t0) },
			mkt, "pn-b", at(min1), allowed()},
		{"131048: a check naming no sender is judged against every sender", func(f *fixture) { f.restrict(SenderSpam, "pn-a", t0) },
			mkt, "", at(min1), deferred(at(hour), limited("131048", at(hour)))},
		{"131048: free-form replies are not limited", func(f *fixture) {
			f.restrict(SenderSpam, "pn-a", t0)
			f.inbound(t0)
		}, svc, "pn-a", at(min1), allowed()},
		{"131048 after the backoff: 6h", func(f *fixture) {
			f.restrict(SenderSpam, "pn-a", t0)
			f.restrict(SenderSpam, "pn-a", at(hour+min1))
		}, util, "pn-a", at(2 * hour), deferred(at(7*hour+min1), limited("131048", at(7*hour+min1)))},
		{"131048 in flight during the backoff: still 1h", func(f *fixture) {
			f.restrict(SenderSpam, "pn-a", t0)
			f.restrict(SenderSpam, "pn-a", at(50*min1))
		}, util, "pn-a", at(55 * min1), deferred(at(hour), limited("131048", at(hour)))},
		{"131048 third and after: 24h", func(f *fixture) {
			f.restrict(SenderSpam, "pn-a", t0)
			f.restrict(SenderSpam, "pn-a", at(hour))
			f.restrict(SenderSpam, "pn-a", at(7*hour))
			f.restrict(SenderSpam, "pn-a", at(31*hour))
		}, util, "pn-a", at(31 * hour), deferred(at(55*hour), limited("131048", at(55*hour)))},
		{"131048 reported without a sender: every sender waits", func(f *fixture) { f.restrict(SenderSpam, "", t0) },
			util, "pn-b", at(min1), deferred(at(hour), limited("131048", at(hour)))},
		{"130429: every send, 1s", func(f *fixture) { f.restrict(SenderThroughput, "pn-a", t0); f.inbound(t0) },
			svc, "pn-a", t0, deferred(at(sec), limited("130429", at(sec)))},
		{"130429 doubling: 2s, then 4s", func(f *fixture) {
			f.restrict(SenderThroughput, "pn-a", t0)
			f.restrict(SenderThroughput, "pn-a", at(sec))
			f.restrict(SenderThroughput, "pn-a", at(3*sec))
		}, util, "pn-a", at(3 * sec), deferred(at(7*sec), limited("130429", at(7*sec)))},
		{"of two limits, the later end decides", func(f *fixture) {
			f.restrict(SenderThroughput, "pn-a", t0)
			f.restrict(SenderSpam, "pn-a", t0)
		}, util, "pn-a", t0, deferred(at(hour), limited("131048", at(hour)))},
		{"of two senders' limits (no sender named), the later end decides", func(f *fixture) {
			f.restrict(SenderSpam, "pn-a", t0)
			f.restrict(SenderSpam, "pn-b", at(30*min1))
		}, util, "", at(40 * min1), deferred(at(90*min1), limited("131048", at(90*min1)))},
		{"a template from that sender sent after the limit lifts it", func(f *fixture) {
			f.restrict(SenderSpam, "pn-a", t0)
			ApplyRestrictionSuccess(&f.biz, RestrictionSuccess{Sender: "pn-a", Category: mkt, SentAt: at(min1), At: at(2 * min1)})
		}, util, "pn-a", at(3 * min1), allowed()},
		{"thousands of in-flight deliveries do not", func(f *fixture) {
			f.restrict(SenderSpam, "pn-a", t0)
			for i := range 5000 {
				ApplyRestrictionSuccess(&f.biz, RestrictionSuccess{Sender: "pn-a", Category: mkt,
					SentAt: at(-time.Duration(i+1) * time.Millisecond), At: at(time.Duration(i) * time.Millisecond)})
			}
		}, util, "pn-a", at(3 * min1), deferred(at(hour), limited("131048", at(hour)))},
		{"with the account restricted too, both reasons", func(f *fixture) {
			f.restrict(SenderSpam, "pn-a", t0)
			f.restrict(AccountPolicy, "", t0)
		}, util, "pn-a", at(min1), deferred(at(24*hour), "DEFER ACCOUNT_RESTRICTED 368 "+fmtT(at(24*hour)), limited("131048", at(hour)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			noCaps(f)
			tc.setup(f)
			in := f.input(tc.cat, tc.when)
			in.Check.Sender = tc.sender
			if tc.cat != svc {
				in.Check.Template = "promo"
			}
			checkDecision(t, Decide(in), tc.want)
		})
	}
}

// TestSenderLimitedShadowed: a business may shadow the rule like any other.
func TestSenderLimitedShadowed(t *testing.T) {
	f := newFixture()
	noCaps(f)
	f.pol.ShadowRules = []sgv1.Rule{sgv1.Rule_RULE_SENDER_LIMITED}
	f.restrict(SenderSpam, "pn-a", t0)
	in := f.input(util, at(min1))
	in.Check.Sender, in.Check.Template = "pn-a", "promo"
	d := Decide(in)
	if d.Verdict != allow || !d.Shadow || len(d.Reasons) != 1 || !d.Reasons[0].Shadow {
		t.Fatalf("shadowed limit: %s", summary(d))
	}
}
