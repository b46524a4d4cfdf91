package server

import (
	"context"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator"
)

// ClearRestriction lifts the account restrictions or sender limits the request
// names (admin scope), and answers what was in force and is lifted now. A
// failure dated before the clear does not bring them back.
func (s *Server) ClearRestriction(ctx context.Context, req *sgv1.ClearRestrictionRequest) (*sgv1.ClearRestrictionResponse, error) {
	match, err := s.clearMatch(req)
	if err != nil {
		return nil, err
	}
	b, err := s.biz.get(ctx, req.GetBusinessId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	now := s.cfg.Now()
	resp := &sgv1.ClearRestrictionResponse{}
	if !s.shared {
		// This process is the only writer: when its snapshot holds nothing to
		// clear, the store does not either (and a clear of an unknown business
		// writes no record). Replicas read the store under the lock instead.
		cp := b.snap.Load().state
		if len(validator.ClearRestrictions(&cp, match, now)) == 0 {
			return resp, nil
		}
	}
	var cleared []validator.Restriction
	err = s.biz.updateState(ctx, b, func(st *validator.Business) {
		cleared = validator.ClearRestrictions(st, match, now)
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	for _, r := range cleared {
		s.metrics.restrictionEvent(r.Kind, "cleared")
		resp.Cleared = append(resp.Cleared, restrictionProto(r))
		s.log.InfoContext(ctx, "restriction cleared", "business_id", b.id, "sender", r.Sender, "meta_error_code", r.Kind.Code())
	}
	return resp, nil
}

// clearMatch validates a ClearRestriction request and returns what it selects:
// with a sender, that sender's limits (rule SENDER_LIMITED or unspecified);
// without one, the account's restrictions (ACCOUNT_RESTRICTED), every sender's
// limits (SENDER_LIMITED), or both (unspecified); REGION_BLOCKED with a region
// the account's learned 130497 in that region (only when named so).
func (s *Server) clearMatch(req *sgv1.ClearRestrictionRequest) (func(*validator.Restriction) bool, error) {
	if err := checkID("business_id", req.GetBusinessId(), maxBusinessID, true); err != nil {
		return nil, err
	}
	if err := checkID("sender", req.GetSender(), maxSender, false); err != nil {
		return nil, err
	}
	if err := s.checkSender(req.GetBusinessId(), req.GetSender()); err != nil {
		return nil, err
	}
	rule, sender := req.GetRule(), req.GetSender()
	if rule == sgv1.Rule_RULE_REGION_BLOCKED {
		region, err := regionCode(req.GetRegion())
		if err != nil {
			return nil, invalidArg("region: %v (RULE_REGION_BLOCKED clears a learned 130497 of one region)", err)
		}
		if sender != "" {
			return nil, invalidArg("sender: a region restriction is the account's (leave it empty)")
		}
		return func(r *validator.Restriction) bool { return r.Kind.ByRegion() && strings.EqualFold(r.Sender, region) }, nil
	}
	if req.GetRegion() != "" {
		return nil, invalidArg("region: only with rule RULE_REGION_BLOCKED")
	}
	switch {
	case rule == sgv1.Rule_RULE_ACCOUNT_RESTRICTED && sender != "":
		return nil, invalidArg("sender: an account restriction has no sender (leave it empty)")
	case rule == sgv1.Rule_RULE_ACCOUNT_RESTRICTED:
		return func(r *validator.Restriction) bool { return !r.Kind.OfSender() && !r.Kind.ByRegion() }, nil
	case rule != sgv1.Rule_RULE_SENDER_LIMITED && rule != sgv1.Rule_RULE_UNSPECIFIED:
		return nil, invalidArg("rule: %v is not a restriction (RULE_ACCOUNT_RESTRICTED, RULE_SENDER_LIMITED, RULE_REGION_BLOCKED or unspecified)", rule)
	case sender != "":
		return func(r *validator.Restriction) bool { return r.Kind.OfSender() && r.Sender == sender }, nil
	case rule == sgv1.Rule_RULE_SENDER_LIMITED:
		return func(r *validator.Restriction) bool { return r.Kind.OfSender() }, nil
	}
	return func(r *validator.Restriction) bool { return !r.Kind.ByRegion() }, nil
}

// restrictionsProto is the restrictions in force at now that concern sender
// (every sender when ""), for GetPolicy and GetContact.
func restrictionsProto(st *validator.Business, sender string, now time.Time) []*sgv1.Restriction {
	var out []*sgv1.Restriction
	for _, r := range validator.ActiveRestrictions(st, sender, now) {
		out = append(out, restrictionProto(r))
	}
	return out
}

func restrictionProto(r validator.Restriction) *sgv1.Restriction {
	// A learned 130497's region is named in its detail (Restriction has no
	// region field); Sender is a sender's only.
	out := &sgv1.Restriction{
		Rule:          r.Kind.Rule(),
		Sender:        r.Sender,
		MetaErrorCode: r.Kind.Code(),
		Since:         timestamppb.New(r.At),
		Verdict:       r.Kind.Verdict(),
		Detail:        validator.RestrictionDetail(r),
	}
	if r.Kind.ByRegion() {
		out.Sender = ""
	}
	if end := r.End(); !end.IsZero() {
		out.Until = timestamppb.New(end)
	}
	return out
}
