package validator

import (
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// limitFixture is a business with a messaging limit of 2 that reached users A (at
// t0) and B (at t0+10m) with templates outside the window.
func limitFixture(t *testing.T) (biz *Business, pol *Policy, a, b *Relationship) {
	t.Helper()
	pol = &Policy{MessagingLimit: 2, ServiceWindow: day}
	biz = &Business{}
	a, b = &Relationship{}, &Relationship{}
	if !Reserve(a, biz, pol, Send{At: t0, Ref: "a", Category: util}) {
		t.Fatal("reaching A did not change the business")
	}
	if !Reserve(b, biz, pol, Send{At: at(10 * time.Minute), Ref: "b", Category: mkt}) {
		t.Fatal("reaching B did not change the business")
	}
	return biz, pol, a, b
}

func TestMessagingLimit(t *testing.T) {
	slot := "DEFER MESSAGING_LIMIT " + fmtT(at(24*hour+time.Minute))
	tests := []struct {
		name  string
		setup func(c *Relationship, pol *Policy)
		user  string // "a" or "c" (a new user)
		cat   sgv1.Category
		when  time.Time
		want  want
	}{
		{"a new user waits for a slot", nil, "c", util, at(hour),
			deferred(at(24*hour+time.Minute), slot)},
		{"authentication too", nil, "c", auth, at(hour), deferred(at(24*hour+time.Minute), slot)},
		{"free a minute after the oldest reach's minute + 24h", nil, "c", util, at(24*hour + time.Minute), allowed()},
		{"still counted within that minute", nil, "c", util, at(24*hour + 59*time.Second),
			deferred(at(24*hour+time.Minute), slot)},
		{"a user reached in the last 24h takes no slot", nil, "a", util, at(hour), allowed()},
		{"service messages take no slot", func(c *Relationship, _ *Policy) { c.LastInboundAt = t0 }, "c", svc, at(hour), allowed()},
		{"inside the window no slot is taken", func(c *Relationship, _ *Policy) { c.LastInboundAt = t0 }, "c", util, at(hour), allowed()},
		{"a window opening later frees it then", func(c *Relationship, _ *Policy) { c.LastInboundAt = at(5 * hour) }, "c", util, at(hour),
			deferred(at(5*hour), "DEFER MESSAGING_LIMIT "+fmtT(at(5*hour)))},
		{"rule off with a zero limit", func(_ *Relationship, p *Policy) { p.MessagingLimit = 0 }, "c", util, at(hour), allowed()},
		{"a higher limit has room", func(_ *Relationship, p *Policy) { p.MessagingLimit = 3 }, "c", util, at(hour), allowed()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			biz, pol, a, _ := limitFixture(t)
			user := &Relationship{}
			if tc.user == "a" {
				user = a
			}
			if tc.setup != nil {
				tc.setup(user, pol)
			}
			in := &Input{Check: Check{Category: tc.cat, SendAt: tc.when}, Rel: user, Facts: &user.Local, Business: biz, Policy: pol}
			checkDecision(t, Decide(in), tc.want)
		})
	}
}

func TestMessagingLimitReserve(t *testing.T) {
	biz, pol, a, _ := limitFixture(t)
	if len(biz.Reached) != 2 || biz.Reached[0].Count != 1 || biz.Reached[1].Count != 1 {
		t.Fatalf("buckets %+v", biz.Reached)
	}
	// A again within 24h: already reached, no slot taken.
	if Reserve(a, biz, pol, Send{At: at(2 * hour), Ref: "a2", Category: util}) {
		t.Error("reaching A again changed the business")
	}
	if a.Sends[1].Reached {
		t.Error("second send to A marked reached")
	}
	// Inside the window: not reached.
	c := &Relationship{SenderState: SenderState{LastInboundAt: at(2 * hour)}}
	if Reserve(c, biz, pol, Send{At: at(3 * hour), Ref: "c", Category: mkt}) || c.Sends[0].Reached {
		t.Error("a send inside the window took a slot")
	}
	// A service message never does.
	d := &Relationship{}
	if Reserve(d, biz, pol, Send{At: at(3 * hour), Ref: "d", Category: svc}) {
		t.Error("a service message took a slot")
	}
	// Two users in the same minute share a bucket; a day later the old buckets go.
	e, g := &Relationship{}, &Relationship{}
	Reserve(e, biz, pol, Send{At: at(30 * hour), Ref: "e", Category: util})
	Reserve(g, biz, pol, Send{At: at(30*hour + 30*time.Second), Ref: "g", Category: util})
	want := []ReachBucket{{Minute: at(30*hour).Unix() / 60, Count: 2}}
	if len(biz.Reached) != 1 || biz.Reached[0] != want[0] {
		t.Errorf("buckets %+v, want %+v", biz.Reached, want)
	}
	// Without a limit the send is still marked, the business untouched.
	pol.MessagingLimit = 0
	h := &Relationship{}
	if Reserve(h, biz, pol, Send{At: at(31 * hour), Ref: "h", Category: util}) || !h.Sends[0].Reached {
		t.Error("without a limit: business changed or send not marked")
	}
}

// applySlot applies a report to the relationship and, as the server does, the
// change of the send's slot to the business.
func applySlot(biz *Business, rel *Relationship, pol *Policy, r Result) {
	before, at := SlotHeld(rel, r.Ref, r.MessageID)
	ApplyResult(rel, &rel.Local, pol, r)
	after, at2 := SlotHeld(rel, r.Ref, r.MessageID)
	switch {
	case before && !after:
		RemoveReach(biz, at)
	case !before && after:
		AddReach(biz, at2)
	}
}

// TestMessagingLimitFailedGivesSlotBack: a reservation whose send later FAILED
// gives its slot back (a new user fits at once), whatever the order and however
// often the reports come; a delivery reported after the failure (multi-device)
// takes it again; the failed user takes a slot again when reached anew.
func TestMessagingLimitFailedGivesSlotBack(t *testing.T) {
	slot := func(until time.Time) want {
		return deferred(until, "DEFER MESSAGING_LIMIT "+fmtT(until))
	}
	failedA := Result{Status: failedS, ErrorCode: 131026, Ref: "a", MessageID: "wamid.a", At: at(5 * time.Minute)}
	failedA2 := failedA
	failedA2.Ref = "" // the webhook's status names only the wamid
	tests := []struct {
		name    string
		reports []Result
		want    want // a new user's template at t0+1h
		count   int  // users counted at t0+1h
	}{
		{"no report: both slots taken", nil, slot(at(24*hour + time.Minute)), 2},
		{"A's send failed: its slot is free", []Result{failedA}, allowed(), 1},
		{"the failure reported twice, by ref and by wamid", []Result{failedA, failedA2, failedA}, allowed(), 1},
		{"SENT, then FAILED", []Result{{Status: sent, Ref: "a", MessageID: "wamid.a", At: at(time.Minute)}, failedA}, allowed(), 1},
		{"FAILED, then a delivery (multi-device): the slot is taken again",
			[]Result{failedA, {Status: delivered, MessageID: "wamid.a", At: at(6 * time.Minute)}},
			slot(at(24*hour + time.Minute)), 2},
		{"a delivery, then FAILED: nothing given back",
			[]Result{{Status: delivered, Ref: "a", MessageID: "wamid.a", At: at(4 * time.Minute)}, failedA},
			slot(at(24*hour + time.Minute)), 2},
		{"B's send failed: B's slot (the later one) is free", []Result{{Status: failedS, ErrorCode: 131049, Ref: "b", At: at(11 * time.Minute)}}, allowed(), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			biz, pol, a, b := limitFixture(t)
			for _, r := range tc.reports {
				rel := a
				if r.Ref == "b" {
					rel = b
				}
				applySlot(biz, rel, pol, r)
			}
			if got := reachedSum(biz.Reached, at(hour).Unix()); got != tc.count {
				t.Errorf("users counted %d, want %d (%+v)", got, tc.count, biz.Reached)
			}
			user := &Relationship{}
			in := &Input{Check: Check{Category: util, SendAt: at(hour)}, Rel: user, Facts: &user.Local, Business: biz, Policy: pol}
			checkDecision(t, Decide(in), tc.want)
		})
	}

	// A user whose reserved send failed is not "already reached": the next
	// template to them takes a slot again.
	biz, pol, a, _ := limitFixture(t)
	applySlot(biz, a, pol, failedA)
	if !Reserve(a, biz, pol, Send{At: at(hour), Ref: "a-retry", Category: util}) {
		t.Error("the retry to A took no slot")
	}
	if got := reachedSum(biz.Reached, at(hour).Unix()); got != 2 {
		t.Errorf("after the retry: %d users counted, want 2", got)
	}
}
