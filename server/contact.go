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

func validateRecipientOnly(business, phone, region, userID string) error {
	if err := checkRecipient(business, phone, userID); err != nil {
		return err
	}
	return checkRegion(region)
}

// GetContact returns everything known about one recipient of one business.
func (s *Server) GetContact(ctx context.Context, req *sgv1.GetContactRequest) (*sgv1.GetContactResponse, error) {
	if err := validateRecipientOnly(req.GetBusinessId(), req.GetPhone(), req.GetRegion(), req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkID("sender", req.GetSender(), maxSender, false); err != nil {
		return nil, err
	}
	if err := s.checkSender(req.GetBusinessId(), req.GetSender()); err != nil {
		return nil, err
	}
	resp, err := s.getContact(ctx, req)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return resp, nil
}

func (s *Server) getContact(ctx context.Context, req *sgv1.GetContactRequest) (*sgv1.GetContactResponse, error) {
	b, err := s.biz.get(ctx, req.GetBusinessId())
	if err != nil {
		return nil, err
	}
	r, err := s.resolve(ctx, b, phoneIn{raw: req.GetPhone(), region: req.GetRegion()}, req.GetUserId())
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
	facts := readFacts(snap, &c, r)
	out := &sgv1.Contact{
		WaId:          waID(rel.WaID, r),
		UserId:        rel.UserID,
		MetaOptedOut:  rel.MetaOptedOut(),
		OptedOut:      rel.OwnOptedOut(),
		OptOutReason:  rel.OwnStopReason,
		LastInboundAt: ts(rel.LastInbound(req.GetSender())),
		Suppressed:    supp,
		Number:        factsProto(facts, &snap.policy),
		Restrictions:  restrictionsProto(&snap.state, req.GetSender(), now),
	}
	if r.hasNumber {
		out.PhoneE164 = r.number.E164
	}
	if out.GetUserId() == "" {
		out.UserId = r.userID
	}
	if out.GetWaId() == "" {
		out.WaId = waID(facts.WaID, r)
	}
	switch {
	case out.GetOptedOut():
		out.OptedOutAt = ts(rel.OwnStopAt)
	case out.GetMetaOptedOut():
		at, _ := rel.MetaStoppedAt(req.GetSender())
		out.OptedOutAt = ts(at)
	}
	if rel.Consented() {
		out.ConsentAt = ts(rel.ConsentAt)
		out.ConsentReason = rel.ConsentReason
	}
	// The windows that concern a send from the request's sender (any sender's
	// when it names none).
	if until := validator.WindowUntil(rel, &snap.policy, req.GetSender(), now); !until.IsZero() {
		out.ServiceWindowUntil = timestamppb.New(until)
	}
	if until := validator.FreeEntryUntil(rel, req.GetSender(), now); !until.IsZero() {
		out.FreeEntryWindowUntil = timestamppb.New(until)
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
		req := &sgv1.CheckSendRequest{BusinessId: req.GetBusinessId(), Category: cat, Sender: req.GetSender()}
		chk := s.checkInput(req, r, now, snap)
		chk.Suppressed = supp
		dec := decide(snap, &c, chk, r)
		resp := s.answer(req, r, &c, snap, &dec, false) // a preview: not counted as a check
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
	if err := validateRecipientOnly(req.GetBusinessId(), req.GetPhone(), req.GetRegion(), req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkText("reason", req.GetReason(), maxReason); err != nil {
		return nil, err
	}
	resp, err := s.setOptOut(ctx, req)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return resp, nil
}

func (s *Server) setOptOut(ctx context.Context, req *sgv1.SetOptOutRequest) (*sgv1.SetOptOutResponse, error) {
	b, err := s.biz.get(ctx, req.GetBusinessId())
	if err != nil {
		return nil, err
	}
	r, err := s.resolveEvent(ctx, b, phoneIn{raw: req.GetPhone(), region: req.GetRegion()}, req.GetUserId())
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	reason := req.GetReason()
	if reason == "" {
		reason = "SetOptOut"
	}
	resp := &sgv1.SetOptOutResponse{}
	var userID string
	err = s.store.UpdateContact(ctx, r.key, "", func(c *storage.Contact) (storage.Write, error) {
		snap := b.snap.Load()
		before := c.Facts
		if _, err := s.foldSuppression(ctx, r, c); err != nil {
			return storage.Write{}, err
		}
		validator.SetOptOut(&c.Rel, req.GetOptedOut(), reason, now)
		s.learn(c, r, snap)
		resp.OptedOut = c.Rel.OwnOptedOut()
		resp.MetaOptedOut = c.Rel.MetaOptedOut()
		userID = c.Rel.UserID
		return s.writeBack(snap, c, before, now), nil
	})
	if err != nil {
		return nil, err
	}
	if !req.GetOptedOut() {
		// Consent given again lifts every suppression entry a forget left.
		for _, h := range s.suppressionHashes(r, userID) {
			if err := s.store.DeleteSuppression(ctx, r.key.Business, h); err != nil {
				return nil, err
			}
		}
	}
	return resp, nil
}

// ForgetContact erases a recipient of a business.
func (s *Server) ForgetContact(ctx context.Context, req *sgv1.ForgetContactRequest) (*sgv1.ForgetContactResponse, error) {
	if err := validateRecipientOnly(req.GetBusinessId(), req.GetPhone(), req.GetRegion(), req.GetUserId()); err != nil {
		return nil, err
	}
	resp, err := s.forget(ctx, req)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return resp, nil
}

func (s *Server) forget(ctx context.Context, req *sgv1.ForgetContactRequest) (*sgv1.ForgetContactResponse, error) {
	b, err := s.biz.get(ctx, req.GetBusinessId())
	if err != nil {
		return nil, err
	}
	r, err := s.resolve(ctx, b, phoneIn{raw: req.GetPhone(), region: req.GetRegion()}, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if r.invalid && !r.hasNumber && r.userID == "" {
		return nil, invalidArg("phone: %s", r.detail)
	}
	business := r.key.Business
	keep := !req.GetForgetOptOut()
	c, err := s.store.GetContact(ctx, r.key)
	if err != nil {
		return nil, err
	}
	optedOut := func(rel *validator.Relationship) bool { return rel.MetaOptedOut() || rel.OwnOptedOut() }
	suppress := func(on bool, userID string) error {
		for _, h := range s.suppressionHashes(r, userID) {
			var err error
			if on {
				err = s.store.PutSuppression(ctx, business, h)
			} else {
				err = s.store.DeleteSuppression(ctx, business, h)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	// The suppression entry goes in before the contact goes, so that no check
	// between the two finds neither.
	wasOut := keep && optedOut(&c.Rel)
	if wasOut {
		if err := suppress(true, c.Rel.UserID); err != nil {
			return nil, err
		}
	}
	prev, found, err := s.store.DeleteContact(ctx, r.key)
	if err != nil {
		return nil, err
	}
	// DeleteContact returns what it erased: an opt-out or opt-in that arrived
	// between the read and the delete is honoured.
	isOut := keep && optedOut(&prev.Rel)
	if isOut != wasOut || !keep {
		if err := suppress(isOut, prev.Rel.UserID); err != nil {
			return nil, err
		}
	}
	resp := &sgv1.ForgetContactResponse{Found: found, Suppressed: isOut}
	if keep && !isOut {
		// An opt-out forgotten before is still kept: forgetting again says so.
		if resp.Suppressed, err = s.store.HasSuppression(ctx, business, s.hash.suppression(r.key.ID)); err != nil {
			return nil, err
		}
	}
	// The user ID's own keys: its link and any history kept under it.
	for _, uid := range []string{prev.Rel.UserID, r.userID} {
		if uid == "" {
			continue
		}
		if err := s.store.DeleteLink(ctx, business, uid); err != nil {
			return nil, err
		}
		k := storage.ContactKey{Business: business, ID: storage.UserIDPrefix + uid}
		if k != r.key {
			if _, _, err := s.store.DeleteContact(ctx, k); err != nil {
				return nil, err
			}
		}
	}
	return resp, nil
}

// suppressionHashes are the keyed hashes a forgotten opt-out is kept under: the
// recipient's key, and its user ID when it has one.
func (s *Server) suppressionHashes(r recipient, userID string) []string {
	hs := []string{s.hash.suppression(r.key.ID)}
	for _, uid := range []string{userID, r.userID} {
		if id := storage.UserIDPrefix + uid; uid != "" && id != r.key.ID {
			hs = append(hs, s.hash.suppression(id))
		}
	}
	return hs
}
