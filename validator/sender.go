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

// each calls f with every sender's state that concerns a check from check,
// the implicit sender's first, until f returns false.
func (r *Relationship) each(check string, f func(st *SenderState) bool) {
	if !f(&r.SenderState) {
		return
	}
	for i := range r.Senders {
		if concerns(r.Senders[i].Sender, check) && !f(&r.Senders[i]) {
			return
		}
	}
}
