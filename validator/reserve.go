package validator

import (
	"slices"
	"time"
)

// Reserve records an allowed send at s.At. The caller has checked that Decide gave
// ALLOW and that FindSend found no send with s.Ref. It keeps Sends sorted and
// bounded, moves the pair-rate bucket, marks s.Reached when the send takes a
// messaging-limit slot (a template outside the window to a user not reached in the
// last 24 h). It returns whether the send took a slot of p.MessagingLimit (> 0),
// and then, when b is not nil, counts the user in b.Reached (changing it in place:
// pass a copy of a shared slice).
func Reserve(rel *Relationship, b *Business, p *Policy, s Send) (reached bool) {
	s.Reached = reaches(rel, p, &s)
	reached = s.Reached && p.MessagingLimit > 0
	s.Slot = reached
	recordSend(rel, p, s)
	AddEvent(rel, s.At, "reserved"+describe(s.Category, s.Template))
	if reached && b != nil {
		AddReach(b, s.At)
	}
	return reached
}

// historyWindow is the longest window the rules look back (or ahead) over sends:
// the frequency caps, the template repeat window and the messaging limit's 24 h.
func historyWindow(p *Policy) time.Duration {
	w := reachWindow
	for _, c := range p.FrequencyCaps {
		w = max(w, c.Window)
	}
	return max(w, p.TemplateRepeatWindow)
}

// planAhead is how far ahead of the other sends a reservation can be planned
// without losing history that a check at an earlier time still needs (see
// recordSend).
const planAhead = week

// recordSend inserts a send in time order (after sends at the same time), counts it
// in its sender's pair-rate bucket, takes it as the answer to a free entry point
// when it is one (not a failed send), and trims the history.
//
// There is no clock here, so the trim is relative to s.At, which may be a time
// planned ahead: sends older than the history window plus planAhead before s.At
// are dropped. A check judged at an earlier time than a planned reservation (a
// worker sending now after a planner reserved for tomorrow) still sees everything
// its own windows need, as long as the reservation is planned at most planAhead
// ahead of it. Beyond what the policy keeps (TrimSends) the oldest sends are
// dropped too.
func recordSend(rel *Relationship, p *Policy, s Send) {
	i := len(rel.Sends)
	for i > 0 && rel.Sends[i-1].At.After(s.At) {
		i--
	}
	st := rel.State(s.Sender)
	s.Sender = st.Sender // "" for a sender beyond MaxSenders
	rel.Sends = slices.Insert(rel.Sends, i, s)
	reservePair(st, p, s.At)
	if !s.Failed {
		st.answerReferral(s.At)
	}
	trimSends(rel, p, s.At.Add(-historyWindow(p)-planAhead))
}

// TrimSends drops the sends that p does not keep (see BaseSends): it keeps the
// newest max(BaseSends, 2 x PairBurst) sends, and the newest sends counted by the
// frequency caps up to the largest cap's count. Sends stay in order.
func TrimSends(rel *Relationship, p *Policy) { trimSends(rel, p, time.Time{}) }

// trimSends is TrimSends that also drops every send before cut (zero: none).
func trimSends(rel *Relationship, p *Policy, cut time.Time) {
	n := len(rel.Sends)
	recent := recentSends(p)
	if n == 0 || n <= recent && (cut.IsZero() || !rel.Sends[0].At.Before(cut)) {
		return // the common case: nothing to drop (Sends are sorted)
	}
	capped, total := cappedSends(p), 0
	for i := range rel.Sends {
		if countsForCaps(&rel.Sends[i]) {
			total++
		}
	}
	out, seen := rel.Sends[:0], 0
	for i := range n {
		s := &rel.Sends[i]
		keep := i >= n-recent
		if countsForCaps(s) {
			keep = keep || seen >= total-capped
			seen++
		}
		if keep && (cut.IsZero() || !s.At.Before(cut)) {
			out = append(out, *s)
		}
	}
	clear(rel.Sends[len(out):n]) // let the dropped strings go
	rel.Sends = out
}

// recentSends is how many of the newest sends of any kind the history keeps.
func recentSends(p *Policy) int {
	return max(BaseSends, 2*min(p.PairBurst, MaxPairBurst))
}

// cappedSends is how many of the newest sends counted by the frequency caps the
// history keeps: the largest cap's count.
func cappedSends(p *Policy) int {
	n := 0
	for _, c := range p.FrequencyCaps {
		if capOn(c) {
			n = max(n, c.Count)
		}
	}
	return min(n, MaxCapCount)
}

// moveEarlier moves send i to an earlier time, keeping Sends sorted.
func moveEarlier(rel *Relationship, i int, at time.Time) {
	s := rel.Sends[i]
	s.At = at
	j := i
	for j > 0 && rel.Sends[j-1].At.After(at) {
		rel.Sends[j] = rel.Sends[j-1]
		j--
	}
	rel.Sends[j] = s
}

// FindSend returns the index of the send with this ref or, when ref is empty or no
// send has it, with this message id; -1 if none. (The fallback finds a reservation
// whose ref a report does not carry once an earlier report bound its message id.)
func FindSend(rel *Relationship, ref, messageID string) int {
	if ref != "" {
		for i := len(rel.Sends) - 1; i >= 0; i-- {
			if rel.Sends[i].Ref == ref {
				return i
			}
		}
	}
	if messageID != "" {
		for i := len(rel.Sends) - 1; i >= 0; i-- {
			if rel.Sends[i].MessageID == messageID {
				return i
			}
		}
	}
	return -1
}

// AddEvent records an event in the recent history, kept in time order (oldest
// first) and bounded to MaxEvents (the oldest are dropped; an event older than all
// of a full history is not kept).
func AddEvent(rel *Relationship, at time.Time, text string) {
	i := len(rel.Events)
	for i > 0 && rel.Events[i-1].At.After(at) {
		i--
	}
	if i == 0 && len(rel.Events) >= MaxEvents {
		return
	}
	rel.Events = slices.Insert(rel.Events, i, Event{At: at, Text: text})
	if n := len(rel.Events) - MaxEvents; n > 0 {
		rel.Events = slices.Delete(rel.Events, 0, n)
	}
}
