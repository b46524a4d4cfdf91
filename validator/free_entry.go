package validator

import "time"

// The free entry point (DESIGN.md, EXPERIMENT): a user who writes from a
// click-to-WhatsApp ad or a Page button (an ad referral), answered by the
// business from the same sender within FreeEntryReply, opens a window of
// FreeEntryWindow from that first answer. Meta's figures, not policy.
const (
	FreeEntryReply  = 24 * time.Hour
	FreeEntryWindow = 72 * time.Hour
)

// answerReferral records a send from this sender at `at` as the answer to its
// latest referral when it is the first answer within FreeEntryReply (an earlier
// answer reported late moves the window's start back).
func (st *SenderState) answerReferral(at time.Time) {
	r := st.ReferralAt
	if r.IsZero() || at.Before(r) || !at.Before(r.Add(FreeEntryReply)) {
		return
	}
	if st.FreeEntryAt.Before(r) || at.Before(st.FreeEntryAt) {
		st.FreeEntryAt = at
	}
}

// freeOpen reports whether this sender's free entry point window is open at t.
func (st *SenderState) freeOpen(t time.Time) bool {
	f := st.FreeEntryAt
	return !f.IsZero() && !t.Before(f) && t.Before(f.Add(FreeEntryWindow))
}

// FreeEntryUntil is when the free entry point window that concerns a send from
// sender closes, if one is open at t; else the zero time.
func FreeEntryUntil(rel *Relationship, sender string, t time.Time) time.Time {
	var until time.Time
	for i := range rel.states() {
		if st := rel.stateAt(i); concerns(st.Sender, sender) && st.freeOpen(t) {
			until = maxTime(until, st.FreeEntryAt.Add(FreeEntryWindow))
		}
	}
	return until
}

// freeEntryOpen reports whether a free entry point window that concerns a send
// from sender is open at t.
func freeEntryOpen(rel *Relationship, sender string, t time.Time) bool {
	for i := range rel.states() {
		if st := rel.stateAt(i); concerns(st.Sender, sender) && st.freeOpen(t) {
			return true
		}
	}
	return false
}

// liftedByFreeEntry limits a deferral that either window lifts (EXPERIMENT) to
// the time the service window or a free entry point window opens, if that comes
// first.
func liftedByFreeEntry(in *Input, t, until time.Time) time.Time {
	until = liftedByWindow(in, t, until)
	for i := range in.Rel.states() {
		st := in.Rel.stateAt(i)
		if f := st.FreeEntryAt; concerns(st.Sender, in.Check.Sender) && f.After(t) && f.Before(until) {
			until = f
		}
	}
	return until
}
