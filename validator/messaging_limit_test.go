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
