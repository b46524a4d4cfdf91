package server

import (
	"context"
	"strings"
	"time"

	"github.com/sendguard/sendguard/validator"
	"github.com/sendguard/sendguard/webhook"
)

// Template, capability and quality webhooks name only the WhatsApp Business
// Account (entry[].id, mapped by waba_ids) and carry no time of their own:
// each is dated by entry[].time when Meta gives it, else by the POST's
// receipt. They are business state, applied as the POST is read; applying one
// twice changes nothing the second time.
//   - message_template_status_update: PAUSED (3 h the first time, 6 h the
//     second: its other_info title FIRST_PAUSE or SECOND_PAUSE says which),
//     DISABLED, and APPROVED or REINSTATED, which lift at once (an unpause
//     arrives as APPROVED with the title UNPAUSE), for the template's name and
//     language. Events of equal time apply in arrival order.
//   - template_category_update: the completed form (previous_category →
//     new_category) applies at once, the impending one (correct_category)
//     from its category_update_timestamp. Only MARKETING (or MARKETING_LITE)
//     marks the template as marketing; only a completed update to another
//     category clears the mark.
//   - business_capability_update: the business's messaging limit
//     (max_daily_conversations_per_business; -1 unlimited), used when the
//     policy sets none.
//   - phone_number_quality_update: counted by event
//     (sendguard_sender_quality_events_total). Meta names only the number's
//     display_phone_number, not its phone_number_id, so the change cannot be
//     tied to a sender; its max_daily_conversations_per_business (the
//     portfolio's limit) is taken as the tier.

// wabaEffect is what a template, capability or quality event means for its
// business: a template effect, a tier, or nothing; metric is the event label
// of sendguard_template_events_total ("" none).
type wabaEffect struct {
	template *validator.TemplateEffect
	tier     int
	metric   string
}

// templateEventNames are the values of sendguard_template_events_total's event
// label.
var templateEventNames = []string{"paused", "disabled", "approved", "marked_marketing", "cleared_marketing"}

// pauseNth is which pause an other_info title says a PAUSED is (0 unknown).
func pauseNth(title string) int {
	switch title {
	case "FIRST_PAUSE":
		return 1
	case "SECOND_PAUSE":
		return 2
	}
	return 0
}

// marketingCategory reports whether Meta's template category is marketing.
func marketingCategory(c string) bool {
	c = strings.ToLower(c)
	return c == "marketing" || c == "marketing_lite"
}

// wabaEffectOf is what ev means, or a skip reason.
func wabaEffectOf(ev *webhook.Event, at time.Time) (wabaEffect, string) {
	e := validator.TemplateEffect{Template: ev.Template, Language: ev.TemplateLanguage, At: at}
	switch ev.Kind {
	case webhook.KindTemplateStatus:
		switch ev.TemplateEvent {
		case "PAUSED":
			e.Kind, e.Nth = validator.TemplatePaused, pauseNth(ev.PauseTitle)
			return wabaEffect{template: &e, metric: "paused"}, ""
		case "DISABLED":
			e.Kind = validator.TemplateDisabled
			return wabaEffect{template: &e, metric: "disabled"}, ""
		case "APPROVED", "REINSTATED":
			e.Kind = validator.TemplateApproved
			return wabaEffect{template: &e, metric: "approved"}, ""
		}
		return wabaEffect{}, "template_event"
	case webhook.KindTemplateCategory:
		if ev.CorrectCategory != "" { // impending
			if !marketingCategory(ev.CorrectCategory) {
				return wabaEffect{}, "category_update_impending"
			}
			if !ev.CategoryUpdateAt.IsZero() {
				e.At = ev.CategoryUpdateAt
			}
			e.Kind = validator.TemplateMarketing
			return wabaEffect{template: &e, metric: "marked_marketing"}, ""
		}
		if marketingCategory(ev.NewCategory) {
			e.Kind = validator.TemplateMarketing
			return wabaEffect{template: &e, metric: "marked_marketing"}, ""
		}
		e.Kind = validator.TemplateNotMarketing
		return wabaEffect{template: &e, metric: "cleared_marketing"}, ""
	case webhook.KindCapability:
		return wabaEffect{tier: ev.Tier}, ""
	case webhook.KindQuality:
		return wabaEffect{tier: ev.Tier}, ""
	}
	return wabaEffect{}, "unknown_kind"
}

// applyWABAEvent applies a template, capability or quality event to business,
// dated at. It answers as applyAccountEvent does.
func (s *Server) applyWABAEvent(ctx context.Context, business string, ev *webhook.Event, at time.Time) (string, error) {
	if ev.Kind == webhook.KindQuality {
		s.metrics.qualityEvents.WithLabelValues(qualityLabel(ev.QualityEvent)).Inc()
	}
	e, skip := wabaEffectOf(ev, at)
	if skip != "" {
		s.webhook.skipped.WithLabelValues(skip).Inc()
		return "", nil
	}
	b, err := s.biz.get(ctx, business)
	if err != nil {
		return "", err
	}
	outcome := "duplicate"
	switch {
	case e.template != nil:
		if validator.TemplateEffectChanges(&b.snap.Load().state, *e.template) {
			if err := s.biz.updateState(ctx, b, func(st *validator.Business) { validator.ApplyTemplate(st, *e.template) }); err != nil {
				return "", err
			}
			outcome = "applied"
			s.metrics.templateEvents.WithLabelValues(e.metric).Inc()
		}
	case e.tier != 0:
		if validator.TierChanges(&b.snap.Load().state, e.tier, at) {
			if err := s.biz.updateState(ctx, b, func(st *validator.Business) { validator.ApplyTier(st, e.tier, at) }); err != nil {
				return "", err
			}
			outcome = "applied"
		}
	}
	s.metrics.events.WithLabelValues(sourceWebhook, ev.Kind.String(), outcome).Inc()
	return outcome, nil
}

// qualityLabel is the event label of a quality update: one of Meta's events,
// or "other".
func qualityLabel(ev string) string {
	for _, q := range webhook.QualityEvents {
		if ev == q {
			return strings.ToLower(q)
		}
	}
	return "other"
}
