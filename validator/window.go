package validator

import (
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The customer service window. It is open at t when the user wrote (or called)
// at LastInboundAt <= t < LastInboundAt + ServiceWindow, unless a 131047 at
// WindowClosedAt, after LastInboundAt and not after t, closed it early. A zero
// ServiceWindow turns SERVICE_WINDOW off and leaves the window always closed (so
// nothing is lifted by it).

func windowOpen(rel *Relationship, p *Policy, t time.Time) bool {
	l := rel.LastInboundAt
	if p.ServiceWindow <= 0 || l.IsZero() || t.Before(l) || !t.Before(l.Add(p.ServiceWindow)) {
		return false
	}
	c := rel.WindowClosedAt
	return !(c.After(l) && !c.After(t))
}

// WindowUntil is when the service window closes, if it is open at t; else the zero
// time.
func WindowUntil(rel *Relationship, p *Policy, t time.Time) time.Time {
	if !windowOpen(rel, p, t) {
		return time.Time{}
	}
	return windowEnd(rel, p)
}

// windowEnd is when a window open now closes: LastInboundAt + ServiceWindow, or
// earlier when a 131047 already reported for a later time closes it.
func windowEnd(rel *Relationship, p *Policy) time.Time {
	end := rel.LastInboundAt.Add(p.ServiceWindow)
	if c := rel.WindowClosedAt; c.After(rel.LastInboundAt) && c.Before(end) {
		return c
	}
	return end
}

// windowOpensAfter returns when the window next opens after t, if it is closed at
// t and an inbound message recorded for a later time (a backfill or a planned
// check) opens it.
func windowOpensAfter(rel *Relationship, p *Policy, t time.Time) (time.Time, bool) {
	l := rel.LastInboundAt
	if p.ServiceWindow > 0 && l.After(t) {
		return l, true
	}
	return time.Time{}, false
}

// liftedByWindow limits a deferral that the window lifts (ECOSYSTEM_LIMIT,
// EXPERIMENT) to the time the window opens, if that comes first.
func liftedByWindow(rel *Relationship, p *Policy, t, until time.Time) time.Time {
	if o, ok := windowOpensAfter(rel, p, t); ok && o.Before(until) {
		return o
	}
	return until
}

// serviceWindow is SERVICE_WINDOW: a free-form (service) message needs the window.
func serviceWindow(in *Input, t time.Time, h *hit) bool {
	p, rel := in.Policy, in.Rel
	if in.Check.Category != service || p.ServiceWindow <= 0 || windowOpen(rel, p, t) {
		return false
	}
	*h = hit{rule: sgv1.Rule_RULE_SERVICE_WINDOW, verdict: deny, code: 131047}
	return true
}
