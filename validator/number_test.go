package validator

import (
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func ecoReason(until time.Time) string { return "DEFER ECOSYSTEM_LIMIT 131049 " + fmtT(until) }

func TestEcosystemLimit(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fixture)
		cat   sgv1.Category
		when  time.Time
		want  want
	}{
		{
			name:  "cooldown after a 131049",
			setup: func(f *fixture) { f.fail(mkt, 131049, t0) },
			when:  at(hour),
			want:  deferred(at(24*hour), ecoReason(at(24*hour))),
		},
		{
			name:  "over at the end of the cooldown",
			setup: func(f *fixture) { f.fail(mkt, 131049, t0) },
			when:  at(24 * hour),
			want:  allowed(),
		},
		{
			name:  "utility is not limited",
			setup: func(f *fixture) { f.fail(mkt, 131049, t0) },
			cat:   util,
			when:  at(hour),
			want:  allowed(),
		},
		{
			name:  "lifted while the service window is open",
			setup: func(f *fixture) { f.fail(mkt, 131049, t0); f.inbound(at(2 * hour)) },
			when:  at(3 * hour),
			want:  allowed(),
		},
		{
			name:  "back once the window closes",
			setup: func(f *fixture) { f.fail(mkt, 131049, t0); f.fail(mkt, 131049, at(24*hour)); f.inbound(at(2 * hour)) },
			when:  at(26 * hour),
			want:  deferred(at(72*hour), ecoReason(at(72*hour))),
		},
		{
			name:  "a window that opens later ends it early",
			setup: func(f *fixture) { f.fail(mkt, 131049, t0); f.inbound(at(5 * hour)) },
			when:  at(hour),
			want:  deferred(at(5*hour), ecoReason(at(5*hour))),
		},
		{
			name:  "a 131049 closed by 131047 lifts nothing",
			setup: func(f *fixture) { f.fail(mkt, 131049, t0); f.inbound(at(2 * hour)); f.fail(svc, 131047, at(150*min1)) },
			when:  at(3 * hour),
			want:  deferred(at(24*hour), ecoReason(at(24*hour))),
		},
		{
			name:  "rule off with a zero cooldown",
			setup: func(f *fixture) { f.fail(mkt, 131049, t0); f.pol.EcosystemCooldown = 0 },
			when:  at(hour),
			want:  allowed(),
		},
		{
			name:  "a delivered marketing message after it resets it",
			setup: func(f *fixture) { noCaps(f); f.fail(mkt, 131049, t0); f.deliver(mkt, at(2*hour)) },
			when:  at(3 * hour),
			want:  allowed(),
		},
		{
			name:  "a delivered utility message does not",
			setup: func(f *fixture) { f.fail(mkt, 131049, t0); f.deliver(util, at(2*hour)) },
			when:  at(3 * hour),
			want:  deferred(at(24*hour), ecoReason(at(24*hour))),
		},
		{
			name: "a marketing message delivered inside the window proves nothing",
			setup: func(f *fixture) {
				f.fail(mkt, 131049, t0)
				f.fail(mkt, 131049, at(24*hour)) // 48 h, until +72 h
				f.inbound(at(30 * hour))
				f.deliver(mkt, at(31*hour))
			},
			when: at(60 * hour),
			want: deferred(at(72*hour), ecoReason(at(72*hour))),
		},
		{
			name:  "a 131049 older than a delivery reported late starts nothing",
			setup: func(f *fixture) { noCaps(f); f.deliver(mkt, at(time.Minute)); f.fail(mkt, 131049, t0) },
			when:  at(hour),
			want:  allowed(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.setup(f)
			cat := tc.cat
			if cat == 0 {
				cat = mkt
			}
			checkDecision(t, f.decide(cat, tc.when), tc.want)
		})
	}
}

func TestEcosystemDetail(t *testing.T) {
	f := newFixture()
	f.fail(mkt, 131049, t0)
	f.fail(mkt, 131049, at(24*hour))
	d := f.decide(mkt, at(25*hour))
	want := "Meta refused marketing to this number with 131049 (per-user marketing limit) on 2026-11-27 10:00 UTC; cooldown 48h (2nd in a row) ends 2026-11-29 10:00 UTC."
	if len(d.Reasons) != 1 || d.Reasons[0].Detail != want {
		t.Fatalf("got %+v\nwant detail %q", d.Reasons, want)
	}
}

// TestEcosystemEscalation feeds 131049 failures in order and checks the cooldown
// after each: doubling from 24 h, capped at 7 d, not escalated by failures of
// messages in flight, and reset by a delivered marketing message.
func TestEcosystemEscalation(t *testing.T) {
	type step struct {
		fail    time.Duration // a 131049 at t0+fail (or a delivery, if deliver)
		deliver bool
		streak  int
		until   time.Duration // cooldown end after the step, from t0
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"doubles up to the cap", []step{
			{fail: 0, streak: 1, until: 24 * hour},
			{fail: 24 * hour, streak: 2, until: 72 * hour},        // 48 h
			{fail: 72 * hour, streak: 3, until: 168 * hour},       // 96 h
			{fail: 170 * hour, streak: 4, until: 338 * hour},      // 192 h capped at 7 d
			{fail: 400 * hour, streak: 5, until: 568 * hour},      // still 7 d
			{fail: 401 * hour, streak: 5, until: 568 * hour},      // in flight
			{fail: 399 * hour, streak: 5, until: 568 * hour},      // older
			{fail: 500 * hour, streak: 5, until: 568 * hour},      // in flight
			{fail: 568 * hour, streak: 6, until: 568*hour + week}, // at the end: escalates
		}},
		{"in-flight failures do not escalate", []step{
			{fail: 0, streak: 1, until: 24 * hour},
			{fail: hour, streak: 1, until: 24 * hour},
			{fail: 23*hour + 59*time.Minute, streak: 1, until: 24 * hour},
			{fail: 30 * hour, streak: 2, until: 78 * hour},
		}},
		{"a delivery resets the streak", []step{
			{fail: 0, streak: 1, until: 24 * hour},
			{fail: 24 * hour, streak: 2, until: 72 * hour},
			{fail: 80 * hour, deliver: true, streak: 0},
			{fail: 90 * hour, streak: 1, until: 114 * hour},
		}},
		{"an older failure reported late changes nothing", []step{
			{fail: 2 * hour, streak: 1, until: 26 * hour},
			{fail: hour, streak: 1, until: 26 * hour},
			{fail: -30 * hour, streak: 1, until: 26 * hour},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			for i, s := range tc.steps {
				if s.deliver {
					f.deliver(mkt, at(s.fail))
				} else {
					f.fail(mkt, 131049, at(s.fail))
				}
				var until time.Time
				if s.streak > 0 {
					until = at(s.until)
				}
				if f.facts.EcoStreak != s.streak || !f.facts.EcosystemUntil(&f.pol).Equal(until) {
					t.Fatalf("step %d: streak %d until %s, want %d until %s", i, f.facts.EcoStreak,
						fmtT(f.facts.EcosystemUntil(&f.pol)), s.streak, fmtT(until))
				}
			}
		})
	}
}

func TestExperiment(t *testing.T) {
	flag := "DEFER EXPERIMENT 130472 " + fmtT(at(30*24*hour))
	tests := []struct {
		name  string
		setup func(f *fixture)
		cat   sgv1.Category
		when  time.Time
		want  want
	}{
		{"flagged for 30 days", func(f *fixture) { f.fail(mkt, 130472, t0) }, mkt, at(hour),
			deferred(at(30*24*hour), flag)},
		{"expired", func(f *fixture) { f.fail(mkt, 130472, t0) }, mkt, at(30 * 24 * hour), allowed()},
		{"utility passes", func(f *fixture) { f.fail(mkt, 130472, t0) }, util, at(hour), allowed()},
		{"lifted while the window is open", func(f *fixture) { f.fail(mkt, 130472, t0); f.inbound(at(2 * hour)) }, mkt, at(3 * hour), allowed()},
		{"back after the window", func(f *fixture) { f.fail(mkt, 130472, t0); f.inbound(at(2 * hour)) }, mkt, at(26 * hour),
			deferred(at(30*24*hour), flag)},
		{"cleared by a marketing message delivered outside the window", func(f *fixture) {
			noCaps(f)
			f.fail(mkt, 130472, t0)
			f.deliver(mkt, at(2*hour))
		}, mkt, at(3 * hour), allowed()},
		{"not cleared by one delivered inside the window", func(f *fixture) {
			f.fail(mkt, 130472, t0)
			f.inbound(at(hour))
			f.deliver(mkt, at(2*hour))
		}, mkt, at(26 * hour), deferred(at(30*24*hour), flag)},
		{"rule off with a zero TTL", func(f *fixture) { f.fail(mkt, 130472, t0); f.pol.ExperimentTTL = 0 }, mkt, at(hour), allowed()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.setup(f)
			checkDecision(t, f.decide(tc.cat, tc.when), tc.want)
		})
	}
}

func TestUndeliverable(t *testing.T) {
	reason := func(until time.Time) string { return "DEFER UNDELIVERABLE 131026 " + fmtT(until) }
	t.Run("backoff steps 24h, 72h, then 7d, for every category", func(t *testing.T) {
		f := newFixture()
		steps := []struct {
			fail, until time.Duration
		}{
			{0, 24 * hour},
			{hour, 24 * hour},             // in flight
			{24 * hour, 96 * hour},        // 72 h
			{96 * hour, 96*hour + week},   // 7 d
			{200 * hour, 96*hour + week},  // in flight
			{400 * hour, 400*hour + week}, // 7 d again
		}
		for _, s := range steps {
			f.fail(util, 131026, at(s.fail))
			u := at(s.until)
			for _, cat := range allCategories {
				w := deferred(u, reason(u))
				if cat == svc { // no window either
					w = denied("DENY SERVICE_WINDOW 131047 -", reason(u))
				}
				checkDecision(t, f.decide(cat, at(s.fail+time.Minute)), w)
			}
		}
	})
	tests := []struct {
		name  string
		setup func(f *fixture)
		when  time.Duration
		want  want
	}{
		{"reset by a delivery", func(f *fixture) { f.fail(util, 131026, t0); f.deliver(util, at(hour)) }, 2 * hour, allowed()},
		{"reset by an inbound message", func(f *fixture) { f.fail(util, 131026, t0); f.inbound(at(hour)) }, 2 * hour, allowed()},
		{"not reset by an inbound call (the next failure escalates)", func(f *fixture) {
			f.fail(util, 131026, t0)
			ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Kind: sgv1.InboundKind_INBOUND_KIND_CALL, At: at(hour)})
			f.fail(util, 131026, at(26*hour)) // after the backoff and the call's window
		}, 27 * hour, deferred(at(98*hour), reason(at(98*hour)))},
		{"not reset by an earlier delivery", func(f *fixture) { f.deliver(util, at(-hour)); f.fail(util, 131026, t0) },
			2 * hour, deferred(at(24*hour), reason(at(24*hour)))},
		{"a failure older than a delivery changes nothing", func(f *fixture) { f.deliver(util, at(hour)); f.fail(util, 131026, t0) },
			2 * hour, allowed()},
		{"after a reset the steps start over", func(f *fixture) {
			f.fail(util, 131026, t0)
			f.fail(util, 131026, at(24*hour))
			f.deliver(util, at(30*hour))
			f.fail(util, 131026, at(90*hour))
		}, 91 * hour, deferred(at(114*hour), reason(at(114*hour)))},
		{"rule off with no steps", func(f *fixture) { f.fail(util, 131026, t0); f.pol.UndeliverableBackoff = nil }, 2 * hour, allowed()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.setup(f)
			checkDecision(t, f.decide(util, at(tc.when)), tc.want)
		})
	}
}
