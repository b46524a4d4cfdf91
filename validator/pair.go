package validator

import (
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// PAIR_RATE meters sends from this business to this number as Meta does: one per
// PairInterval sustained, bursts of PairBurst borrowing from future quota (a GCRA).
// After Meta's own 131056, the sender waits 4^n seconds after the n-th consecutive
// one (Meta's advice). A zero PairInterval or PairBurst turns the whole rule off.
//
// The GCRA is judged from the send times, not from Relationship.PairTAT. Unrolled,
// the GCRA admits sends a_0 <= a_1 <= ... iff every run of them satisfies
// a_k - a_i >= (k-i-B+1) * I (B the burst, I the interval): any n sends in a row
// span at least (n-B) intervals. A send at T is allowed iff inserting it keeps every
// run through it that way, so a reservation planned for later counts exactly like
// one in the past. A single TAT cannot do that: a reservation planned for tomorrow
// would move it to tomorrow and block every check before. PairTAT is still kept
// (max(PairTAT, at) + I per send), for GetContact and for expiry. Sends of every
// category count, failed ones too (Meta saw them).

// maxPairStreak bounds the 4^n backoff (4^16 s is over a century).
const maxPairStreak = 16

func pairOn(p *Policy) bool { return p.PairInterval > 0 && p.PairBurst > 0 }

// pairBackoff is Meta's advice after the n-th consecutive 131056: 4^n seconds.
func pairBackoff(n int) time.Duration {
	d := time.Second
	for range min(n, maxPairStreak) {
		d *= 4
	}
	return d
}

// gcraFree returns the earliest T >= t at which one more send keeps the sends
// conformant. Only runs of at least B sends constrain anything, so a history of
// fewer than B sends answers t at once.
func gcraFree(rel *Relationship, p *Policy, t time.Time) time.Time {
	b, iv := p.PairBurst, p.PairInterval
	n := len(rel.Sends)
	if n < b {
		return t
	}
	var buf [MaxSends]time.Time
	a := buf[:0]
	sorted := true
	for i := range rel.Sends {
		if k := len(a); k > 0 && rel.Sends[i].At.Before(a[k-1]) {
			sorted = false
		}
		a = append(a, rel.Sends[i].At)
	}
	if !sorted {
		sortTimes(a)
	}
	g := 0 // the new send goes after every send at or before T: index g
	for g < n && !a[g].After(t) {
		g++
	}
	for ; ; g++ {
		lo := t
		if g > 0 {
			lo = maxTime(lo, a[g-1])
		}
		// Runs ending at the new send: T - a_i >= (g-i-B+1) * I.
		for i := 0; i < g; i++ {
			if need := g - i - b + 1; need > 0 {
				lo = maxTime(lo, a[i].Add(time.Duration(need)*iv))
			}
		}
		if g == n {
			return lo
		}
		if gapFits(a, g, b, iv, lo) {
			return lo
		}
	}
}

// gapFits reports whether a send at lo, inserted at index g (before a[g]), keeps
// the runs that start at it or pass over it conformant.
func gapFits(a []time.Time, g, b int, iv time.Duration, lo time.Time) bool {
	if !lo.Before(a[g]) {
		return false // it belongs to a later gap
	}
	// Runs starting at the new send: a_k - T >= (k-g-B+2) * I.
	for k := g + b - 2; k < len(a); k++ {
		if need := k - g - b + 2; need > 0 && a[k].Sub(lo) < time.Duration(need)*iv {
			return false
		}
	}
	// Runs passing over it hold one more send: a_k - a_i >= (k-i-B+2) * I.
	for i := 0; i < g; i++ {
		for k := max(g, i+b-1); k < len(a); k++ {
			if need := k - i - b + 2; need > 0 && a[k].Sub(a[i]) < time.Duration(need)*iv {
				return false
			}
		}
	}
	return true
}

// pairLimitedUntil is when the backoff after the last 131056 ends (zero if none).
func pairLimitedUntil(rel *Relationship) time.Time {
	if rel.PairStreak <= 0 || rel.PairLimitedAt.IsZero() {
		return time.Time{}
	}
	return rel.PairLimitedAt.Add(pairBackoff(rel.PairStreak))
}

// Bits of hit.n for PAIR_RATE: which part applies.
const (
	pairGCRA = 1 << iota
	pair131056
)

func pairRate(in *Input, t time.Time, h *hit) bool {
	p, rel := in.Policy, in.Rel
	if !pairOn(p) {
		return false
	}
	var until time.Time
	parts := 0
	if u := gcraFree(rel, p, t); t.Before(u) {
		until, parts = u, parts|pairGCRA
	}
	if u := pairLimitedUntil(rel); t.Before(u) {
		until, parts = maxTime(until, u), parts|pair131056
	}
	if parts == 0 {
		return false
	}
	*h = hit{
		rule: sgv1.Rule_RULE_PAIR_RATE, verdict: deferV, code: 131056, until: until,
		n: parts, at: rel.PairLimitedAt,
	}
	return true
}

// reservePair records one send at `at` in the bucket.
func reservePair(rel *Relationship, p *Policy, at time.Time) {
	if p.PairInterval <= 0 {
		return
	}
	rel.PairTAT = maxTime(rel.PairTAT, at).Add(p.PairInterval)
}
