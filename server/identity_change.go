package server

import (
	"context"
	"errors"
	"time"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
	"github.com/sendguard/sendguard/webhook"
)

// applyIdentityChange applies Meta's system message that the user changed
// number (user_changed_number: Phone the old number, NewPhone the new) or
// BSUID (user_changed_user_id): the business's own opt-out and Meta's
// per-sender opt-out records move to the new identity, and the old one keeps
// neither, nor its consent (the old number may be recycled to someone else).
// A BSUID change of a user whose number is known moves nothing (the history is
// kept under the number): the new BSUID is linked to it.
//
// The move is two updates, on two keys: the new identity's first (a merge
// that keeps the later of each time, so doing it again changes nothing), then
// the old one's, which records the event's dedup key. A failure between them
// leaves the opt-outs on both identities, the safe side, and the webhook's
// retry completes the move. There is no RPC for it: Meta reports it only by
// webhook. It returns "applied", "duplicate" or "" (skipped, counted).
func (s *Server) applyIdentityChange(ctx context.Context, ev *webhook.Event, received time.Time) (string, error) {
	business, ok := s.businessFor(ev.PhoneNumberID)
	if !ok {
		s.webhook.skipped.WithLabelValues("unmapped_phone_number_id").Inc()
		return "", nil
	}
	b, err := s.biz.get(ctx, business)
	if err != nil {
		return "", err
	}
	at := ev.Timestamp
	if at.IsZero() {
		at = received
	}
	what := ev.MessageType // user_changed_number or user_changed_user_id
	from, err := s.resolve(ctx, b, eventPhone(ev.Phone, "", sourceWebhook), ev.UserID)
	if err == nil && from.invalid {
		err = errors.New("the old number does not parse")
	}
	if err != nil {
		return s.skipIdentityChange(err)
	}
	if ev.NewPhone == "" && from.hasNumber {
		// Only the BSUID changed: link the new one to the known number.
		r := from
		r.userID = ev.NewUserID
		if err := s.link(ctx, r); err != nil {
			return "", err
		}
		s.metrics.events.WithLabelValues(sourceWebhook, what, "applied").Inc()
		return "applied", nil
	}
	to, err := s.resolveEvent(ctx, b, eventPhone(ev.NewPhone, "", sourceWebhook), ev.NewUserID)
	if err != nil {
		return s.skipIdentityChange(err)
	}
	if to.key == from.key {
		s.metrics.events.WithLabelValues(sourceWebhook, what, "duplicate").Inc()
		return "duplicate", nil
	}
	now := s.cfg.Now()
	old, err := s.store.GetContact(ctx, from.key)
	if err != nil {
		return "", err
	}
	if old.RelFound {
		err = s.store.UpdateContact(ctx, to.key, "", func(c *storage.Contact) (storage.Write, error) {
			snap := b.snap.Load()
			validator.MoveOptOuts(&old.Rel, &c.Rel, what, at)
			return storage.Write{Rel: true, RelTTL: storage.TTLUntil(c.Rel.ExpiresAt(&snap.policy), now)}, nil
		})
		if err != nil {
			return "", err
		}
	}
	dedup := s.hash.opaque("d", "x\x00"+ev.MessageID)
	err = s.store.UpdateContact(ctx, from.key, dedup, func(c *storage.Contact) (storage.Write, error) {
		if !c.RelFound {
			return storage.Write{}, nil
		}
		snap := b.snap.Load()
		validator.DropIdentity(&c.Rel, what, at)
		return storage.Write{Rel: true, RelTTL: storage.TTLUntil(c.Rel.ExpiresAt(&snap.policy), now)}, nil
	})
	outcome := "applied"
	switch {
	case errors.Is(err, storage.ErrDuplicate):
		outcome = "duplicate"
	case err != nil:
		return "", err
	}
	s.metrics.events.WithLabelValues(sourceWebhook, what, outcome).Inc()
	return outcome, nil
}

// skipIdentityChange counts an identity change that cannot be applied (an
// identity that does not parse): a store error fails the POST instead.
func (s *Server) skipIdentityChange(err error) (string, error) {
	if isStoreError(err) {
		return "", err
	}
	s.webhook.skipped.WithLabelValues("invalid_event").Inc()
	s.log.Debug("webhook: identity change skipped", "err", err)
	return "", nil
}
