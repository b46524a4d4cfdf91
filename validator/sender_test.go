package validator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Two senders of one business (phone_number_ids).
const (
	senderA = "106540352242922"
	senderB = "301234567890123"
)

// inboundFrom reports a message from the user to sender at `when`, with an ad
// referral when ref.
func (f *fixture) inboundFrom(sender string, when time.Time, ref bool) {
	ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{At: when, Text: "hi", Sender: sender, Referral: ref})
}

// reserveFrom reserves a send from sender.
func (f *fixture) reserveFrom(cat sgv1.Category, tmpl string, when time.Time, ref, sender string) {
	Reserve(&f.rel, &f.biz, &f.pol, Send{At: when, Ref: ref, Category: cat, Template: tmpl, Sender: sender})
}

// failFrom reports a FAILED send from sender; sentAt, when set, is its SENT.
func (f *fixture) failFrom(sender string, cat sgv1.Category, code int32, id string, sentAt, when time.Time) {
	if !sentAt.IsZero() {
		f.result(Result{Status: sent, Category: cat, MessageID: id, At: sentAt, Sender: sender})
	}
	f.result(Result{Status: failedS, ErrorCode: code, Category: cat, MessageID: id, At: when, Sender: sender})
}

// TestPerSender judges checks from sender A, from sender B and without a sender
// against state learned per sender (DESIGN.md, Who is who).
func TestPerSender(t *testing.T) {
	var zero time.Time
	tests := []struct {
		name   string
		setup  func(f *fixture)
		cat    sgv1.Category
		when   time.Duration
		a, b   want // checks from A and from B
		none   want // a check that names no sender
		detail string
	}{
		{
			name:  "Meta's 131050 from A blocks marketing from every sender; 131050 only on A's",
			setup: func(f *fixture) { f.failFrom(senderA, mkt, 131050, "w1", zero, at(-hour)) },
			cat:   mkt,
			a:     denied("DENY OPTED_OUT 131050 -"),
			b:     denied("DENY OPTED_OUT -"),
			none:  denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name:   "B's reason names the sender whose record it is",
			setup:  func(f *fixture) { ApplyUserPreference(&f.rel, senderA, true, at(-hour)) },
			cat:    mkt,
			a:      denied("DENY OPTED_OUT 131050 -"),
			b:      denied("DENY OPTED_OUT -"),
			none:   denied("DENY OPTED_OUT 131050 -"),
			detail: `Meta recorded a stop (131050) on 2026-11-26 09:00 UTC from sender "106540352242922"`,
		},
		{
			name: "A's record is lifted by A's resume, not by B's",
			setup: func(f *fixture) {
				ApplyUserPreference(&f.rel, senderA, true, at(-3*hour))
				ApplyUserPreference(&f.rel, senderB, false, at(-hour))
			},
			cat:  mkt,
			a:    denied("DENY OPTED_OUT 131050 -"),
			b:    denied("DENY OPTED_OUT -"),
			none: denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name: "A's record is lifted by A's resume",
			setup: func(f *fixture) {
				ApplyUserPreference(&f.rel, senderA, true, at(-3*hour))
				ApplyUserPreference(&f.rel, senderA, false, at(-hour))
			},
			cat: mkt, a: allowed(), b: allowed(), none: allowed(),
		},
		{
			name: "A's record is not lifted by B's delivered marketing sent after it",
			setup: func(f *fixture) {
				noCaps(f)
				f.failFrom(senderA, mkt, 131050, "w1", zero, at(-3*hour))
				f.sentDelivered(senderB, mkt, "w2", at(-2*hour), at(-hour))
			},
			cat:  mkt,
			a:    denied("DENY OPTED_OUT 131050 -"),
			b:    denied("DENY OPTED_OUT -"),
			none: denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name: "A's record is lifted by A's delivered marketing sent after it",
			setup: func(f *fixture) {
				noCaps(f)
				f.failFrom(senderA, mkt, 131050, "w1", zero, at(-3*hour))
				f.sentDelivered(senderA, mkt, "w2", at(-2*hour), at(-hour))
			},
			cat: mkt, a: allowed(), b: allowed(), none: allowed(),
		},
		{
			name: "the implicit sender's record blocks every sender, predicting 131050 only without a sender",
			setup: func(f *fixture) {
				f.failFrom("", mkt, 131050, "w1", zero, at(-hour))
			},
			cat:  mkt,
			a:    denied("DENY OPTED_OUT -"),
			b:    denied("DENY OPTED_OUT -"),
			none: denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name: "the implicit sender's record is lifted by Meta's evidence from any sender",
			setup: func(f *fixture) {
				noCaps(f)
				f.failFrom("", mkt, 131050, "w1", zero, at(-3*hour))
				f.sentDelivered(senderB, mkt, "w2", at(-2*hour), at(-hour))
			},
			cat: mkt, a: allowed(), b: allowed(), none: allowed(),
		},
		{
			name:  "a window opened with A does not open B's",
			setup: func(f *fixture) { f.inboundFrom(senderA, at(-hour), false) },
			cat:   svc,
			a:     allowed(),
			b:     denied("DENY SERVICE_WINDOW 131047 -"),
			none:  allowed(),
		},
		{
			name:  "a window opened with the implicit sender is open with every sender",
			setup: func(f *fixture) { f.inboundFrom("", at(-hour), false) },
			cat:   svc, a: allowed(), b: allowed(), none: allowed(),
		},
		{
			name: "a 131047 from A closes A's window only",
			setup: func(f *fixture) {
				f.inboundFrom(senderA, at(-2*hour), false)
				f.inboundFrom(senderB, at(-2*hour), false)
				f.failFrom(senderA, svc, 131047, "w1", zero, at(-hour))
			},
			cat:  svc,
			a:    denied("DENY SERVICE_WINDOW 131047 -"),
			b:    allowed(),
			none: allowed(),
		},
		{
			name: "pair rate per sender: A's burst holds A back, not B",
			setup: func(f *fixture) {
				noCaps(f)
				for i := range 45 {
					f.reserveFrom(util, "", at(-sec), fmt.Sprint("r", i), senderA)
				}
			},
			cat: util,
			// A burst of 45 a second ago: the 46th fits one 6 s interval after it.
			a:    deferred(at(5*sec), "DEFER PAIR_RATE 131056 2026-11-26 10:00:05"),
			b:    allowed(),
			none: deferred(at(5*sec), "DEFER PAIR_RATE 131056 2026-11-26 10:00:05"),
		},
		{
			name: "the implicit sender's sends count for every sender",
			setup: func(f *fixture) {
				noCaps(f)
				for i := range 45 {
					f.reserveFrom(util, "", at(-sec), fmt.Sprint("r", i), "")
				}
			},
			cat:  util,
			a:    deferred(at(5*sec), "DEFER PAIR_RATE 131056 2026-11-26 10:00:05"),
			b:    deferred(at(5*sec), "DEFER PAIR_RATE 131056 2026-11-26 10:00:05"),
			none: deferred(at(5*sec), "DEFER PAIR_RATE 131056 2026-11-26 10:00:05"),
		},
		{
			name:  "a 131056 from A backs A off 4 s, not B",
			setup: func(f *fixture) { f.failFrom(senderA, util, 131056, "w1", zero, t0) },
			cat:   util,
			a:     deferred(at(4*sec), "DEFER PAIR_RATE 131056 2026-11-26 10:00:04"),
			b:     allowed(),
			none:  deferred(at(4*sec), "DEFER PAIR_RATE 131056 2026-11-26 10:00:04"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				sender string
				want   want
			}{{senderA, tt.a}, {senderB, tt.b}, {"", tt.none}} {
				f := newFixture()
				tt.setup(f)
				f.chk.Sender = c.sender
				d := f.decide(tt.cat, at(tt.when))
				t.Logf("from %q", c.sender)
				checkDecision(t, d, c.want)
				if tt.detail != "" && c.sender == senderB && !strings.Contains(d.Reasons[0].Detail, tt.detail) {
					t.Errorf("detail %q lacks %q", d.Reasons[0].Detail, tt.detail)
				}
			}
		})
	}
}

// TestFreeEntryPoint judges EXPERIMENT against the free entry point window: a
// referral answered by the same sender within 24 h opens 72 h from the answer.
func TestFreeEntryPoint(t *testing.T) {
	flagged := func(f *fixture) {
		noCaps(f)
		f.failFrom(senderA, mkt, 130472, "wx", time.Time{}, at(-40*hour))
	}
	const flagEnd = "2026-12-24 18:00:00" // 30 d after the 130472 at -40 h
	exp := "DEFER EXPERIMENT 130472 " + flagEnd
	tests := []struct {
		name  string
		setup func(f *fixture)
		when  time.Duration
		a, b  want
	}{
		{
			name:  "flagged, no entry point: deferred until the flag ends",
			setup: flagged,
			a:     deferred(at(680*hour), exp),
			b:     deferred(at(680*hour), exp),
		},
		{
			name: "a referral answered within 24 h lifts EXPERIMENT for 72 h from the answer, for that sender",
			setup: func(f *fixture) {
				flagged(f)
				f.inboundFrom(senderA, at(-30*hour), true)                  // window closed at -6 h
				f.reserveFrom(util, "welcome", at(-29*hour), "r1", senderA) // the answer
			},
			a: allowed(),
			b: deferred(at(680*hour), exp),
		},
		{
			name: "the free entry window closes 72 h after the answer",
			setup: func(f *fixture) {
				flagged(f)
				f.inboundFrom(senderA, at(-30*hour), true)
				f.reserveFrom(util, "welcome", at(-29*hour), "r1", senderA)
			},
			when: 43 * hour,
			a:    deferred(at(680*hour), exp),
			b:    deferred(at(680*hour), exp),
		},
		{
			name: "an answer after 24 h opens nothing",
			setup: func(f *fixture) {
				flagged(f)
				f.inboundFrom(senderA, at(-50*hour), true)
				f.reserveFrom(util, "welcome", at(-25*hour), "r1", senderA)
			},
			a: deferred(at(680*hour), exp),
			b: deferred(at(680*hour), exp),
		},
		{
			name: "an answer from another sender opens nothing",
			setup: func(f *fixture) {
				flagged(f)
				f.inboundFrom(senderA, at(-30*hour), true)
				f.reserveFrom(util, "welcome", at(-29*hour), "r1", senderB)
			},
			a: deferred(at(680*hour), exp),
			b: deferred(at(680*hour), exp),
		},
		{
			name: "a message without a referral is no entry point",
			setup: func(f *fixture) {
				flagged(f)
				f.inboundFrom(senderA, at(-30*hour), false)
				f.reserveFrom(util, "welcome", at(-29*hour), "r1", senderA)
			},
			a: deferred(at(680*hour), exp),
			b: deferred(at(680*hour), exp),
		},
		{
			name: "the referral reported after its answer opens it all the same",
			setup: func(f *fixture) {
				flagged(f)
				f.reserveFrom(util, "welcome", at(-29*hour), "r1", senderA)
				f.inboundFrom(senderA, at(-30*hour), true)
			},
			a: allowed(),
			b: deferred(at(680*hour), exp),
		},
		{
			name: "an answer planned ahead: deferred until it opens the window",
			setup: func(f *fixture) {
				flagged(f)
				f.pol.ServiceWindow = 0 // only the free entry point lifts it here
				f.inboundFrom(senderA, at(-hour), true)
				f.reserveFrom(util, "welcome", at(2*hour), "r1", senderA)
			},
			a: deferred(at(2*hour), "DEFER EXPERIMENT 130472 2026-11-26 12:00:00"),
			b: deferred(at(680*hour), exp),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				sender string
				want   want
			}{{senderA, tt.a}, {senderB, tt.b}} {
				f := newFixture()
				tt.setup(f)
				f.chk.Sender = c.sender
				t.Logf("from %q", c.sender)
				checkDecision(t, f.decide(mkt, at(tt.when)), c.want)
			}
		})
	}
}

// TestUndeliverableWindow: UNDELIVERABLE does not apply while the window is
// open, and a 131026 of a send made inside the window does not count.
func TestUndeliverableWindow(t *testing.T) {
	var zero time.Time
	tests := []struct {
		name  string
		setup func(f *fixture)
		when  time.Duration
		a, b  want
	}{
		{
			name: "a send made before the window: the backoff holds once the window closes",
			setup: func(f *fixture) {
				f.failFrom(senderA, util, 131026, "w1", at(-5*hour), at(-2*hour))
				f.inboundFrom(senderA, at(-3*hour), false)
			},
			when: 21*hour + 30*min1, // the window closed at 21 h; the backoff ends at 22 h
			a:    deferred(at(22*hour), "DEFER UNDELIVERABLE 131026 2026-11-27 08:00:00"),
			b:    deferred(at(22*hour), "DEFER UNDELIVERABLE 131026 2026-11-27 08:00:00"),
		},
		{
			name: "lifted while the sender's window is open",
			setup: func(f *fixture) {
				f.failFrom(senderA, util, 131026, "w1", at(-5*hour), at(-2*hour))
				f.inboundFrom(senderA, at(-3*hour), false)
			},
			a: allowed(),
			b: deferred(at(22*hour), "DEFER UNDELIVERABLE 131026 2026-11-27 08:00:00"),
		},
		{
			name: "a 131026 of a send made inside the window does not count",
			setup: func(f *fixture) {
				f.inboundFrom(senderA, at(-3*hour), false)
				f.failFrom(senderA, util, 131026, "w1", at(-150*min1), at(-2*hour))
			},
			when: 21*hour + 30*min1,
			a:    allowed(),
			b:    allowed(),
		},
		{
			name: "a send from B inside A's window counts",
			setup: func(f *fixture) {
				f.inboundFrom(senderA, at(-3*hour), false)
				f.failFrom(senderB, util, 131026, "w1", at(-150*min1), at(-2*hour))
			},
			a: allowed(),
			b: deferred(at(22*hour), "DEFER UNDELIVERABLE 131026 2026-11-27 08:00:00"),
		},
		{
			name: "a window that opens later lifts it from then",
			setup: func(f *fixture) {
				f.failFrom(senderA, util, 131026, "w1", zero, at(-2*hour))
				// A call (which opens the window without ending the streak) at a
				// time ahead: a backfill judged by a check planned before it.
				ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Kind: sgv1.InboundKind_INBOUND_KIND_CALL, At: at(3 * hour), Sender: senderA})
			},
			a: deferred(at(3*hour), "DEFER UNDELIVERABLE 131026 2026-11-26 13:00:00"),
			b: deferred(at(22*hour), "DEFER UNDELIVERABLE 131026 2026-11-27 08:00:00"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				sender string
				want   want
			}{{senderA, tt.a}, {senderB, tt.b}} {
				f := newFixture()
				tt.setup(f)
				f.chk.Sender = c.sender
				t.Logf("from %q", c.sender)
				checkDecision(t, f.decide(util, at(tt.when)), c.want)
			}
		})
	}
}

// TestSenderStateBounded: senders beyond MaxSenders are kept as the implicit
// sender's state, which concerns every sender.
func TestSenderStateBounded(t *testing.T) {
	var rel Relationship
	for i := range MaxSenders + 3 {
		rel.State(strings.Repeat("9", i+1)).LastInboundAt = at(time.Duration(i) * sec)
	}
	if len(rel.Senders) != MaxSenders {
		t.Fatalf("%d senders kept, want %d", len(rel.Senders), MaxSenders)
	}
	if got := rel.LastInboundAt; !got.Equal(at(time.Duration(MaxSenders+2) * sec)) {
		t.Errorf("implicit state's LastInboundAt = %s", fmtT(got))
	}
	for i := 1; i < len(rel.Senders); i++ {
		if rel.Senders[i-1].Sender >= rel.Senders[i].Sender {
			t.Fatalf("senders out of order: %q, %q", rel.Senders[i-1].Sender, rel.Senders[i].Sender)
		}
	}
}
