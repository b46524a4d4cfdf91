package validator

import (
	"testing"
	"time"
)

// TestIdentityChange: the business's own opt-out and Meta's per-sender
// records move to the new identity (merged, the later time kept, the stop
// winning a tie), consent does not, and the old identity keeps none of them;
// a repeated move changes nothing.
func TestIdentityChange(t *testing.T) {
	const a, b = "106540352242922", "301234567890123"
	tests := []struct {
		name             string
		old, nu          func(r *Relationship)
		oldWant, newWant want // marketing from sender b at t0, after the move
	}{
		{"own opt-out moves",
			func(r *Relationship) { SetOptOut(r, true, "support ticket", at(-2*hour)) }, nil,
			allowed(), denied("DENY OPTED_OUT -")},
		{"Meta's record from sender a moves, and still predicts 131050 only for a",
			func(r *Relationship) { ApplyUserPreference(r, a, true, at(-2*hour)) }, nil,
			allowed(), denied("DENY OPTED_OUT -")},
		{"a lifted opt-out stays lifted",
			func(r *Relationship) {
				SetOptOut(r, true, "x", at(-3*hour))
				SetOptOut(r, false, "y", at(-2*hour))
			}, nil,
			allowed(), allowed()},
		{"the new identity's later stop is kept",
			func(r *Relationship) { SetOptOut(r, false, "form", at(-3*hour)) },
			func(r *Relationship) { SetOptOut(r, true, "STOP", at(-hour)) },
			allowed(), denied("DENY OPTED_OUT -")},
		{"a resume on the new identity at the same time as the moved stop: the stop wins",
			func(r *Relationship) { ApplyUserPreference(r, b, true, at(-hour)) },
			func(r *Relationship) { ApplyUserPreference(r, b, false, at(-hour)) },
			allowed(), denied("DENY OPTED_OUT 131050 -")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old, nu := newFixture(), newFixture()
			tc.old(&old.rel)
			if tc.nu != nil {
				tc.nu(&nu.rel)
			}
			for range 2 { // a repeated webhook
				MoveOptOuts(&old.rel, &nu.rel, "user_changed_number", at(-time.Minute))
			}
			DropIdentity(&old.rel, "user_changed_number", at(-time.Minute))
			old.chk.Sender, nu.chk.Sender = b, b
			checkDecision(t, old.decide(mkt, t0), tc.oldWant)
			checkDecision(t, nu.decide(mkt, t0), tc.newWant)
		})
	}

	// Consent stays behind, and is dropped there.
	old, nu := newFixture(), newFixture()
	old.pol.RequireOptIn, nu.pol.RequireOptIn = true, true
	SetOptOut(&old.rel, false, "web form", at(-hour))
	MoveOptOuts(&old.rel, &nu.rel, "user_changed_number", t0)
	DropIdentity(&old.rel, "user_changed_number", t0)
	checkDecision(t, old.decide(mkt, t0), denied("DENY NO_CONSENT -"))
	checkDecision(t, nu.decide(mkt, t0), denied("DENY NO_CONSENT -"))
}
