package validator

import (
	"slices"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// MESSAGING_LIMIT: Meta's tier counts the unique users a business reaches outside
// the service window per rolling 24 h. A template to a user already reached in the
// last 24 h, or inside the window, takes no slot. Business.Reached counts first
// reaches per minute.
//
// A bucket's sends happened somewhere in its minute, so a bucket counts at t from
// the start of its minute until 24 h after the end of its minute: a slot frees at
// the bucket's minute + 24 h + 1 min, never early. Buckets for minutes after t
// (planned reservations) do not count at t: the limit looks back, as Meta's does.

const reachWindow = 24 * time.Hour

const reachWindowSec = int64(reachWindow / time.Second)

// bucketCounts reports whether the bucket of minute m counts at Unix second ts.
func bucketCounts(m, ts int64) bool {
	start := m * 60
	return start <= ts && start+60+reachWindowSec > ts
}

func reachedSum(buckets []ReachBucket, ts int64) int {
	sum := 0
	for _, b := range buckets {
		if bucketCounts(b.Minute, ts) {
			sum += b.Count
		}
	}
	return sum
}

// slotFree is the earliest time >= t at which fewer than limit users count.
func slotFree(buckets []ReachBucket, limit int, t time.Time) time.Time {
	ts := t.Unix()
	moved := false
	// Every round moves past at least one bucket for good.
	for range len(buckets) + 1 {
		sum := reachedSum(buckets, ts)
		if sum < limit {
			break
		}
		need := sum - limit + 1
		for _, b := range buckets { // oldest first
			if !bucketCounts(b.Minute, ts) {
				continue
			}
			if need -= b.Count; need <= 0 {
				ts, moved = b.Minute*60+60+reachWindowSec, true
				break
			}
		}
	}
	if !moved {
		return t
	}
	return time.Unix(ts, 0).UTC()
}

// reachedWithin reports whether a send reached the user outside the window in the
// 24 h before t: (t-24h, t].
func reachedWithin(rel *Relationship, t time.Time) bool {
	from := t.Add(-reachWindow)
	for i := len(rel.Sends) - 1; i >= 0; i-- {
		s := &rel.Sends[i]
		if s.Reached && s.At.After(from) && !s.At.After(t) {
			return true
		}
	}
	return false
}

// nextReach is the first send after t that reaches the user (a planned one): from
// then on the user is already reached.
func nextReach(rel *Relationship, t time.Time) (time.Time, bool) {
	var r time.Time
	ok := false
	for i := range rel.Sends {
		s := &rel.Sends[i]
		if s.Reached && s.At.After(t) && (!ok || s.At.Before(r)) {
			r, ok = s.At, true
		}
	}
	return r, ok
}

func messagingLimit(in *Input, t time.Time, h *hit) bool {
	p, rel := in.Policy, in.Rel
	if p.MessagingLimit <= 0 || !isTemplate(in.Check.Category) || windowOpen(rel, p, in.Check.Sender, t) || reachedWithin(rel, t) {
		return false
	}
	buckets := in.Business.Reached
	sum := reachedSum(buckets, t.Unix())
	if sum < p.MessagingLimit {
		return false
	}
	until := slotFree(buckets, p.MessagingLimit, t)
	if r, ok := nextReach(rel, t); ok && r.Before(until) {
		until = r
	}
	*h = hit{
		rule: sgv1.Rule_RULE_MESSAGING_LIMIT, verdict: deferV,
		until: liftedByWindow(in, t, until), n: sum,
	}
	return true
}

// reaches reports whether a send at s.At takes a messaging-limit slot: a template,
// outside the window, to a user not reached in the 24 h before.
func reaches(rel *Relationship, p *Policy, s *Send) bool {
	return isTemplate(s.Category) && !windowOpen(rel, p, s.Sender, s.At) && !reachedWithin(rel, s.At)
}

// AddReach counts one user reached at `at` in b.Reached, dropping the buckets that
// no longer count at `at`. Reserve calls it; a server applies it again to the
// stored business state, so that replicas sharing a store add to each other's
// counts rather than overwrite them.
func AddReach(b *Business, at time.Time) {
	ts := at.Unix()
	m := ts / 60
	if ts < 0 && ts%60 != 0 {
		m-- // floor
	}
	keep := 0
	for keep < len(b.Reached) && b.Reached[keep].Minute*60+60+reachWindowSec <= ts {
		keep++
	}
	r := b.Reached[keep:]
	i, found := slices.BinarySearchFunc(r, m, func(b ReachBucket, m int64) int {
		switch {
		case b.Minute < m:
			return -1
		case b.Minute > m:
			return 1
		}
		return 0
	})
	if found {
		r[i].Count++
	} else {
		r = slices.Insert(r, i, ReachBucket{Minute: m, Count: 1})
	}
	b.Reached = r
}
