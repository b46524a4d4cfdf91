package validator

import (
	"testing"
	"time"
)

func TestRelationshipExpiresAt(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fixture)
		want  time.Time
	}{
		{"nothing", func(*fixture) {}, time.Unix(0, 0).UTC()},
		{"own opt-out: forever", func(f *fixture) { SetOptOut(&f.rel, true, "x", t0) }, time.Time{}},
		{"Meta's opt-out: forever", func(f *fixture) { ApplyUserPreference(&f.rel, "", true, t0) }, time.Time{}},
		{"consent: forever", func(f *fixture) { SetOptOut(&f.rel, false, "x", t0) }, time.Time{}},
		{"window", func(f *fixture) { f.inbound(t0) }, at(24 * hour)},
		{"a send: the longest window", func(f *fixture) { f.reserve(mkt, "p", t0, "a") }, at(week)},
		{"a 131056 backoff", func(f *fixture) { f.pol.FrequencyCaps = nil; f.rel.PairStreak, f.rel.PairLimitedAt = 3, t0 }, at(64 * sec)},
		{"a lifted Meta opt-out: against late reports", func(f *fixture) {
			ApplyUserPreference(&f.rel, "", true, t0)
			ApplyUserPreference(&f.rel, "", false, at(hour))
		}, at(hour + 8*24*hour)},
		{"facts held locally", func(f *fixture) {
			f.rel.Local.ExperimentAt = t0
		}, at(30 * 24 * hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.setup(f)
			if got := f.rel.ExpiresAt(&f.pol); !got.Equal(tc.want) || got.IsZero() != tc.want.IsZero() {
				t.Errorf("got %s, want %s", fmtT(got), fmtT(tc.want))
			}
		})
	}
}

func TestNumberFactsExpiresAt(t *testing.T) {
	p := Defaults()
	tests := []struct {
		name string
		f    NumberFacts
		want time.Time
	}{
		{"nothing", NumberFacts{WaID: "5511987654321"}, time.Unix(0, 0).UTC()},
		{"cooldown, and the next one's length to escalate", NumberFacts{EcoAt: t0, EcoStreak: 1}, at(24*hour + 48*hour)},
		{"capped cooldown", NumberFacts{EcoAt: t0, EcoStreak: 4}, at(week + week)},
		{"experiment", NumberFacts{ExperimentAt: t0}, at(30 * 24 * hour)},
		{"undeliverable", NumberFacts{UndeliverableAt: t0, UndeliverableStreak: 1}, at(24*hour + 72*hour)},
		{"a delivery, against late failures", NumberFacts{LastDeliveredAt: t0}, at(8 * 24 * hour)},
		{"the latest of all", NumberFacts{EcoAt: t0, EcoStreak: 1, LastMarketingDeliveredAt: at(-hour), ExperimentAt: at(-24 * hour)}, at(29 * 24 * hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.f.ExpiresAt(&p)
			if got.IsZero() || !got.Equal(tc.want) {
				t.Errorf("got %s, want %s", fmtT(got), fmtT(tc.want))
			}
		})
	}
}
