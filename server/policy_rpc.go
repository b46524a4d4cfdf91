package server

import (
	"context"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// GetPolicy returns a business's effective policy and its overrides.
func (s *Server) GetPolicy(ctx context.Context, req *sgv1.GetPolicyRequest) (*sgv1.GetPolicyResponse, error) {
	if err := checkID("business_id", req.GetBusinessId(), maxBusinessID, true); err != nil {
		return nil, err
	}
	b, err := s.biz.get(ctx, req.GetBusinessId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	snap := b.snap.Load()
	return &sgv1.GetPolicyResponse{Effective: policyProto(snap.policy), Overrides: snap.overrides,
		Restrictions: restrictionsProto(&snap.state, "", s.cfg.Now())}, nil
}

// SetPolicy changes a business's overrides: the fields named by update_mask, or the
// whole policy without one.
func (s *Server) SetPolicy(ctx context.Context, req *sgv1.SetPolicyRequest) (*sgv1.SetPolicyResponse, error) {
	if err := checkID("business_id", req.GetBusinessId(), maxBusinessID, true); err != nil {
		return nil, err
	}
	b, err := s.biz.get(ctx, req.GetBusinessId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	snap, err := s.biz.setPolicy(ctx, b, func(cur *sgv1.Policy) (*sgv1.Policy, error) {
		next, err := applyMask(cur, req.GetPolicy(), req.GetUpdateMask().GetPaths())
		if err != nil {
			return nil, invalidArg("%v", err)
		}
		return next, nil
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.log.InfoContext(ctx, "policy changed", "business_id", b.id)
	return &sgv1.SetPolicyResponse{Effective: policyProto(snap.policy), Overrides: snap.overrides}, nil
}
