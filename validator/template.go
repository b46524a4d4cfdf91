package validator

import (
	"slices"
	"strings"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TEMPLATE_PAUSED: Meta pauses a template of low quality (132015: 3 h the first
// time, 6 h after) and disables one paused too often (132016) until it works again.
// The state is the business's (Business.Templates), per template name and
// language (Meta's templates are identified by both); every send of the
// template, of any category, reads it. A fact known without a language (a
// 132015 report that named none, a record written before languages were kept)
// applies to every language of the template, and a check without a language
// matches every language's state.
//
// The same state says whether Meta treats the template as marketing (its
// pricing.category or a template_category_update): such a template is judged as
// marketing whatever category the caller names (EffectiveCategory).

// TemplateEffectKind says what an event means for a template.
type TemplateEffectKind uint8

// The effects: none, paused, disabled, or OK (sent or delivered).
const (
	TemplateNone     TemplateEffectKind = iota // nothing
	TemplatePaused                             // 132015, or a PAUSED webhook
	TemplateDisabled                           // 132016, or a DISABLED webhook
	TemplateOK                                 // a SENT or DELIVERED (READ, PLAYED) report of the template
	// TemplateApproved is Meta's APPROVED or REINSTATED webhook: it lifts a
	// pause or disable that came before it (or at the same time, before it).
	TemplateApproved
	// TemplateMarketing is Meta treating the template as marketing from At: a
	// marketing pricing.category, or a template_category_update to marketing
	// (completed, or impending: At is then its category_update_timestamp).
	TemplateMarketing
	// TemplateNotMarketing is a completed template_category_update to another
	// category at At: the only event that clears the marketing mark.
	TemplateNotMarketing
)

// TemplateEffect is what an event means for the business's template state.
type TemplateEffect struct {
	Template string
	// Language is the template's language ("" unknown: the effect concerns
	// every language; see ApplyTemplate).
	Language string
	Kind     TemplateEffectKind
	At       time.Time
	// Nth is which pause Meta says this is (its other_info title FIRST_PAUSE
	// 1, SECOND_PAUSE 2), 0 when it does not say: the pause counts as at least
	// the Nth.
	Nth int
	// Marketing is set when the event also says Meta bills the template as
	// marketing (a result's pricing.category marketing or marketing_lite):
	// ApplyTemplate applies TemplateMarketing at MarkedFrom (At when zero) too.
	Marketing  bool
	MarkedFrom time.Time
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

// blockedAfterLift reports whether a pause or disable at `at` stands against
// the state's last approval: it came after it, or at the same time and after it
// in arrival order (BlockedLast).
func (s *TemplateState) blockedAfterLift(at time.Time) bool {
	return at.After(s.LiftedAt) || at.Equal(s.LiftedAt) && s.BlockedLast
}

// Disabled reports whether the template is disabled: a 132016 (or DISABLED) with
// no later SENT or DELIVERED report of it and no later approval.
func (s TemplateState) Disabled() bool {
	return !s.DisabledAt.IsZero() && s.DisabledAt.After(s.OKAt) && s.blockedAfterLift(s.DisabledAt)
}

// PausedUntil is when the last pause ends (the zero time if it was never paused,
// or an approval lifted it).
func (s TemplateState) PausedUntil() time.Time {
	if s.Pauses <= 0 || s.PausedAt.IsZero() || !s.blockedAfterLift(s.PausedAt) {
		return time.Time{}
	}
	return s.PausedAt.Add(pauseLength(s.Pauses))
}

// MarketingAt reports whether Meta treats the template as marketing at t.
func (s TemplateState) MarketingAt(t time.Time) bool {
	return !s.MarkedAt.IsZero() && !t.Before(s.MarkedAt) && s.MarkedAt.After(s.ClearedAt)
}

// matches reports whether a state of language lang concerns a check or event of
// language want: the same language, a state known without one (every
// language), or a check without one (any language).
func matches(lang, want string) bool {
	return lang == "" || want == "" || lang == want
}

func templatePaused(in *Input, t time.Time, h *hit) bool {
	name := in.Check.Template
	if name == "" || in.Business.Templates == nil {
		return false
	}
	states := in.Business.Templates[name]
	found := false
	for i := range states {
		st := &states[i]
		if !matches(st.Language, in.Check.Language) {
			continue
		}
		if st.Disabled() {
			if !found || h.verdict != deny || st.DisabledAt.After(h.at) {
				*h = hit{rule: sgv1.Rule_RULE_TEMPLATE_PAUSED, verdict: deny, code: 132016, at: st.DisabledAt}
			}
			found = true
			continue
		}
		if u := st.PausedUntil(); t.Before(u) && (!found || h.verdict != deny && u.After(h.until)) {
			*h = hit{
				rule: sgv1.Rule_RULE_TEMPLATE_PAUSED, verdict: deferV, code: 132015, until: u,
				at: st.PausedAt, n: st.Pauses, d: pauseLength(st.Pauses),
			}
			found = true
		}
	}
	return found
}

// EffectiveCategory is the category a check is judged as at t: MARKETING when
// Meta treats its template (in any language the check matches) as marketing,
// else the caller's.
func EffectiveCategory(b *Business, c *Check, t time.Time) sgv1.Category {
	if c.Category == marketing || c.Template == "" || b.Templates == nil {
		return c.Category
	}
	states := b.Templates[c.Template]
	for i := range states {
		if matches(states[i].Language, c.Language) && states[i].MarketingAt(t) {
			return marketing
		}
	}
	return c.Category
}

// ApplyTemplate applies a template effect to the business's state (allocating the
// map if nil). An older event never overwrites newer state: a pause counts only
// when it is later than the last one (a pause reported late is not counted), a
// disable, an OK and an approval keep the latest time; events of the same time
// apply in arrival order (a pause after an approval of its own time stands).
// An OK or an approval of a template that has no state changes nothing: it
// would only make every SENT report rewrite the business record. A completed
// category update to another category is recorded even so (a mark dated
// before it that arrives after it is old news).
//
// Languages: an effect with a language changes that language's state; an OK,
// approval or clear with a language also changes the state known without one
// (which most likely was about it). An effect without a language changes the
// state known without one (which applies to every language); an OK, approval
// or clear without one changes every language's state.
func ApplyTemplate(b *Business, e TemplateEffect) {
	next, ok := applyTemplate(b, e)
	if !ok {
		return
	}
	if b.Templates == nil {
		b.Templates = make(map[string][]TemplateState)
	}
	b.Templates[e.Template] = next
}

// TemplateEffectChanges reports whether ApplyTemplate(b, e) would change b, so a
// caller can skip writing the business record when it would not.
func TemplateEffectChanges(b *Business, e TemplateEffect) bool {
	_, ok := applyTemplate(b, e)
	return ok
}

// applyTemplate returns the template name's new states and whether they changed.
// It never changes b's slices in place (readers may hold them).
func applyTemplate(b *Business, e TemplateEffect) ([]TemplateState, bool) {
	if e.Template == "" || e.At.IsZero() {
		return nil, false
	}
	states := slices.Clone(b.Templates[e.Template])
	changed := false
	switch e.Kind {
	case TemplatePaused, TemplateDisabled:
		states, changed = update(states, e.Language, func(st *TemplateState) bool { return blocked(st, e) })
	case TemplateNotMarketing:
		// Recorded even with nothing marked: a mark from before it that
		// arrives after it is old news.
		states, changed = update(states, e.Language, func(st *TemplateState) bool { return cleared(st, e.At) })
		for i := range states {
			if l := states[i].Language; l != e.Language && (e.Language == "" || l == "") && states[i].MarkedAt.After(states[i].ClearedAt) {
				changed = cleared(&states[i], e.At) || changed
			}
		}
	case TemplateOK, TemplateApproved:
		for i := range states {
			if e.Language == "" || states[i].Language == "" || states[i].Language == e.Language {
				changed = lifted(&states[i], e) || changed
			}
		}
	}
	if e.Kind == TemplateMarketing || e.Marketing {
		var ok bool
		from := e.At
		if e.Marketing && !e.MarkedFrom.IsZero() {
			from = e.MarkedFrom
		}
		states, ok = update(states, e.Language, func(st *TemplateState) bool { return marked(st, from) })
		changed = changed || ok
	}
	return states, changed
}

// update applies fn to the state of lang in states (a new one when there is
// none, kept only when fn changed it) and reports whether fn changed it.
// states stays sorted by language.
func update(states []TemplateState, lang string, fn func(*TemplateState) bool) ([]TemplateState, bool) {
	i, found := slices.BinarySearchFunc(states, lang, func(s TemplateState, l string) int {
		return strings.Compare(s.Language, l)
	})
	if found {
		return states, fn(&states[i])
	}
	st := TemplateState{Language: lang}
	if !fn(&st) {
		return states, false
	}
	return slices.Insert(states, i, st), true
}

// blocked applies a pause or disable to st and reports whether it changed.
func blocked(st *TemplateState, e TemplateEffect) bool {
	switch e.Kind {
	case TemplatePaused:
		if !e.At.After(st.PausedAt) {
			return false
		}
		st.Pauses = max(st.Pauses+1, e.Nth)
		st.PausedAt = e.At
	case TemplateDisabled:
		if !e.At.After(st.DisabledAt) {
			return false
		}
		st.DisabledAt = e.At
	}
	st.BlockedLast = e.At.Equal(st.LiftedAt)
	return true
}

// lifted applies an OK or an approval to st (which has state) and reports whether it changed.
func lifted(st *TemplateState, e TemplateEffect) bool {
	switch e.Kind {
	case TemplateOK:
		if !e.At.After(st.OKAt) {
			return false
		}
		st.OKAt = e.At
	case TemplateApproved:
		if e.At.Before(st.LiftedAt) || e.At.Equal(st.LiftedAt) && !st.BlockedLast {
			return false
		}
		if st.PausedAt.IsZero() && st.DisabledAt.IsZero() {
			return false // nothing to lift
		}
		st.LiftedAt, st.BlockedLast = e.At, false
	default:
		return false
	}
	return true
}

// cleared applies a completed category update to another category at `at` to
// st and reports whether it changed.
func cleared(st *TemplateState, at time.Time) bool {
	if !at.After(st.ClearedAt) {
		return false
	}
	st.ClearedAt = at
	return true
}

// marked applies "Meta treats it as marketing from at" to st and reports
// whether it changed: a mark older than the last clear is old news; a mark
// already in force from an earlier time stays.
func marked(st *TemplateState, at time.Time) bool {
	if !at.After(st.ClearedAt) {
		return false
	}
	if st.MarkedAt.After(st.ClearedAt) && !st.MarkedAt.After(at) {
		return false // marked already, from an earlier time
	}
	st.MarkedAt = at
	return true
}

// TemplateFor returns the state of template name in language lang exactly (""
// the state known without a language), and whether there is one.
func TemplateFor(b *Business, name, lang string) (TemplateState, bool) {
	for _, st := range b.Templates[name] {
		if st.Language == lang {
			return st, true
		}
	}
	return TemplateState{}, false
}
