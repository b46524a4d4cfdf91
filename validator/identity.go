package validator

import "time"

// Identity changes (Meta's system messages user_changed_number and
// user_changed_user_id): what concerns the user follows them to their new
// number or BSUID, and what the old identity held about them no longer
// describes whoever has it next (a number is recycled to someone else).

// MoveOptOuts merges into to (the new identity's relationship) what follows
// the user: the business's own opt-out and its lift, and Meta's opt-out
// record of each sender, keeping the later of each time (so a repeated move
// changes nothing, and a stop and a lift of the same time keep the stop).
// Consent does not move: it was given for the old number (the business asks
// again, or records it with SetOptOut). what names the change for the event.
func MoveOptOuts(from, to *Relationship, what string, at time.Time) {
	if from.OwnStopAt.After(to.OwnStopAt) {
		to.OwnStopAt, to.OwnStopReason = from.OwnStopAt, from.OwnStopReason
	}
	if from.OwnStartAt.After(to.OwnStartAt) {
		to.OwnStartAt, to.OwnStartReason = from.OwnStartAt, from.OwnStartReason
	}
	moved := !from.OwnStopAt.IsZero()
	for i := range from.states() {
		st := from.stateAt(i)
		if st.MetaStopAt.IsZero() && st.MetaResumeAt.IsZero() {
			continue
		}
		dst := to.State(st.Sender)
		dst.MetaStopAt = maxTime(dst.MetaStopAt, st.MetaStopAt)
		dst.MetaResumeAt = maxTime(dst.MetaResumeAt, st.MetaResumeAt)
		moved = moved || !st.MetaStopAt.IsZero()
	}
	if moved {
		AddEvent(to, at, what+": the opt-outs of the user's previous identity moved here")
	}
}

// DropIdentity clears from the old identity's relationship what MoveOptOuts
// moved (the business's own opt-out and its lift, Meta's opt-out records)
// and its consent. The rest (sends, windows, number-wide facts) stays: it is
// history of messages to that number, and expires on its own.
func DropIdentity(rel *Relationship, what string, at time.Time) {
	rel.OwnStopAt, rel.OwnStopReason = time.Time{}, ""
	rel.OwnStartAt, rel.OwnStartReason = time.Time{}, ""
	rel.ConsentAt, rel.ConsentReason = time.Time{}, ""
	for i := range rel.states() {
		st := rel.stateAt(i)
		st.MetaStopAt, st.MetaResumeAt = time.Time{}, time.Time{}
	}
	AddEvent(rel, at, what+": the user moved to a new identity; opt-outs moved there, consent dropped")
}
