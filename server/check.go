package server

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/identity"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// CheckSend judges one planned send, reserving it when asked and allowed.
func (s *Server) CheckSend(ctx context.Context, req *sgv1.CheckSendRequest) (*sgv1.CheckSendResponse, error) {
	if err := validateCheck(req); err != nil {
		return nil, err
	}
	resp, err := s.check(ctx, req)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return resp, nil
}

// check is CheckSend after validation.
func (s *Server) check(ctx context.Context, req *sgv1.CheckSendRequest) (*sgv1.CheckSendResponse, error) {
	p, err := s.prepareCheck(ctx, req)
	if err != nil {
		return nil, err
	}
	if p.reserves() {
		return s.reserve(ctx, p)
	}
	return s.judge(ctx, p)
}

// preparedCheck is a check with everything the store is not needed for
// resolved: the business, the recipient and the rules' input.
type preparedCheck struct {
	req  *sgv1.CheckSendRequest
	now  time.Time
	b    *business
	r    recipient
	snap *bizSnapshot
	chk  validator.Check
}

// reserves tells whether the check reserves: asked to, for a recipient that can
// be stored.
func (p *preparedCheck) reserves() bool { return p.req.GetReserve() && !p.r.invalid }

// prepareCheck resolves a validated request up to its store read.
func (s *Server) prepareCheck(ctx context.Context, req *sgv1.CheckSendRequest) (preparedCheck, error) {
	if err := s.checkSender(req.GetBusinessId(), req.GetSender()); err != nil {
		return preparedCheck{}, err
	}
	now := s.cfg.Now()
	sendAt, err := s.sendTime(req.GetSendAt(), now)
	if err != nil {
		return preparedCheck{}, err
	}
	b, err := s.biz.get(ctx, req.GetBusinessId())
	if err != nil {
		return preparedCheck{}, err
	}
	r, err := s.resolve(ctx, b, phoneIn{raw: req.GetPhone(), region: req.GetRegion()}, req.GetUserId())
	if err != nil {
		return preparedCheck{}, err
	}
	snap := b.snap.Load()
	return preparedCheck{req: req, now: now, b: b, r: r, snap: snap, chk: s.checkInput(req, r, sendAt, snap)}, nil
}

// judge answers a check that reserves nothing: one read of the recipient.
func (s *Server) judge(ctx context.Context, p preparedCheck) (*sgv1.CheckSendResponse, error) {
	c, err := s.store.GetContact(ctx, p.r.key)
	if err != nil {
		return nil, err
	}
	if p.chk.Suppressed, err = s.suppressed(ctx, p.r, &c); err != nil {
		return nil, err
	}
	dec := decide(p.snap, &c, p.chk, p.r)
	return s.response(p.req, p.r, &c, p.snap, &dec, false), nil
}

// errNeedLock restarts a reservation that found a messaging limit it did not lock
// for (the policy changed between the two snapshots).
var errNeedLock = errors.New("messaging limit needs the business lock")

// reserve judges and, when allowed, records a send, atomically per number. With a
// messaging limit the business's reach counters are part of the decision, so the
// reservations of that business are serialised on its lock.
//
// A reservation with a message_ref is idempotent for storage.DedupTTL (8 days)
// however many sends follow it: an allowed one records a dedup key with the send,
// and a repeat of the ref is a duplicate that counts nothing. A DEFER or DENY
// records no key, so the ref may be used again (DESIGN.md). Without a ref, a
// reservation with a campaign_id gets one derived from its recipient (see
// reservationRef). The answer carries the ref when the send is reserved under it
// (ALLOW) or was before (a duplicate), never on a DEFER or DENY.
func (s *Server) reserve(ctx context.Context, p preparedCheck) (*sgv1.CheckSendResponse, error) {
	v, err := s.newReservation(ctx, p)
	if err != nil {
		return nil, err
	}
	defer func() {
		if v.locked {
			v.b.mu.Unlock()
		}
	}()
	if v.b.snap.Load().policy.MessagingLimit > 0 {
		if v.b, err = s.biz.lock(ctx, v.b); err != nil {
			return nil, err
		}
		v.locked = true
	}
	err = s.store.UpdateContact(ctx, v.r.key, v.dedup, v.fn)
	if errors.Is(err, errNeedLock) {
		if v.b, err = s.biz.lock(ctx, v.b); err != nil {
			return nil, err
		}
		v.locked = true
		err = s.store.UpdateContact(ctx, v.r.key, v.dedup, v.fn)
	}
	return s.reserved(ctx, v, err)
}

// pendingReservation is one reservation on its way through the store: what it was
// asked, and what its update decided (fn may run more than once: each run sets
// every field again).
type pendingReservation struct {
	preparedCheck
	ctx    context.Context
	s      *Server
	sender string // recorded as the send's sender
	ref    string // the message_ref it is made under ("" for none)
	dedup  string // its dedup key ("" without a ref)
	locked bool   // b.mu is held: reaches may be counted

	dec     validator.Decision
	dup     bool
	final   storage.Contact
	reached bool // the send took a messaging-limit slot
	used    *bizSnapshot
}

// newReservation prepares p's reservation: its sender, ref and dedup key.
func (s *Server) newReservation(ctx context.Context, p preparedCheck) (*pendingReservation, error) {
	// The send is recorded as from the check's sender, else from the business's
	// only known sender (as a report would be attributed).
	sender, err := s.reportSender(p.req.GetBusinessId(), p.req.GetSender())
	if err != nil {
		return nil, err
	}
	ref, err := reservationRef(p.req, p.r)
	if err != nil {
		return nil, err
	}
	return &pendingReservation{preparedCheck: p, ctx: ctx, s: s, sender: sender, ref: ref, dedup: s.reservationDedupKey(p.r, ref)}, nil
}

// fn is the reservation's update of the recipient: judge, and record the send
// when allowed. Without the business lock it refuses (errNeedLock) a business
// that has come to have a messaging limit.
func (v *pendingReservation) fn(c *storage.Contact) (storage.Write, error) {
	v.used = v.b.snap.Load()
	v.reached, v.dup = false, false
	if v.used.policy.MessagingLimit > 0 && !v.locked {
		return storage.Write{}, errNeedLock
	}
	folded, err := v.s.foldSuppression(v.ctx, v.r, c)
	if err != nil {
		return storage.Write{}, err
	}
	if i := reservedSend(&c.Rel, v.ref); i >= 0 {
		// Reserved before the dedup key existed, or more than 8 days ago
		// for a send planned further ahead.
		v.dup, v.final = true, *c
		v.dec = decideWithout(v.used, c, i, v.chk, v.r)
		return storage.Write{SkipDedup: true}, nil
	}
	v.dec = decide(v.used, c, v.chk, v.r)
	v.final = *c
	if v.dec.Verdict != sgv1.Verdict_VERDICT_ALLOW {
		return storage.Write{Rel: folded, SkipDedup: true}, nil
	}
	// The reach goes into the stored state below (added, not written over).
	v.reached = validator.Reserve(&c.Rel, nil, &v.used.policy, validator.Send{
		At:         v.chk.SendAt,
		Sender:     v.sender,
		Ref:        v.ref,
		Category:   v.dec.EffectiveCategory,
		Template:   v.req.GetTemplate(),
		Language:   v.req.GetTemplateLanguage(),
		CampaignID: v.req.GetCampaignId(),
	})
	if v.r.userID != "" && c.Rel.UserID == "" && v.r.hasNumber {
		c.Rel.UserID = v.r.userID
	}
	v.final = *c
	return storage.Write{Rel: true, RelTTL: storage.TTLUntil(c.Rel.ExpiresAt(&v.used.policy), v.now)}, nil
}

// reserved answers a reservation once its update is done, err being the
// update's outcome.
func (s *Server) reserved(ctx context.Context, v *pendingReservation, err error) (*sgv1.CheckSendResponse, error) {
	if errors.Is(err, storage.ErrDuplicate) {
		return s.duplicate(ctx, v.req, v.ref, v.b, v.r, v.chk)
	}
	if err != nil {
		return nil, err
	}
	if v.reached {
		// Added to the stored state rather than written over it: replicas that
		// share a store count each other's reaches.
		if err := s.biz.updateStateLocked(ctx, v.b, func(st *validator.Business) { validator.AddReach(st, v.chk.SendAt) }); err != nil {
			return nil, err
		}
	}
	if !v.dup && v.dec.Verdict == sgv1.Verdict_VERDICT_ALLOW {
		s.metrics.reservations.Inc()
	}
	resp := s.response(v.req, v.r, &v.final, v.used, &v.dec, v.dup)
	if v.dup || v.dec.Verdict == sgv1.Verdict_VERDICT_ALLOW {
		resp.MessageRef = v.ref
	}
	return resp, nil
}

// reservationRef is the message_ref a reservation is made under: the request's,
// or, when it names none and has a campaign_id, "<campaign_id>/<recipient key>",
// the key being the one the contact is stored under (the E.164 number, its keyed
// hash under hash_numbers, or "u:<user_id>"), so that every spelling of one
// person is one send and no number is readable in a ref that senders pass to
// Meta as biz_opaque_callback_data. A derived ref over 256 bytes is
// INVALID_ARGUMENT. With neither a ref nor a campaign_id it is "": the
// reservation is not idempotent, as before.
func reservationRef(req *sgv1.CheckSendRequest, r recipient) (string, error) {
	if ref := req.GetMessageRef(); ref != "" || req.GetCampaignId() == "" {
		return ref, nil
	}
	ref := req.GetCampaignId() + "/" + r.key.ID
	if len(ref) > maxShortField {
		return "", invalidArg("message_ref: the one derived from campaign_id (campaign_id + \"/\" + the recipient key) is %d bytes; at most %d: shorten campaign_id or give a message_ref", len(ref), maxShortField)
	}
	return ref, nil
}

// reservationDedupKey is the dedup key of a reservation: its message_ref, for its
// recipient (Badger keeps a business's dedup keys in one key space), as a keyed
// hash like every dedup key; "" without a ref.
func (s *Server) reservationDedupKey(r recipient, ref string) string {
	if ref == "" {
		return ""
	}
	return s.hash.opaque("d", "s\x00"+r.key.ID+"\x00"+ref)
}

// reservedSend is the index of the send that ref reserved, or -1.
func reservedSend(rel *validator.Relationship, ref string) int {
	if ref == "" {
		return -1
	}
	if i := validator.FindSend(rel, ref, ""); i >= 0 && rel.Sends[i].Ref == ref {
		return i
	}
	return -1
}

// duplicate answers a reservation whose message_ref was reserved before: nothing
// new is counted, and the answer is judged again without that send (so that what
// happened since, an opt-out or a failure, is not hidden behind the old ALLOW).
// When the send has left the history (as many later sends as the policy keeps),
// the stored state is judged as it is: it no longer holds the send either. ref is
// the reservation's message_ref, given or derived; the answer carries it.
func (s *Server) duplicate(ctx context.Context, req *sgv1.CheckSendRequest, ref string, b *business, r recipient, chk validator.Check) (*sgv1.CheckSendResponse, error) {
	c, err := s.store.GetContact(ctx, r.key)
	if err != nil {
		return nil, err
	}
	if chk.Suppressed, err = s.suppressed(ctx, r, &c); err != nil {
		return nil, err
	}
	snap := b.snap.Load()
	var dec validator.Decision
	if i := reservedSend(&c.Rel, ref); i >= 0 {
		dec = decideWithout(snap, &c, i, chk, r)
	} else {
		dec = decide(snap, &c, chk, r)
	}
	resp := s.response(req, r, &c, snap, &dec, true)
	resp.MessageRef = ref
	return resp, nil
}

// decideWithout runs the rules on a stored contact without its send i.
func decideWithout(snap *bizSnapshot, c *storage.Contact, i int, chk validator.Check, r recipient) validator.Decision {
	without := *c
	without.Rel.Sends = slices.Delete(slices.Clone(c.Rel.Sends), i, i+1)
	return decide(snap, &without, chk, r)
}

// checkInput resolves what the rules need to know about the request.
func (s *Server) checkInput(req *sgv1.CheckSendRequest, r recipient, sendAt time.Time, snap *bizSnapshot) validator.Check {
	chk := validator.Check{
		Category:      req.GetCategory(),
		Template:      req.GetTemplate(),
		Language:      req.GetTemplateLanguage(),
		SendAt:        sendAt,
		HasNumber:     r.hasNumber,
		Number:        r.numberProblem(),
		InvalidDetail: r.detail,
		Sender:        req.GetSender(),
	}
	if r.hasNumber {
		chk.Region = r.number.Region
		if snap.policy.QuietHours != nil && validator.EffectiveCategory(&snap.state, &chk, sendAt) == sgv1.Category_CATEGORY_MARKETING {
			chk.Zones = identity.Zones(r.number)
		}
	}
	return chk
}

// readFacts returns the number-wide facts a business reads: the shared record, or
// the relationship's own copy when the business does not share number signals or
// the recipient has no known number (then nothing is shared: see factsFor).
func readFacts(snap *bizSnapshot, c *storage.Contact, r recipient) *validator.NumberFacts {
	if snap.policy.ShareNumberSignals && r.key.Number() != "" {
		return &c.Facts
	}
	return &c.Rel.Local
}

// suppressedReason is the reason of an opt-out folded in from a suppression entry.
const suppressedReason = "opted out before the contact was forgotten (suppression entry)"

// foldSuppression starts a new relationship opted out when the recipient's opt-out
// was forgotten: every write path calls it first, so that no new event hides the
// suppression entry. It reports whether it folded one.
func (s *Server) foldSuppression(ctx context.Context, r recipient, c *storage.Contact) (bool, error) {
	if c.RelFound || r.key.ID == "" {
		return false, nil
	}
	ok, err := s.store.HasSuppression(ctx, r.key.Business, s.hash.suppression(r.key.ID))
	if err != nil || !ok {
		return false, err
	}
	c.Rel.OwnStopAt, c.Rel.OwnStopReason = s.cfg.Now(), suppressedReason
	return true, nil
}

// suppressed reports whether a forgotten opt-out still suppresses the recipient: only
// looked up when the business holds no relationship with it. (On Redis the
// suppression list is in another slot; reading it in the same pipeline as the
// contact would save an unknown recipient a round trip but doubles every other
// check's commands: checks fell from 0.43x to 0.25x of Badger's.)
func (s *Server) suppressed(ctx context.Context, r recipient, c *storage.Contact) (bool, error) {
	if c.RelFound || r.key.ID == "" || r.invalid && !r.hasNumber && r.userID == "" {
		return false, nil
	}
	return s.store.HasSuppression(ctx, r.key.Business, s.hash.suppression(r.key.ID))
}

// decide runs the rules on a stored contact.
func decide(snap *bizSnapshot, c *storage.Contact, chk validator.Check, r recipient) validator.Decision {
	facts := readFacts(snap, c, r)
	return validator.Decide(&validator.Input{
		Check:    chk,
		Rel:      &c.Rel,
		Facts:    facts,
		Business: &snap.state,
		Policy:   &snap.policy,
	})
}

// response answers a check and counts its decision in the metrics.
func (s *Server) response(req *sgv1.CheckSendRequest, r recipient, c *storage.Contact, snap *bizSnapshot, dec *validator.Decision, dup bool) *sgv1.CheckSendResponse {
	s.metrics.observe(dec)
	return s.answer(req, r, c, snap, dec, dup)
}

// answer builds the answer to a decision without counting it: GetContact's
// previews are not checks (sendguard_decisions_total counts what was asked).
func (s *Server) answer(req *sgv1.CheckSendRequest, r recipient, c *storage.Contact, snap *bizSnapshot, dec *validator.Decision, dup bool) *sgv1.CheckSendResponse {
	resp := &sgv1.CheckSendResponse{
		RequestId: req.GetRequestId(),
		Verdict:   dec.Verdict,
		Shadow:    dec.Shadow,
		Duplicate: dup,
		UserId:    c.Rel.UserID,
		WaId:      waID(c.Rel.WaID, r),
		// The category judged: the request's, or MARKETING when Meta treats
		// the template as marketing.
		EffectiveCategory: dec.EffectiveCategory,
	}
	if r.hasNumber {
		resp.PhoneE164 = r.number.E164
	}
	if resp.GetUserId() == "" && !r.hasNumber {
		resp.UserId = r.userID
	}
	if resp.GetWaId() == "" && snap.policy.ShareNumberSignals {
		resp.WaId = waID(c.Facts.WaID, r)
	}
	if !dec.RetryAt.IsZero() {
		resp.RetryAt = timestamppb.New(dec.RetryAt)
	}
	if !dec.WindowUntil.IsZero() {
		resp.ServiceWindowUntil = timestamppb.New(dec.WindowUntil)
	}
	if len(dec.Reasons) > 0 {
		resp.Reasons = make([]*sgv1.Reason, len(dec.Reasons))
		for i := range dec.Reasons {
			resp.Reasons[i] = reasonProto(&dec.Reasons[i])
		}
	}
	return resp
}

func reasonProto(r *validator.Reason) *sgv1.Reason {
	out := &sgv1.Reason{
		Rule:          r.Rule,
		Verdict:       r.Verdict,
		Detail:        r.Detail,
		MetaErrorCode: r.MetaErrorCode,
		Shadow:        r.Shadow,
	}
	if !r.Until.IsZero() {
		out.Until = timestamppb.New(r.Until)
	}
	return out
}
