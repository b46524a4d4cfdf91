package validator

import (
	"fmt"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// restrictionOf returns the stored restriction (kind, sender), or the zero value.
func restrictionOf(b *Business, kind RestrictionKind, sender string) Restriction {
	if i, ok := findRestriction(b.Restrictions, kind, sender); ok {
		return b.Restrictions[i]
	}
	return Restriction{}
}

// TestRestrictionBackoffs: each kind's table, escalating only on a failure once
// the backoff ended, never past its last step; a failure in flight during the
// backoff, an older one, and a repeated DENY change nothing.
func TestRestrictionBackoffs(t *testing.T) {
	type step struct {
		at      time.Duration // failure time, after t0
		changed bool
		end     time.Duration // End after t0; -1: no end
	}
	for _, tc := range []struct {
		kind  RestrictionKind
		steps []step
	}{
		{SenderSpam, []step{
			{0, true, hour}, {30 * min1, false, hour}, {-hour, false, hour},
			{hour, true, 7 * hour}, // exactly at the end: escalates
			{8 * hour, true, 32 * hour}, {33 * hour, true, 57 * hour},
		}},
		{AccountPayment, []step{{0, true, hour}, {2 * hour, true, 8 * hour}, {9 * hour, true, 33 * hour}}},
		{AccountPolicy, []step{{0, true, 24 * hour}, {23 * hour, false, 24 * hour}, {25 * hour, true, 97 * hour}, {100 * hour, true, 100*hour + week}}},
		{SenderThroughput, []step{
			{0, true, sec}, {sec, true, 3 * sec}, {3 * sec, true, 7 * sec}, {7 * sec, true, 15 * sec},
			{15 * sec, true, 31 * sec}, {31 * sec, true, 63 * sec}, {63 * sec, true, 123 * sec}, {123 * sec, true, 183 * sec},
		}},
		{AccountLocked, []step{{0, true, -1}, {week, false, -1}}},
	} {
		t.Run(fmt.Sprint(tc.kind.Code()), func(t *testing.T) {
			var b Business
			for i, s := range tc.steps {
				f := RestrictionFailure{Kind: tc.kind, Sender: "pn-a", At: at(s.at)}
				if got := RestrictionFailureChanges(&b, f); got != s.changed {
					t.Fatalf("step %d: Changes = %v, want %v", i, got, s.changed)
				}
				if got := ApplyRestrictionFailure(&b, f); got != s.changed {
					t.Fatalf("step %d: Apply = %v, want %v", i, got, s.changed)
				}
				sender := "pn-a"
				if !tc.kind.OfSender() {
					sender = ""
				}
				r := restrictionOf(&b, tc.kind, sender)
				want := time.Time{}
				if s.end >= 0 {
					want = at(s.end)
				}
				if !r.End().Equal(want) || !r.Active(at(s.at)) {
					t.Fatalf("step %d: end %s, active %v; want end %s", i, fmtT(r.End()), r.Active(at(s.at)), fmtT(want))
				}
			}
		})
	}
}

// TestRestrictionFailureInFlight: a failure reported after the backoff ended
// escalates only when its message was sent after it ended (when that is known).
func TestRestrictionFailureInFlight(t *testing.T) {
	var b Business
	ApplyRestrictionFailure(&b, RestrictionFailure{Kind: SenderSpam, Sender: "a", At: t0})
	// Sent a minute before the first failure, failed two hours later.
	if ApplyRestrictionFailure(&b, RestrictionFailure{Kind: SenderSpam, Sender: "a", At: at(2 * hour), SentAt: at(-min1)}) {
		t.Fatal("a failure of a message in flight since before the backoff escalated it")
	}
	if !ApplyRestrictionFailure(&b, RestrictionFailure{Kind: SenderSpam, Sender: "a", At: at(2 * hour), SentAt: at(90 * min1)}) {
		t.Fatal("a failure of a message sent after the backoff did not escalate it")
	}
	if r := restrictionOf(&b, SenderSpam, "a"); r.Streak != 2 || !r.End().Equal(at(8*hour)) {
		t.Fatalf("after escalation: %+v (end %s), want streak 2 ending at 8h", r, fmtT(r.End()))
	}
}

// TestRestrictionSymmetricLift: a success lifts a restriction only when its
// message was sent after the restriction began, from a sender it concerns, of a
// category it applies to; a failure sent before the lift is old news after it.
func TestRestrictionSymmetricLift(t *testing.T) {
	start := func() *Business {
		b := &Business{}
		ApplyRestrictionFailure(b, RestrictionFailure{Kind: SenderSpam, Sender: "a", At: t0})
		ApplyRestrictionFailure(b, RestrictionFailure{Kind: AccountPayment, At: t0})
		ApplyRestrictionFailure(b, RestrictionFailure{Kind: SenderThroughput, Sender: "", At: t0})
		return b
	}
	type lifted struct{ spam, payment, implicit bool }
	for _, tc := range []struct {
		name string
		s    RestrictionSuccess
		want lifted
	}{
		{"delivered, sent before it began (in flight)", RestrictionSuccess{Sender: "a", Category: mkt, SentAt: at(-min1), At: at(10 * min1)}, lifted{}},
		{"sent at the very time it began", RestrictionSuccess{Sender: "a", Category: mkt, SentAt: t0, At: at(10 * min1)}, lifted{}},
		{"send time unknown", RestrictionSuccess{Sender: "a", Category: mkt, At: at(10 * min1)}, lifted{}},
		{"from another sender", RestrictionSuccess{Sender: "b", Category: mkt, SentAt: at(5 * min1), At: at(10 * min1)}, lifted{payment: true, implicit: true}},
		{"a service message (131048 and 131042 are templates only)", RestrictionSuccess{Sender: "a", Category: svc, SentAt: at(5 * min1), At: at(10 * min1)}, lifted{implicit: true}},
		{"category unknown", RestrictionSuccess{Sender: "a", SentAt: at(5 * min1), At: at(10 * min1)}, lifted{implicit: true}},
		{"sender unknown", RestrictionSuccess{Category: util, SentAt: at(5 * min1), At: at(10 * min1)}, lifted{payment: true, implicit: true}},
		{"a template from the sender, sent after", RestrictionSuccess{Sender: "a", Category: util, SentAt: at(5 * min1), At: at(10 * min1)}, lifted{true, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := start()
			wantAny := tc.want != lifted{}
			if got := RestrictionSuccessChanges(b, tc.s); got != wantAny {
				t.Fatalf("Changes = %v, want %v", got, wantAny)
			}
			ApplyRestrictionSuccess(b, tc.s)
			got := lifted{
				spam:     !restrictionOf(b, SenderSpam, "a").Active(at(10 * min1)),
				payment:  !restrictionOf(b, AccountPayment, "").Active(at(10 * min1)),
				implicit: restrictionOf(b, SenderThroughput, "").Streak == 0,
			}
			if got != tc.want {
				t.Fatalf("lifted %+v, want %+v", got, tc.want)
			}
		})
	}

	b := start()
	ApplyRestrictionSuccess(b, RestrictionSuccess{Sender: "a", Category: mkt, SentAt: at(5 * min1), At: at(6 * min1)})
	if ApplyRestrictionFailure(b, RestrictionFailure{Kind: SenderSpam, Sender: "a", At: at(20 * min1), SentAt: at(4 * min1)}) {
		t.Fatal("a failure of a message sent before the lifting one restarted the limit")
	}
	if !ApplyRestrictionFailure(b, RestrictionFailure{Kind: SenderSpam, Sender: "a", At: at(20 * min1), SentAt: at(6 * min1)}) {
		t.Fatal("a failure of a message sent after the lifting one did not restart the limit")
	}
	if r := restrictionOf(b, SenderSpam, "a"); r.Streak != 1 || !r.At.Equal(at(20*min1)) || !r.End().Equal(at(80*min1)) {
		t.Fatalf("restarted limit %+v, want streak 1 from 20m", r)
	}
}

// TestClearRestrictions: an operator's clear lifts what is in force; a failure
// dated at or before the clear does not bring it back, a later one starts over.
func TestClearRestrictions(t *testing.T) {
	var b Business
	ApplyRestrictionFailure(&b, RestrictionFailure{Kind: AccountLocked, At: t0})
	ApplyRestrictionFailure(&b, RestrictionFailure{Kind: SenderSpam, Sender: "a", At: t0})
	ApplyRestrictionFailure(&b, RestrictionFailure{Kind: SenderSpam, Sender: "b", At: t0})
	cleared := ClearRestrictions(&b, func(r *Restriction) bool { return r.Kind == SenderSpam && r.Sender == "a" }, at(min1))
	if len(cleared) != 1 || cleared[0].Sender != "a" || cleared[0].Streak != 1 {
		t.Fatalf("cleared %+v, want a's 131048 as it was", cleared)
	}
	if got := ActiveRestrictions(&b, "", at(min1)); len(got) != 2 {
		t.Fatalf("in force after the clear: %+v, want the lock and b's limit", got)
	}
	if ApplyRestrictionFailure(&b, RestrictionFailure{Kind: SenderSpam, Sender: "a", At: at(min1)}) {
		t.Fatal("a failure dated at the clear restarted the limit")
	}
	if !ApplyRestrictionFailure(&b, RestrictionFailure{Kind: SenderSpam, Sender: "a", At: at(2 * min1)}) {
		t.Fatal("a failure after the clear did not restart the limit")
	}
	if cleared := ClearRestrictions(&b, func(*Restriction) bool { return true }, at(3*hour)); len(cleared) != 1 || cleared[0].Kind != AccountLocked {
		t.Fatalf("clearing everything at 3h cleared %+v, want only the lock (the limits had ended)", cleared)
	}
}

// TestRestrictionEndsGivenByMeta: an account_update restriction lasts until the
// expiration it gives; a later expiration extends it, one already past is not a
// restriction; a REINSTATE lifts a ban, unless it is older than the ban.
func TestRestrictionEndsGivenByMeta(t *testing.T) {
	var b Business
	if ApplyRestrictionFailure(&b, RestrictionFailure{Kind: AccountBusinessInitiated, At: t0, Ends: t0}) {
		t.Fatal("a restriction that expired when it was announced was recorded")
	}
	ApplyRestrictionFailure(&b, RestrictionFailure{Kind: AccountBusinessInitiated, At: t0, Ends: at(48 * hour)})
	if r := restrictionOf(&b, AccountBusinessInitiated, ""); !r.End().Equal(at(48 * hour)) {
		t.Fatalf("end %s, want 48h", fmtT(r.End()))
	}
	if ApplyRestrictionFailure(&b, RestrictionFailure{Kind: AccountBusinessInitiated, At: at(hour), Ends: at(24 * hour)}) {
		t.Fatal("an earlier expiration shortened the restriction")
	}
	ApplyRestrictionFailure(&b, RestrictionFailure{Kind: AccountBusinessInitiated, At: at(hour), Ends: at(72 * hour)})
	if r := restrictionOf(&b, AccountBusinessInitiated, ""); !r.End().Equal(at(72 * hour)) {
		t.Fatalf("end %s, want 72h", fmtT(r.End()))
	}

	ApplyRestrictionFailure(&b, RestrictionFailure{Kind: AccountDisabled, At: at(hour)})
	if LiftRestriction(&b, AccountDisabled, at(hour)) {
		t.Fatal("a REINSTATE as old as the ban lifted it")
	}
	if !LiftRestriction(&b, AccountDisabled, at(2*hour)) || restrictionOf(&b, AccountDisabled, "").Active(at(2*hour)) {
		t.Fatal("a REINSTATE after the ban did not lift it")
	}
}

// TestRestrictionsForgottenAndBounded: a restriction that ended (or was lifted)
// RestrictionMemory ago is dropped at the next change; a DENY in force never is;
// past MaxRestrictions the oldest ended ones go first.
func TestRestrictionsForgottenAndBounded(t *testing.T) {
	var b Business
	ApplyRestrictionFailure(&b, RestrictionFailure{Kind: AccountLocked, At: t0})
	ApplyRestrictionFailure(&b, RestrictionFailure{Kind: SenderSpam, Sender: "a", At: t0})
	ApplyRestrictionFailure(&b, RestrictionFailure{Kind: SenderSpam, Sender: "b", At: at(week)})
	if len(b.Restrictions) != 3 {
		t.Fatalf("a's limit ended 1h before the memory: %+v", b.Restrictions)
	}
	ApplyRestrictionFailure(&b, RestrictionFailure{Kind: SenderSpam, Sender: "c", At: at(week + hour)})
	if _, ok := findRestriction(b.Restrictions, SenderSpam, "a"); ok || len(b.Restrictions) != 3 {
		t.Fatalf("a's limit, ended a week ago, was kept: %+v", b.Restrictions)
	}

	var big Business
	for i := range MaxRestrictions + 10 {
		ApplyRestrictionFailure(&big, RestrictionFailure{Kind: SenderThroughput, Sender: fmt.Sprintf("s%04d", i), At: at(time.Duration(i) * sec)})
	}
	if len(big.Restrictions) != MaxRestrictions {
		t.Fatalf("%d restrictions kept, want %d", len(big.Restrictions), MaxRestrictions)
	}
	if _, ok := findRestriction(big.Restrictions, SenderThroughput, "s0000"); ok {
		t.Fatal("the oldest, ended restriction was kept past the bound")
	}
	if _, ok := findRestriction(big.Restrictions, SenderThroughput, fmt.Sprintf("s%04d", MaxRestrictions+9)); !ok {
		t.Fatal("the newest restriction was dropped")
	}
}

// TestSentTime: a reservation's and a SENT's time are send times; a delivery's or
// failure's is not, until a SENT names the send.
func TestSentTime(t *testing.T) {
	f := newFixture()
	noCaps(f)
	f.reserve(mkt, "promo", t0, "r1")
	f.result(Result{Status: delivered, Ref: "r1", MessageID: "w1", At: at(5 * sec)})
	if got, cat, ok := SentTime(&f.rel, "", "w1"); !ok || !got.Equal(t0) || cat != mkt {
		t.Fatalf("reserved send: %s %v %v, want t0 marketing known", fmtT(got), cat, ok)
	}
	f.result(Result{Status: delivered, MessageID: "w2", Category: util, At: at(hour)})
	if _, _, ok := SentTime(&f.rel, "", "w2"); ok {
		t.Fatal("a send known only from its delivery has a known send time")
	}
	f.result(Result{Status: read, MessageID: "w2", At: at(2 * hour)})
	if _, _, ok := SentTime(&f.rel, "", "w2"); ok {
		t.Fatal("a later READ made the delivery's time a send time")
	}
	f.result(Result{Status: sent, MessageID: "w2", At: at(hour - min1)})
	if got, cat, ok := SentTime(&f.rel, "", "w2"); !ok || !got.Equal(at(hour-min1)) || cat != util {
		t.Fatalf("after its SENT: %s %v %v, want 59m utility known", fmtT(got), cat, ok)
	}
	f.result(Result{Status: sent, MessageID: "w3", Category: svc, At: at(3 * hour)})
	if got, _, ok := SentTime(&f.rel, "", "w3"); !ok || !got.Equal(at(3*hour)) {
		t.Fatalf("a SENT with no reservation: %s %v, want 3h known", fmtT(got), ok)
	}
	// A reservation planned later than a delivery reported for it: the send time
	// is bounded by the delivery's, which is not a send time.
	f.reserve(mkt, "promo", at(5*hour), "r4")
	f.result(Result{Status: delivered, Ref: "r4", At: at(4 * hour)})
	if _, _, ok := SentTime(&f.rel, "r4", ""); ok {
		t.Fatal("a delivery that moved a planned reservation earlier left its time known")
	}
	if _, _, ok := SentTime(&f.rel, "nope", "w9"); ok {
		t.Fatal("an unknown send has a send time")
	}
	_ = sgv1.Category_CATEGORY_UNSPECIFIED
}
