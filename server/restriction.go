package server

import (
	"context"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator"
)

// Account and sender restrictions are business state (validator/restriction.go):
// a report changes them after its contact update, as it changes template state.
//
// How a status's send time is known (the symmetric lift rule): ApplyResult binds
// the report to its send (by message_ref, else message_id) and the send's time
// is what validator.SentTime returns — the reservation's time (CheckSend with
// reserve), or the earliest SENT report's timestamp; a send known only from a
// delivery or failure status has no known send time (Send.Inferred) and lifts
// nothing. So the DELIVEREDs of messages reserved or reported SENT before a
// 131048 never lift it, however late they arrive.

// restrictionEffect is what one result (or account webhook) means for its
// business's restrictions: at most one of the three is set.
type restrictionEffect struct {
	failure *validator.RestrictionFailure
	success *validator.RestrictionSuccess
	lift    *accountLift
}

// accountLift is Meta's webhook saying an account restriction ended.
type accountLift struct {
	kind validator.RestrictionKind
	at   time.Time
}

// isSuccess reports whether a status proves a send went through: SENT, or a
// delivery (READ and PLAYED imply one).
func isSuccess(st sgv1.MessageStatus) bool {
	switch st {
	case sgv1.MessageStatus_MESSAGE_STATUS_SENT, sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED,
		sgv1.MessageStatus_MESSAGE_STATUS_READ, sgv1.MessageStatus_MESSAGE_STATUS_PLAYED:
		return true
	}
	return false
}

// restrictionEffectOf computes a result's effect from the relationship it was
// just applied to (inside the contact update, where the send is bound). A
// success is looked up only when the business has a restriction it could lift.
// region is the recipient's region ("" unknown): a 130497 is learned, and
// lifted, per region.
func restrictionEffectOf(rel *validator.Relationship, state *validator.Business, res *validator.Result, sender, region string) restrictionEffect {
	switch {
	case res.Status == sgv1.MessageStatus_MESSAGE_STATUS_FAILED:
		kind := validator.RestrictionKindOf(res.ErrorCode)
		if kind == validator.RestrictionNone || kind.ByRegion() && region == "" {
			return restrictionEffect{}
		}
		f := &validator.RestrictionFailure{Kind: kind, Sender: sender, At: res.At}
		if kind.ByRegion() {
			f.Sender = region
		}
		if at, _, ok := validator.SentTime(rel, res.Ref, res.MessageID); ok {
			f.SentAt = at
		}
		return restrictionEffect{failure: f}
	case isSuccess(res.Status) && hasRestriction(state):
		at, cat, ok := validator.SentTime(rel, res.Ref, res.MessageID)
		if !ok {
			return restrictionEffect{}
		}
		if cat == sgv1.Category_CATEGORY_UNSPECIFIED {
			cat = res.Category
		}
		return restrictionEffect{success: &validator.RestrictionSuccess{Sender: sender, Category: cat, SentAt: at, At: res.At,
			Delivered: res.Status != sgv1.MessageStatus_MESSAGE_STATUS_SENT, Region: region}}
	}
	return restrictionEffect{}
}

// hasRestriction reports whether the business has a restriction that a success
// could lift (one with a streak, in force or remembered).
func hasRestriction(b *validator.Business) bool {
	for i := range b.Restrictions {
		if b.Restrictions[i].Streak > 0 {
			return true
		}
	}
	return false
}

// changes reports whether the effect would change the business state st.
func (e restrictionEffect) changes(st *validator.Business) bool {
	switch {
	case e.failure != nil:
		return validator.RestrictionFailureChanges(st, *e.failure)
	case e.success != nil:
		return validator.RestrictionSuccessChanges(st, *e.success)
	case e.lift != nil:
		cp := validator.Business{Restrictions: st.Restrictions} // LiftRestriction copies before it writes
		return validator.LiftRestriction(&cp, e.lift.kind, e.lift.at)
	}
	return false
}

// restrictionChange is one restriction an effect changed, and how (an event of
// sendguard_restriction_events_total).
type restrictionChange struct {
	r     validator.Restriction
	event string
}

// apply applies the effect to st and returns what it changed.
func (e restrictionEffect) apply(st *validator.Business) []restrictionChange {
	switch {
	case e.failure != nil:
		if !validator.ApplyRestrictionFailure(st, *e.failure) {
			return nil
		}
		for _, r := range st.Restrictions {
			if r.Kind == e.failure.Kind && (r.Sender == e.failure.Sender || !r.Kind.OfSender()) {
				event := "escalated"
				if r.Streak == 1 {
					event = "started"
				}
				return []restrictionChange{{r, event}}
			}
		}
	case e.success != nil:
		var out []restrictionChange
		for _, r := range validator.ApplyRestrictionSuccess(st, *e.success) {
			out = append(out, restrictionChange{r, "lifted"})
		}
		return out
	case e.lift != nil:
		for _, r := range st.Restrictions {
			if r.Kind == e.lift.kind && validator.LiftRestriction(st, e.lift.kind, e.lift.at) {
				return []restrictionChange{{r, "lifted"}}
			}
		}
	}
	return nil
}

// applyRestrictionEffect writes the effect to the business's state when it
// changes what the cache holds (the store's state is judged again under the
// business's lock: another replica may have changed it), and counts and logs
// what changed.
func (s *Server) applyRestrictionEffect(ctx context.Context, b *business, e restrictionEffect) error {
	if !e.changes(&b.snap.Load().state) {
		return nil
	}
	var changed []restrictionChange
	if err := s.biz.updateState(ctx, b, func(st *validator.Business) { changed = e.apply(st) }); err != nil {
		return err
	}
	for _, c := range changed {
		s.metrics.restrictionEvent(c.r.Kind, c.event)
		s.log.InfoContext(ctx, "restriction "+c.event, "business_id", b.id, "sender", c.r.Sender,
			"meta_error_code", c.r.Kind.Code(), "since", c.r.At, "until", c.r.End())
	}
	return nil
}

// duplicateRestrictionEffect recomputes the effect of a result whose contact
// update was a duplicate: its business write may have been lost (the store
// failed between the two), and applying it again is harmless. A success needs
// the stored send, read only when the business has a restriction it could lift.
func (s *Server) duplicateRestrictionEffect(ctx context.Context, b *business, r recipient, res *validator.Result, sender string) (restrictionEffect, error) {
	st := &b.snap.Load().state
	switch {
	case res.Status == sgv1.MessageStatus_MESSAGE_STATUS_FAILED:
		return restrictionEffectOf(&validator.Relationship{}, st, res, sender, r.region()), nil
	case !isSuccess(res.Status) || !hasRestriction(st):
		return restrictionEffect{}, nil
	}
	c, err := s.store.GetContact(ctx, r.key)
	if err != nil {
		return restrictionEffect{}, err
	}
	return restrictionEffectOf(&c.Rel, st, res, sender, r.region()), nil
}
