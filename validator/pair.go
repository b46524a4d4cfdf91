package validator

import (
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// PAIR_RATE meters sends from one sender to this number as Meta does: one per
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
//
// Meta meters per sender: a check from sender A counts A's sends and the
// implicit sender's (sends recorded with no sender may have been A's); a check
// that names no sender counts every send, as before senders were kept apart
// (see concerns).

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
// conformant. Only runs of more than B sends constrain anything, so a history of
// fewer than B sends answers t at once.
//
// With the new send at index g (between a_{g-1} and a_g), the conditions are, for
// i < g <= k (the terms whose bound is not positive hold anyway, the times being
// sorted):
//
//	runs ending at it:    T >= a_i + (g-i-B+1)*I, i.e. T >= P_g + (g-B+1)*I
//	runs starting at it:  T <= a_k - (k-g-B+2)*I, i.e. T <= S_g + (g+B-2)*I
//	runs passing over it: a_k - a_i >= (k-i-B+2)*I, i.e. S_g - P_g >= (2-B)*I
//
// where P_g = max over i < g of a_i - i*I and S_g = min over k >= g of a_k - k*I.
// The gaps are tried in time order from t, each in constant time: linear in the
// history, however long the policy keeps it.
func gcraFree(rel *Relationship, p *Policy, sender string, t time.Time) time.Time {
	b, iv := p.PairBurst, p.PairInterval
	if len(rel.Sends) < b {
		return t
	}
	var buf, sbuf [BaseSends]time.Time // longer histories spill to the heap
	a := buf[:0]
	sorted := true
	for i := range rel.Sends {
		if !concerns(rel.Sends[i].Sender, sender) {
			continue
		}
		if k := len(a); k > 0 && rel.Sends[i].At.Before(a[k-1]) {
			sorted = false
		}
		a = append(a, rel.Sends[i].At)
	}
	n := len(a)
	if n < b {
		return t
	}
	if !sorted {
		sortTimes(a)
	}
	key := func(i int) time.Time { return a[i].Add(-time.Duration(i) * iv) }
	suf := sbuf[:0]
	if n > len(sbuf) {
		suf = make([]time.Time, 0, n)
	}
	suf = suf[:n]
	for k := n - 1; k >= 0; k-- {
		suf[k] = key(k)
		if k < n-1 && suf[k+1].Before(suf[k]) {
			suf[k] = suf[k+1]
		}
	}
	g := 0 // the new send goes after every send at or before T: index g
	var pre time.Time
	for g < n && !a[g].After(t) {
		pre = maxKey(pre, g, key(g))
		g++
	}
	for ; ; g++ {
		lo := t
		if g > 0 {
			lo = maxTime(lo, a[g-1])
			lo = maxTime(lo, pre.Add(time.Duration(g-b+1)*iv))
		}
		if g == n {
			return lo
		}
		if lo.Before(a[g]) && // else it belongs to a later gap
			!lo.After(suf[g].Add(time.Duration(g+b-2)*iv)) &&
			(g == 0 || suf[g].Sub(pre) >= time.Duration(2-b)*iv) {
			return lo
		}
		pre = maxKey(pre, g, key(g))
	}
}

// maxKey is the running maximum P of gcraFree: v when it is the first (i == 0).
func maxKey(cur time.Time, i int, v time.Time) time.Time {
	if i == 0 || v.After(cur) {
		return v
	}
	return cur
}

// limitedUntil is when this sender's backoff after its last 131056 ends (zero
// if none).
func (st *SenderState) limitedUntil() time.Time {
	if st.PairStreak <= 0 || st.PairLimitedAt.IsZero() {
		return time.Time{}
	}
	return st.PairLimitedAt.Add(pairBackoff(st.PairStreak))
}

// pairLimited returns the state whose 131056 backoff ends last among those that
// concern a send from sender, and when it ends (zero if none).
func pairLimited(rel *Relationship, sender string) (*SenderState, time.Time) {
	var (
		last  *SenderState
		until time.Time
	)
	for i := range rel.states() {
		st := rel.stateAt(i)
		if u := st.limitedUntil(); concerns(st.Sender, sender) && u.After(until) {
			last, until = st, u
		}
	}
	return last, until
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
	var (
		until, limitedAt time.Time
		parts            int
	)
	if u := gcraFree(rel, p, in.Check.Sender, t); t.Before(u) {
		until, parts = u, parts|pairGCRA
	}
	if st, u := pairLimited(rel, in.Check.Sender); t.Before(u) {
		until, parts, limitedAt = maxTime(until, u), parts|pair131056, st.PairLimitedAt
	}
	if parts == 0 {
		return false
	}
	*h = hit{
		rule: sgv1.Rule_RULE_PAIR_RATE, verdict: deferV, code: 131056, until: until,
		n: parts, at: limitedAt,
	}
	return true
}

// reservePair records one send at `at` in its sender's bucket.
func reservePair(st *SenderState, p *Policy, at time.Time) {
	if p.PairInterval <= 0 {
		return
	}
	st.PairTAT = maxTime(st.PairTAT, at).Add(p.PairInterval)
}
