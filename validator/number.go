package validator

import (
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The rules learned from facts about the number that Meta holds across all
// businesses: ECOSYSTEM_LIMIT (131049), EXPERIMENT (130472) and UNDELIVERABLE
// (131026). They read in.Facts (shared or per business, as the policy says).
//
// A deferral applies whenever the judged time is before its end, also for times
// before the failure that started it (a check planned "in the past" is judged with
// everything known now). That keeps every rule's Until the earliest time it stops
// applying, which RetryAt relies on.

// maxDuration bounds computed backoffs (a century) so that doubling never overflows.
const maxDuration = 100 * 365 * day

// ecoCooldown is the cooldown after the streak-th consecutive 131049:
// EcosystemCooldown * 2^(streak-1), capped at EcosystemCooldownMax (a zero maximum
// leaves it uncapped, up to maxDuration). Zero when the rule is off.
func ecoCooldown(p *Policy, streak int) time.Duration {
	d := p.EcosystemCooldown
	if d <= 0 || streak <= 0 {
		return 0
	}
	m := p.EcosystemCooldownMax
	if m <= 0 {
		m = maxDuration
	}
	for i := 1; i < streak && d < m; i++ {
		d *= 2
	}
	return min(d, m)
}

// undeliverableBackoff is the backoff after the streak-th consecutive 131026:
// UndeliverableBackoff[min(streak, len)-1]. Zero when the rule is off.
func undeliverableBackoff(p *Policy, streak int) time.Duration {
	n := len(p.UndeliverableBackoff)
	if n == 0 || streak <= 0 {
		return 0
	}
	return max(p.UndeliverableBackoff[min(streak, n)-1], 0)
}

// EcosystemUntil is when the current ECOSYSTEM_LIMIT cooldown ends (ignoring the
// service window, which lifts it while open), or the zero time when there is none.
func (f *NumberFacts) EcosystemUntil(p *Policy) time.Time {
	if f.EcoStreak <= 0 || f.EcoAt.IsZero() {
		return time.Time{}
	}
	d := ecoCooldown(p, f.EcoStreak)
	if d <= 0 {
		return time.Time{}
	}
	return f.EcoAt.Add(d)
}

// ExperimentUntil is when the EXPERIMENT flag expires, or the zero time when the
// number is not flagged (or the policy keeps no flag).
func (f *NumberFacts) ExperimentUntil(p *Policy) time.Time {
	if f.ExperimentAt.IsZero() || p.ExperimentTTL <= 0 {
		return time.Time{}
	}
	return f.ExperimentAt.Add(p.ExperimentTTL)
}

// UndeliverableUntil is when the current UNDELIVERABLE backoff ends, or the zero
// time when there is none.
func (f *NumberFacts) UndeliverableUntil(p *Policy) time.Time {
	if f.UndeliverableStreak <= 0 || f.UndeliverableAt.IsZero() {
		return time.Time{}
	}
	d := undeliverableBackoff(p, f.UndeliverableStreak)
	if d <= 0 {
		return time.Time{}
	}
	return f.UndeliverableAt.Add(d)
}

// ecosystemLimit is ECOSYSTEM_LIMIT: marketing waits out the cooldown after a
// 131049, except while the service window is open (Meta does not count marketing
// inside it).
func ecosystemLimit(in *Input, t time.Time, h *hit) bool {
	if in.Check.Category != marketing {
		return false
	}
	f := in.Facts
	end := f.EcosystemUntil(in.Policy)
	if end.IsZero() || !t.Before(end) || windowOpen(in.Rel, in.Policy, in.Check.Sender, t) {
		return false
	}
	*h = hit{
		rule: sgv1.Rule_RULE_ECOSYSTEM_LIMIT, verdict: deferV, code: 131049,
		until: liftedByWindow(in, t, end),
		at:    f.EcoAt, n: f.EcoStreak, d: ecoCooldown(in.Policy, f.EcoStreak),
	}
	return true
}

// experiment is EXPERIMENT: a number in Meta's marketing experiment (130472) gets
// marketing only inside the service window or a free entry point window, until
// the flag expires.
func experiment(in *Input, t time.Time, h *hit) bool {
	if in.Check.Category != marketing {
		return false
	}
	f := in.Facts
	end := f.ExperimentUntil(in.Policy)
	if end.IsZero() || !t.Before(end) || windowOpen(in.Rel, in.Policy, in.Check.Sender, t) ||
		freeEntryOpen(in.Rel, in.Check.Sender, t) {
		return false
	}
	*h = hit{
		rule: sgv1.Rule_RULE_EXPERIMENT, verdict: deferV, code: 130472,
		until: liftedByFreeEntry(in, t, end),
		at:    f.ExperimentAt, d: in.Policy.ExperimentTTL,
	}
	return true
}

// undeliverable is UNDELIVERABLE: after consecutive 131026 failures every send
// waits out a growing backoff, except while the service window is open (a user
// who just wrote is on WhatsApp).
func undeliverable(in *Input, t time.Time, h *hit) bool {
	f := in.Facts
	end := f.UndeliverableUntil(in.Policy)
	if end.IsZero() || !t.Before(end) || windowOpen(in.Rel, in.Policy, in.Check.Sender, t) {
		return false
	}
	*h = hit{
		rule: sgv1.Rule_RULE_UNDELIVERABLE, verdict: deferV, code: 131026, until: liftedByWindow(in, t, end),
		at: f.UndeliverableAt, n: f.UndeliverableStreak, d: undeliverableBackoff(in.Policy, f.UndeliverableStreak),
	}
	return true
}
