package validator

import (
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The customer service window, kept per sender (the business phone number the
// user wrote to). It is open at t when the user wrote (or called) at
// LastInboundAt <= t < LastInboundAt + ServiceWindow, unless a 131047 at
// WindowClosedAt, after LastInboundAt and not after t, closed it early. A zero
// ServiceWindow turns SERVICE_WINDOW off and leaves the window always closed (so
// nothing is lifted by it). A check from a sender reads that sender's window and
// the implicit sender's; a check that names none counts the window open when it
// is open with any sender (see concerns).

// open reports whether this sender's window is open at t.
func (st *SenderState) open(p *Policy, t time.Time) bool {
	l := st.LastInboundAt
	if p.ServiceWindow <= 0 || l.IsZero() || t.Before(l) || !t.Before(l.Add(p.ServiceWindow)) {
		return false
	}
	c := st.WindowClosedAt
	return !(c.After(l) && !c.After(t))
}

// end is when this sender's window, open now, closes: LastInboundAt +
// ServiceWindow, or earlier when a 131047 already reported for a later time
// closes it.
func (st *SenderState) end(p *Policy) time.Time {
	end := st.LastInboundAt.Add(p.ServiceWindow)
	if c := st.WindowClosedAt; c.After(st.LastInboundAt) && c.Before(end) {
		return c
	}
	return end
}

// windowOpen reports whether the window that concerns a send from sender is open
// at t.
func windowOpen(rel *Relationship, p *Policy, sender string, t time.Time) bool {
	if p.ServiceWindow <= 0 {
		return false
	}
	for i := range rel.states() {
		if st := rel.stateAt(i); concerns(st.Sender, sender) && st.open(p, t) {
			return true
		}
	}
	return false
}

// WindowUntil is when the service window that concerns a send from sender
// closes, if it is open at t (the latest end among the senders' windows open at
// t); else the zero time.
func WindowUntil(rel *Relationship, p *Policy, sender string, t time.Time) time.Time {
	var until time.Time
	for i := range rel.states() {
		if st := rel.stateAt(i); concerns(st.Sender, sender) && st.open(p, t) {
			until = maxTime(until, st.end(p))
		}
	}
	return until
}

// windowOpensAfter returns when the window that concerns a send from sender next
// opens after t, if it is closed at t and an inbound message recorded for a later
// time (a backfill or a planned check) opens it.
func windowOpensAfter(rel *Relationship, p *Policy, sender string, t time.Time) (time.Time, bool) {
	var first time.Time
	ok := false
	if p.ServiceWindow <= 0 {
		return first, false
	}
	for i := range rel.states() {
		st := rel.stateAt(i)
		if l := st.LastInboundAt; concerns(st.Sender, sender) && l.After(t) && (!ok || l.Before(first)) {
			first, ok = l, true
		}
	}
	return first, ok
}

// liftedByWindow limits a deferral that the window lifts (ECOSYSTEM_LIMIT,
// UNDELIVERABLE, MESSAGING_LIMIT) to the time the window opens, if that comes
// first.
func liftedByWindow(in *Input, t, until time.Time) time.Time {
	if o, ok := windowOpensAfter(in.Rel, in.Policy, in.Check.Sender, t); ok && o.Before(until) {
		return o
	}
	return until
}

// serviceWindow is SERVICE_WINDOW: a free-form (service) message needs the window.
func serviceWindow(in *Input, t time.Time, h *hit) bool {
	p := in.Policy
	if in.Check.Category != service || p.ServiceWindow <= 0 || windowOpen(in.Rel, p, in.Check.Sender, t) {
		return false
	}
	*h = hit{rule: sgv1.Rule_RULE_SERVICE_WINDOW, verdict: deny, code: 131047}
	return true
}

// lastInbound returns the state, among those that concern a send from sender,
// whose user wrote last (the implicit sender's when none did): what the
// SERVICE_WINDOW sentence names.
func lastInbound(rel *Relationship, sender string) *SenderState {
	last := &rel.SenderState
	for i := range rel.states() {
		if st := rel.stateAt(i); concerns(st.Sender, sender) && st.LastInboundAt.After(last.LastInboundAt) {
			last = st
		}
	}
	return last
}

// LastInbound is when the user last wrote (or called) to a sender that concerns
// a send from sender (any sender for ""); the zero time if never.
func (r *Relationship) LastInbound(sender string) time.Time {
	return lastInbound(r, sender).LastInboundAt
}
