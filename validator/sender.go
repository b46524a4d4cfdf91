package validator

import (
	"slices"
	"strings"
)

// Per-sender recipient state (DESIGN.md, Who is who). A check names the sender
// it will send from, or none; each SenderState concerns some checks:
//   - a check from sender A reads A's state and the implicit sender's (whose
//     events named no sender: any sender, A included, may have been theirs);
//   - a check that names no sender reads every sender's state: any sender's
//     opt-out, pair rate and 131056 backoff apply, and the window counts as
//     open when it is open with any sender.
//
// Meta's opt-out record is the exception: every sender's blocks every check of
// the business for marketing (optedOut), whoever sends.

// concerns reports whether the state of sender st applies to a check from sender
// check ("" for a check that names none).
func concerns(st, check string) bool { return check == "" || st == "" || st == check }

// State returns the state kept for sender, adding it when the relationship has
// none yet: the embedded implicit state for "", and for a sender beyond
// MaxSenders too. The pointer is valid until the next call that adds a sender.
func (r *Relationship) State(sender string) *SenderState {
	if sender == "" {
		return &r.SenderState
	}
	i, found := slices.BinarySearchFunc(r.Senders, sender, compareSender)
	if found {
		return &r.Senders[i]
	}
	if len(r.Senders) >= MaxSenders {
		return &r.SenderState
	}
	r.Senders = slices.Insert(r.Senders, i, SenderState{Sender: sender})
	return &r.Senders[i]
}

func compareSender(s SenderState, sender string) int { return strings.Compare(s.Sender, sender) }

// states is how many sender states the relationship holds: the implicit
// sender's and the named ones. The rules loop over them as
//
//	for i := range rel.states() {
//		st := rel.stateAt(i)
//		if !concerns(st.Sender, sender) { continue }
//		...
//	}
//
// (plain loops, not callbacks: every check runs several).
func (r *Relationship) states() int { return 1 + len(r.Senders) }

// stateAt is the i-th sender state: the implicit sender's, then Senders.
func (r *Relationship) stateAt(i int) *SenderState {
	if i == 0 {
		return &r.SenderState
	}
	return &r.Senders[i-1]
}
