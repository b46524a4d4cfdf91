package server

import (
	"context"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// categories are the categories GetContact judges.
var categories = []sgv1.Category{
	sgv1.Category_CATEGORY_MARKETING,
	sgv1.Category_CATEGORY_UTILITY,
	sgv1.Category_CATEGORY_AUTHENTICATION,
	sgv1.Category_CATEGORY_SERVICE,
}

func validateRecipientOnly(business, phone, userID string) error {
	return checkRecipient(business, phone, userID)
}

// GetContact returns everything known about one recipient of one business.
func (s *Server) GetContact(ctx context.Context, req *sgv1.GetContactRequest) (*sgv1.GetContactResponse, error) {
	if err := validateRecipientOnly(req.GetBusinessId(), req.GetPhone(), req.GetUserId()); err != nil {
		return nil, err
	}
	resp, err := s.getContact(ctx, req)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return resp, nil
}

func (s *Server) getContact(ctx context.Context, req *sgv1.GetContactRequest) (*sgv1.GetContactResponse, error) {
	b, err := s.biz.get(ctx, req.GetBusinessId())
	if err != nil {
		return nil, err
	}
	r, err := s.resolve(ctx, req.GetBusinessId(), req.GetPhone(), req.GetUserId())
	if err != nil {
		return nil, err
	}
	if r.invalid && !r.hasNumber && r.userID == "" {
		return nil, invalidArg("phone: %s", r.detail)
	}
	c, err := s.store.GetContact(ctx, r.key)
	if err != nil {
		return nil, err
	}
	snap := b.snap.Load()
	now := s.cfg.Now()
	supp, err := s.suppressed(ctx, r, &c)
	if err != nil {
		return nil, err
	}
	rel := &c.Rel
	facts := &c.Facts
	if !snap.policy.ShareNumberSignals {
		facts = &rel.Local
	}
	out := &sgv1.Contact{
		WaId:          rel.WaID,
		UserId:        rel.UserID,
		MetaOptedOut:  rel.MetaStopAt.After(rel.MetaResumeAt),
		OptedOut:      rel.OwnStopAt.After(rel.OwnStartAt),
		OptOutReason:  rel.OwnStopReason,
		LastInboundAt: ts(rel.LastInboundAt),
		Suppressed:    supp,
		Number:        factsProto(facts, &snap.policy),
	}
	if r.hasNumber {
		out.PhoneE164 = r.number.E164
	}
	if out.UserId == "" {
		out.UserId = r.userID
	}
	if out.WaId == "" {
		out.WaId = facts.WaID
	}
	switch {
	case out.OptedOut:
		out.OptedOutAt = ts(rel.OwnStopAt)
	case out.MetaOptedOut:
		out.OptedOutAt = ts(rel.MetaStopAt)
	}
	if rel.OwnStartAt.After(rel.OwnStopAt) {
		out.ConsentAt = ts(rel.OwnStartAt)
		out.ConsentReason = rel.OwnStartReason
	}
	if until := windowUntil(rel, &snap.policy, now); !until.IsZero() {
		out.ServiceWindowUntil = timestamppb.New(until)
	}
	for _, snd := range rel.Sends {
		out.Sends = append(out.Sends, &sgv1.SendRecord{
			At: ts(snd.At), MessageRef: snd.Ref, MessageId: snd.MessageID, Category: snd.Category,
			Template: snd.Template, CampaignId: snd.CampaignID, Failed: snd.Failed,
		})
	}
	for _, e := range slices.Backward(rel.Events) {
		out.Events = append(out.Events, &sgv1.ContactEvent{At: ts(e.At), Description: e.Text})
	}
	for _, cat := range categories {
		req := &sgv1.CheckSendRequest{BusinessId: req.GetBusinessId(), Category: cat}
		chk := s.checkInput(req, r, now, snap)
		chk.Suppressed = supp
		dec := decide(snap, &c, chk)
		resp := s.response(req, r, &c, snap, &dec, false)
		out.Decisions = append(out.Decisions, &sgv1.CategoryDecision{Category: cat, Decision: resp})
	}
	return &sgv1.GetContactResponse{Contact: out}, nil
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func factsProto(f *validator.NumberFacts, p *validator.Policy) *sgv1.NumberFacts {
	out := &sgv1.NumberFacts{
		EcosystemLimitedAt:  ts(f.EcoAt),
		EcosystemStreak:     int32(f.EcoStreak),
		ExperimentAt:        ts(f.ExperimentAt),
		UndeliverableAt:     ts(f.UndeliverableAt),
		UndeliverableStreak: int32(f.UndeliverableStreak),
		LastDeliveredAt:     ts(f.LastDeliveredAt),
	}
	if u := f.EcosystemUntil(p); !u.IsZero() {
		out.EcosystemUntil = ts(u)
	}
	if u := f.ExperimentUntil(p); !u.IsZero() {
		out.ExperimentUntil = ts(u)
	}
	if u := f.UndeliverableUntil(p); !u.IsZero() {
		out.UndeliverableUntil = ts(u)
	}
	return out
}

// SetOptOut records the business's own opt-out, or an opt-in (consent).
func (s *Server) SetOptOut(ctx context.Context, req *sgv1.SetOptOutRequest) (*sgv1.SetOptOutResponse, error) {
	if err := validateRecipientOnly(req.GetBusinessId(), req.GetPhone(), req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkText("reason", req.GetReason(), maxReason); err != nil {
		return nil, err
	}
	resp, err := s.setOptOut(ctx, req)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return resp, nil
}

func (s *Server) setOptOut(ctx context.Context, req *sgv1.SetOptOutRequest) (*sgv1.SetOptOutResponse, error) {
	b, err := s.biz.get(ctx, req.GetBusinessId())
	if err != nil {
		return nil, err
	}
	r, err := s.resolveEvent(ctx, req.GetBusinessId(), req.GetPhone(), req.GetUserId())
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	reason := req.GetReason()
	if reason == "" {
		reason = "SetOptOut"
	}
	resp := &sgv1.SetOptOutResponse{}
	err = s.store.UpdateContact(ctx, r.key, "", func(c *storage.Contact) (storage.Write, error) {
		snap := b.snap.Load()
		validator.SetOptOut(&c.Rel, req.GetOptedOut(), reason, now)
		learn(c, r, snap)
		resp.OptedOut = c.Rel.OwnStopAt.After(c.Rel.OwnStartAt)
		resp.MetaOptedOut = c.Rel.MetaStopAt.After(c.Rel.MetaResumeAt)
		return storage.Write{Rel: true, RelTTL: ttl(c.Rel.ExpiresAt(&snap.policy), now)}, nil
	})
	if err != nil {
		return nil, err
	}
	if !req.GetOptedOut() {
		// Consent given again lifts a forgotten opt-out's suppression.
		if err := s.store.DeleteSuppression(ctx, r.key.Business, s.suppressionHash(r.key.ID)); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// ForgetContact erases a recipient of a business.
func (s *Server) ForgetContact(ctx context.Context, req *sgv1.ForgetContactRequest) (*sgv1.ForgetContactResponse, error) {
	if err := validateRecipientOnly(req.GetBusinessId(), req.GetPhone(), req.GetUserId()); err != nil {
		return nil, err
	}
	resp, err := s.forget(ctx, req)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return resp, nil
}

func (s *Server) forget(ctx context.Context, req *sgv1.ForgetContactRequest) (*sgv1.ForgetContactResponse, error) {
	r, err := s.resolve(ctx, req.GetBusinessId(), req.GetPhone(), req.GetUserId())
	if err != nil {
		return nil, err
	}
	if r.invalid && !r.hasNumber && r.userID == "" {
		return nil, invalidArg("phone: %s", r.detail)
	}
	c, err := s.store.GetContact(ctx, r.key)
	if err != nil {
		return nil, err
	}
	resp := &sgv1.ForgetContactResponse{}
	rel := &c.Rel
	optedOut := rel.OwnStopAt.After(rel.OwnStartAt) || rel.MetaStopAt.After(rel.MetaResumeAt)
	hashes := []string{s.suppressionHash(r.key.ID)}
	if rel.UserID != "" && r.hasNumber {
		hashes = append(hashes, s.suppressionHash(storage.UserIDPrefix+rel.UserID))
	}
	for _, h := range hashes {
		if optedOut && !req.GetForgetOptOut() {
			err = s.store.PutSuppression(ctx, r.key.Business, h)
			resp.Suppressed = true
		} else if req.GetForgetOptOut() {
			err = s.store.DeleteSuppression(ctx, r.key.Business, h)
		}
		if err != nil {
			return nil, err
		}
	}
	if resp.Found, err = s.store.DeleteContact(ctx, r.key); err != nil {
		return nil, err
	}
	for _, uid := range []string{rel.UserID, r.userID} {
		if uid != "" {
			if err := s.store.DeleteLink(ctx, r.key.Business, uid); err != nil {
				return nil, err
			}
		}
	}
	return resp, nil
}
