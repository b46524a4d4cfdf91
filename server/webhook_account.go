package server

import (
	"context"
	"time"

	"github.com/sendguard/sendguard/validator"
	"github.com/sendguard/sendguard/webhook"
)

// Account webhooks (account_update) change a business's account restrictions,
// where Meta's reference documents a restriction's start and end:
//   - ACCOUNT_RESTRICTION, per restriction_info item:
//     RESTRICTED_BIZ_INITIATED_MESSAGING restricts templates and
//     RESTRICTED_CUSTOMER_INITIATED_MESSAGING free-form replies until the
//     item's expiration (an expiration already past says it ended: a lift);
//     the other types (adding numbers, calling, creating utility templates)
//     do not stop a send and are skipped, counted;
//   - DISABLED_UPDATE: DISABLE bans the account (DENY until lifted), REINSTATE
//     lifts the ban; SCHEDULE_FOR_DISABLE is skipped, counted.
// They are business state, applied as the POST is read (not batched with the
// contact updates); applying one twice changes nothing the second time.

// accountEffect is what an account event means, or a skip reason.
func accountEffect(ev *webhook.Event, at time.Time) (restrictionEffect, string) {
	switch ev.Kind {
	case webhook.KindAccountRestriction:
		var kind validator.RestrictionKind
		switch ev.Restriction {
		case "RESTRICTED_BIZ_INITIATED_MESSAGING":
			kind = validator.AccountBusinessInitiated
		case "RESTRICTED_CUSTOMER_INITIATED_MESSAGING":
			kind = validator.AccountUserInitiated
		default:
			return restrictionEffect{}, "account_restriction_type"
		}
		if ends := ev.RestrictionEnds; !ends.IsZero() && !ends.After(at) {
			return restrictionEffect{lift: &accountLift{kind: kind, at: at}}, ""
		}
		return restrictionEffect{failure: &validator.RestrictionFailure{Kind: kind, At: at, Ends: ev.RestrictionEnds}}, ""
	case webhook.KindAccountBan:
		switch ev.BanState {
		case "DISABLE":
			return restrictionEffect{failure: &validator.RestrictionFailure{Kind: validator.AccountDisabled, At: at}}, ""
		case "REINSTATE":
			return restrictionEffect{lift: &accountLift{kind: validator.AccountDisabled, at: at}}, ""
		}
		return restrictionEffect{}, "account_ban_state"
	}
	return restrictionEffect{}, "unknown_kind"
}

// applyAccountEvent applies one account event to its business (received: when
// the POST arrived, the time of an event Meta did not date). It answers
// "applied", "duplicate" (nothing changed), or "" when the event was skipped.
func (s *Server) applyAccountEvent(ctx context.Context, ev *webhook.Event, received time.Time) (string, error) {
	business, ok := s.businessForWABA(ev.WABAID)
	if !ok {
		s.webhook.skipped.WithLabelValues("unmapped_waba_id").Inc()
		return "", nil
	}
	at := ev.Timestamp
	if at.IsZero() {
		at = received
	}
	switch ev.Kind {
	case webhook.KindTemplateStatus, webhook.KindTemplateCategory, webhook.KindCapability, webhook.KindQuality:
		return s.applyWABAEvent(ctx, business, ev, at)
	}
	e, skip := accountEffect(ev, at)
	if skip != "" {
		s.webhook.skipped.WithLabelValues(skip).Inc()
		return "", nil
	}
	b, err := s.biz.get(ctx, business)
	if err != nil {
		return "", err
	}
	outcome := "duplicate"
	if e.changes(&b.snap.Load().state) {
		outcome = "applied"
	}
	if err := s.applyRestrictionEffect(ctx, b, e); err != nil {
		return "", err
	}
	s.metrics.events.WithLabelValues(sourceWebhook, ev.Kind.String(), outcome).Inc()
	return outcome, nil
}
