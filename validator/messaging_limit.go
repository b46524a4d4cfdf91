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
// 24 h before t: (t-24h, t]. A reservation whose send failed gave its slot
// back and reached nobody (see countsAsReach).
func reachedWithin(rel *Relationship, t time.Time) bool {
	from := t.Add(-reachWindow)
	for i := len(rel.Sends) - 1; i >= 0; i-- {
		s := &rel.Sends[i]
		if countsAsReach(s) && s.At.After(from) && !s.At.After(t) {
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
		if countsAsReach(s) && s.At.After(t) && (!ok || s.At.Before(r)) {
			r, ok = s.At, true
		}
	}
	return r, ok
}

// countsAsReach reports whether s makes its user one already reached: it
// reached the user outside the window, and is not a reservation whose slot a
// FAILED report gave back (the next template to that user takes a slot
// again). (Sends recorded from reports hold no slot; their Reached is judged
// once, when they are recorded, so that reports in any order build the same
// history.)
func countsAsReach(s *Send) bool { return s.Reached && !(s.Slot && s.Failed) }

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

// SlotHeld reports whether the send with this ref (else message id) holds a
// slot of the business's messaging limit, and its time: its reservation took
// one (Send.Slot) and it has not failed. The server compares it before and
// after applying a report, and gives the slot back to Business.Reached
// (RemoveReach) when a FAILED report ends it, or takes it again (AddReach)
// when a delivery reported after the failure (multi-device) revives it. Both
// follow from the send's flags, so a repeated report changes nothing and the
// count after a set of reports does not depend on their order.
func SlotHeld(rel *Relationship, ref, messageID string) (bool, time.Time) {
	if ref == "" && messageID == "" {
		return false, time.Time{}
	}
	i := FindSend(rel, ref, messageID)
	if i < 0 {
		return false, time.Time{}
	}
	s := &rel.Sends[i]
	return s.Slot && !s.Failed, s.At
}

// RemoveReach gives back one slot counted at `at`: it takes one from the
// bucket of at's minute, or, when there is none (a SENT report moved the send
// earlier than its reservation), from the first bucket after it. Nothing
// happens when no bucket is left (the slot has already left the 24 h).
func RemoveReach(b *Business, at time.Time) {
	ts := at.Unix()
	m := ts / 60
	if ts < 0 && ts%60 != 0 {
		m-- // floor
	}
	for i := range b.Reached {
		if r := &b.Reached[i]; r.Minute >= m && r.Count > 0 {
			r.Count--
			if r.Count == 0 {
				b.Reached = slices.Delete(b.Reached, i, i+1)
			}
			return
		}
	}
}
