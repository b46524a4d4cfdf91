package validator

import (
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TEMPLATE_PAUSED: Meta pauses a template of low quality (132015: 3 h the first
// time, 6 h after) and disables one paused too often (132016) until it works again.
// The state is the business's (Business.Templates); every send of the template,
// of any category, reads it.

// TemplateEffectKind says what a result means for a template.
type TemplateEffectKind uint8

// The effects: none, paused, disabled, or OK (sent or delivered).
const (
	TemplateNone     TemplateEffectKind = iota // nothing
	TemplatePaused                             // 132015
	TemplateDisabled                           // 132016
	TemplateOK                                 // a SENT or DELIVERED (READ, PLAYED) report of the template
)

// TemplateEffect is what a result means for the business's template state.
type TemplateEffect struct {
	Template string
	Kind     TemplateEffectKind
	At       time.Time
}

const (
	firstPause = 3 * time.Hour
	laterPause = 6 * time.Hour
)

// pauseLength is how long the pauses-th pause lasts.
func pauseLength(pauses int) time.Duration {
	if pauses <= 1 {
		return firstPause
	}
	return laterPause
}

// Disabled reports whether the template is disabled: a 132016 with no later SENT or
// DELIVERED report of it.
func (s TemplateState) Disabled() bool {
	return !s.DisabledAt.IsZero() && s.DisabledAt.After(s.OKAt)
}

// PausedUntil is when the last pause ends (the zero time if it was never paused).
func (s TemplateState) PausedUntil() time.Time {
	if s.Pauses <= 0 || s.PausedAt.IsZero() {
		return time.Time{}
	}
	return s.PausedAt.Add(pauseLength(s.Pauses))
}

func templatePaused(in *Input, t time.Time, h *hit) bool {
	name := in.Check.Template
	if name == "" || in.Business.Templates == nil {
		return false
	}
	st, ok := in.Business.Templates[name]
	if !ok {
		return false
	}
	if st.Disabled() {
		*h = hit{rule: sgv1.Rule_RULE_TEMPLATE_PAUSED, verdict: deny, code: 132016, at: st.DisabledAt}
		return true
	}
	if u := st.PausedUntil(); t.Before(u) {
		*h = hit{
			rule: sgv1.Rule_RULE_TEMPLATE_PAUSED, verdict: deferV, code: 132015, until: u,
			at: st.PausedAt, n: st.Pauses, d: pauseLength(st.Pauses),
		}
		return true
	}
	return false
}

// ApplyTemplate applies a template effect to the business's state (allocating the
// map if nil). An older event never overwrites newer state: a pause counts only
// when it is later than the last one (a pause reported late is not counted), a
// disable and an OK keep the latest time. An OK of a template that has no state
// (never paused nor disabled) changes nothing: it would only make every SENT report
// rewrite the business record. Meta disables only templates it paused before, so
// the state exists by the time an OK matters.
func ApplyTemplate(b *Business, e TemplateEffect) {
	st, ok := applyTemplate(b, e)
	if !ok {
		return
	}
	if b.Templates == nil {
		b.Templates = make(map[string]TemplateState)
	}
	b.Templates[e.Template] = st
}

// TemplateEffectChanges reports whether ApplyTemplate(b, e) would change b, so a
// caller can skip writing the business record when it would not.
func TemplateEffectChanges(b *Business, e TemplateEffect) bool {
	_, ok := applyTemplate(b, e)
	return ok
}

// applyTemplate returns the template's new state and whether it changed.
func applyTemplate(b *Business, e TemplateEffect) (TemplateState, bool) {
	if e.Template == "" {
		return TemplateState{}, false
	}
	st, found := b.Templates[e.Template]
	switch e.Kind {
	case TemplatePaused:
		if !e.At.After(st.PausedAt) {
			return st, false
		}
		st.Pauses++
		st.PausedAt = e.At
	case TemplateDisabled:
		if !e.At.After(st.DisabledAt) {
			return st, false
		}
		st.DisabledAt = e.At
	case TemplateOK:
		if !found || !e.At.After(st.OKAt) {
			return st, false
		}
		st.OKAt = e.At
	default:
		return st, false
	}
	return st, true
}
