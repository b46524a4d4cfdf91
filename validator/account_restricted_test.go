package validator

import (
	"strings"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// restrict records an account or sender error on the fixture's business.
func (f *fixture) restrict(kind RestrictionKind, sender string, when time.Time) {
	ApplyRestrictionFailure(&f.biz, RestrictionFailure{Kind: kind, Sender: sender, At: when})
}

func TestAccountRestricted(t *testing.T) {
	deferAcct := func(code string, until time.Time) string {
		return "DEFER ACCOUNT_RESTRICTED " + code + " " + fmtT(until)
	}
	const locked = "DENY ACCOUNT_RESTRICTED 131031 -"
	tests := []struct {
		name   string
		setup  func(f *fixture)
		cat    sgv1.Category
		sender string
		when   time.Time
		want   want
	}{
		{"131031: every send from every sender DENY", func(f *fixture) { f.restrict(AccountLocked, "", t0) },
			util, "pn-b", at(40 * 24 * hour), denied(locked)},
		{"131031: service messages too", func(f *fixture) { f.restrict(AccountLocked, "", t0); f.inbound(t0) },
			svc, "pn-a", at(hour), denied(locked)},
		{"368: 24h", func(f *fixture) { f.restrict(AccountPolicy, "", t0) }, auth, "", at(hour),
			deferred(at(24*hour), deferAcct("368", at(24*hour)))},
		{"368: over at 24h", func(f *fixture) { f.restrict(AccountPolicy, "", t0) }, auth, "", at(24 * hour), allowed()},
		{"368 again after the backoff: 72h", func(f *fixture) {
			f.restrict(AccountPolicy, "", t0)
			f.restrict(AccountPolicy, "", at(25*hour))
		}, util, "", at(26 * hour), deferred(at(97*hour), deferAcct("368", at(97*hour)))},
		{"368 in flight during the backoff: still 24h", func(f *fixture) {
			f.restrict(AccountPolicy, "", t0)
			f.restrict(AccountPolicy, "", at(23*hour))
		}, util, "", at(hour), deferred(at(24*hour), deferAcct("368", at(24*hour)))},
		{"368 third: 7d", func(f *fixture) {
			f.restrict(AccountPolicy, "", t0)
			f.restrict(AccountPolicy, "", at(25*hour))
			f.restrict(AccountPolicy, "", at(100*hour))
		}, mkt, "", at(100 * hour), deferred(at(100*hour+week), deferAcct("368", at(100*hour+week)))},
		{"131042: templates wait 1h", func(f *fixture) { f.restrict(AccountPayment, "", t0) }, mkt, "pn-a", at(min1),
			deferred(at(hour), deferAcct("131042", at(hour)))},
		{"131042: free-form replies in the window stay free", func(f *fixture) {
			f.restrict(AccountPayment, "", t0)
			f.inbound(t0)
		}, svc, "pn-a", at(min1), allowed()},
		{"131042 second: 6h", func(f *fixture) {
			f.restrict(AccountPayment, "", t0)
			f.restrict(AccountPayment, "", at(2*hour))
		}, util, "", at(2 * hour), deferred(at(8*hour), deferAcct("131042", at(8*hour)))},
		{"the lock wins over a backoff", func(f *fixture) {
			f.restrict(AccountPayment, "", t0)
			f.restrict(AccountLocked, "", t0)
		}, util, "", at(min1), denied(locked)},
		{"of two backoffs, the later end decides", func(f *fixture) {
			f.restrict(AccountPayment, "", t0)
			f.restrict(AccountPolicy, "", t0)
		}, util, "", at(min1), deferred(at(24*hour), deferAcct("368", at(24*hour)))},
		{"a success sent after the restriction lifts it", func(f *fixture) {
			f.restrict(AccountLocked, "", t0)
			ApplyRestrictionSuccess(&f.biz, RestrictionSuccess{Sender: "pn-b", Category: util, SentAt: at(hour), At: at(hour + min1)})
		}, mkt, "pn-a", at(2 * hour), allowed()},
		{"a delivery of a message sent before it does not", func(f *fixture) {
			f.restrict(AccountLocked, "", t0)
			ApplyRestrictionSuccess(&f.biz, RestrictionSuccess{Sender: "pn-b", Category: util, SentAt: at(-min1), At: at(hour)})
		}, mkt, "pn-a", at(2 * hour), denied(locked)},
		{"account_update restriction: templates until Meta's expiration", func(f *fixture) {
			ApplyRestrictionFailure(&f.biz, RestrictionFailure{Kind: AccountBusinessInitiated, At: t0, Ends: at(30 * hour)})
		}, mkt, "", at(hour), deferred(at(30*hour), deferAcct("368", at(30*hour)))},
		{"... not replies", func(f *fixture) {
			ApplyRestrictionFailure(&f.biz, RestrictionFailure{Kind: AccountBusinessInitiated, At: t0, Ends: at(30 * hour)})
			f.inbound(t0)
		}, svc, "", at(hour), allowed()},
		{"customer-initiated restriction: replies until its expiration", func(f *fixture) {
			ApplyRestrictionFailure(&f.biz, RestrictionFailure{Kind: AccountUserInitiated, At: t0, Ends: at(30 * hour)})
			f.inbound(t0)
		}, svc, "", at(hour), deferred(at(30*hour), deferAcct("368", at(30*hour)))},
		{"ban: DENY until reinstated", func(f *fixture) {
			ApplyRestrictionFailure(&f.biz, RestrictionFailure{Kind: AccountDisabled, At: t0})
		}, auth, "", at(hour), denied("DENY ACCOUNT_RESTRICTED 368 -")},
		{"reinstated", func(f *fixture) {
			ApplyRestrictionFailure(&f.biz, RestrictionFailure{Kind: AccountDisabled, At: t0})
			LiftRestriction(&f.biz, AccountDisabled, at(hour))
		}, auth, "", at(2 * hour), allowed()},
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

// TestAccountRestrictedRetryAtPastQuietHours: a backoff that ends inside quiet
// hours retries when they are over.
func TestAccountRestrictedRetryAtPastQuietHours(t *testing.T) {
	f := newFixture()
	noCaps(f)
	f.pol.QuietHours = &QuietHours{Start: 20 * 60, End: 8 * 60}
	f.chk.Zones = []*time.Location{time.UTC}
	f.restrict(AccountPayment, "", at(9*hour+30*min1)) // 19:30 UTC: ends 20:30, inside 20:00-08:00
	in := f.input(mkt, at(9*hour+31*min1))
	in.Check.Template = "promo"
	checkDecision(t, Decide(in), deferred(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC),
		"DEFER ACCOUNT_RESTRICTED 131042 "+fmtT(at(10*hour+30*min1))))
}

func TestRestrictionDetails(t *testing.T) {
	for _, tc := range []struct {
		r    Restriction
		want string
	}{
		{Restriction{Kind: SenderSpam, Sender: "106540352242922", At: t0, Streak: 2},
			`Meta limited sending number "106540352242922" with 131048 (spam rate limit: earlier messages were blocked or flagged; every template sent now makes it worse) on 2026-11-26 10:00 UTC; backoff 6h (2nd in a row) ends 2026-11-26 16:00 UTC.`},
		{Restriction{Kind: SenderThroughput, At: t0, Streak: 1},
			`Meta limited a sending number of this business (reported without a sender, so every sender waits) with 130429 (throughput reached) on 2026-11-26 10:00 UTC; backoff 1s ends 2026-11-26 10:00:01 UTC.`},
		{Restriction{Kind: AccountLocked, At: t0, Streak: 1},
			`Meta locked the business account (131031) on 2026-11-26 10:00 UTC; it lasts until lifted: by ClearRestriction, by Meta's webhook saying it ended, or by a SENT or DELIVERED of a message sent after it.`},
		{Restriction{Kind: AccountBusinessInitiated, At: t0, Streak: 1, Ends: at(48 * hour)},
			`Meta restricted the business account from starting conversations (account_update RESTRICTED_BIZ_INITIATED_MESSAGING) on 2026-11-26 10:00 UTC; Meta lifts it 2026-11-28 10:00 UTC.`},
	} {
		if got := RestrictionDetail(tc.r); got != tc.want {
			t.Errorf("detail\n got %s\nwant %s", got, tc.want)
		}
	}
	f := newFixture()
	f.restrict(AccountPolicy, "", t0)
	d := f.decide(util, at(hour))
	if len(d.Reasons) != 1 || !strings.Contains(d.Reasons[0].Detail, "(368) on 2026-11-26 10:00 UTC; backoff 24h ends 2026-11-27 10:00 UTC.") {
		t.Fatalf("reason %+v", d.Reasons)
	}
}
