package server

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/identity"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
	"github.com/sendguard/sendguard/validator/keyword"
)

// Where an event comes from: the gRPC (and HTTP) API, or Meta's webhook, whose
// numbers are international always (no region reads them). Also the source
// label of sendguard_events_total.
const (
	sourceAPI     = "api"
	sourceWebhook = "webhook"
)

// eventPhone is the phone an event of source names.
func eventPhone(raw, region, source string) phoneIn {
	return phoneIn{raw: raw, region: region, meta: source == sourceWebhook}
}

// event is a report prepared for storage: the update to apply, and what follows
// once its result is known (nil, storage.ErrDuplicate, or an error). Single RPCs
// apply one with UpdateContact; a webhook POST applies all of its events with one
// UpdateContacts.
type event struct {
	update storage.ContactUpdate
	done   func(ctx context.Context, err error) error
}

func (s *Server) apply(ctx context.Context, ev event) error {
	u := ev.update
	return ev.done(ctx, s.store.UpdateContact(ctx, u.Key, u.Dedup, u.Fn))
}

// ReportResult records what happened to a send.
func (s *Server) ReportResult(ctx context.Context, req *sgv1.ReportResultRequest) (*sgv1.ReportResultResponse, error) {
	if err := validateResult(req); err != nil {
		return nil, err
	}
	ev, resp, err := s.prepareResult(ctx, req, sourceAPI)
	if err == nil {
		err = s.apply(ctx, ev)
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return resp, nil
}

// resultDedupKey is the idempotency key of a result: (message_id, status), or
// (message_ref, status) when Meta assigned no message_id; "" when neither is known.
func resultDedupKey(messageID, ref string, st sgv1.MessageStatus) string {
	switch {
	case messageID != "":
		return "r\x00" + messageID + "\x00" + st.String()
	case ref != "":
		return "f\x00" + ref + "\x00" + st.String()
	}
	return ""
}

// prepareResult resolves a result's recipient and builds its update. resp is
// filled in when the update is done.
func (s *Server) prepareResult(ctx context.Context, req *sgv1.ReportResultRequest, source string) (event, *sgv1.ReportResultResponse, error) {
	sender, err := s.reportSender(req.GetBusinessId(), req.GetSender())
	if err != nil {
		return event{}, nil, err
	}
	phone := eventPhone(req.GetPhone(), req.GetRegion(), source)
	b, r, now, at, err := s.eventTarget(ctx, req.GetBusinessId(), phone, req.GetUserId(), req.GetTimestamp())
	if err != nil {
		return event{}, nil, err
	}
	res := validator.Result{
		Status:     req.GetStatus(),
		ErrorCode:  req.GetErrorCode(),
		Category:   req.GetCategory(),
		Template:   req.GetTemplate(),
		CampaignID: req.GetCampaignId(),
		MessageID:  s.storedMessageID(req.GetMessageId()),
		Ref:        req.GetMessageRef(),
		At:         at,
		Sender:     sender,
		Language:   req.GetTemplateLanguage(),
		// Kept verbatim: only marketing and marketing_lite mean anything here.
		PricingCategory: req.GetPricingCategory(),
	}
	resp := &sgv1.ReportResultResponse{}
	if r.hasNumber {
		resp.PhoneE164 = r.number.E164
	}
	var (
		effect   validator.TemplateEffect
		restrict restrictionEffect
		slot     slotChange
	)
	fn := func(c *storage.Contact) (storage.Write, error) {
		snap := b.snap.Load()
		if _, err := s.foldSuppression(ctx, r, c); err != nil {
			return storage.Write{}, err
		}
		before := c.Facts
		facts := factsFor(snap, c, r)
		slot.before, slot.beforeAt = validator.SlotHeld(&c.Rel, res.Ref, res.MessageID)
		effect = validator.ApplyResult(&c.Rel, facts, &snap.policy, res)
		slot.after, slot.afterAt = validator.SlotHeld(&c.Rel, res.Ref, res.MessageID)
		restrict = restrictionEffectOf(&c.Rel, &snap.state, &res, sender, r.region())
		s.learn(c, r, snap)
		return s.writeBack(snap, c, before, now), nil
	}
	done := func(ctx context.Context, err error) error {
		label := statusLabel(req.GetStatus())
		switch {
		case errors.Is(err, storage.ErrDuplicate):
			s.metrics.events.WithLabelValues(source, label, "duplicate").Inc()
			resp.Duplicate = true
			// A retry of a report whose business change was lost (the business
			// write failed after the contact write): recompute it; applying it
			// again is harmless.
			if restrict, err = s.duplicateRestrictionEffect(ctx, b, r, &res, sender); err != nil {
				return err
			}
			if err := s.applyRestrictionEffect(ctx, b, restrict); err != nil {
				return err
			}
			if !mayChangeTemplate(req, &b.snap.Load().state) {
				return nil
			}
			c, err := s.store.GetContact(ctx, r.key)
			if err != nil {
				return err
			}
			snap := b.snap.Load()
			effect = validator.ApplyResult(&c.Rel, factsFor(snap, &c, r), &snap.policy, res)
		case err != nil:
			return err
		default:
			s.metrics.events.WithLabelValues(source, label, "applied").Inc()
			if err := s.applyRestrictionEffect(ctx, b, restrict); err != nil {
				return err
			}
			if err := slot.apply(ctx, s, b); err != nil {
				return err
			}
		}
		if effect.Template != "" && validator.TemplateEffectChanges(&b.snap.Load().state, effect) {
			return s.biz.updateState(ctx, b, func(st *validator.Business) { validator.ApplyTemplate(st, effect) })
		}
		return nil
	}
	dedup := s.hash.opaque("d", resultDedupKey(req.GetMessageId(), req.GetMessageRef(), req.GetStatus()))
	return event{update: storage.ContactUpdate{Key: r.key, Dedup: dedup, Fn: fn}, done: done}, resp, nil
}

// slotChange is what a report did to its send's messaging-limit slot (see
// validator.SlotHeld): a FAILED report of a reservation that took one gives it
// back; a delivery reported after that failure takes it again. A duplicate
// report changes neither (its flags are already set), so the business's count
// is given back once. (When the business write fails after the contact's, the
// retried report is a duplicate and the slot stays counted: it frees when its
// 24 h end, the safe side.)
type slotChange struct {
	before, after     bool
	beforeAt, afterAt time.Time
}

func (sc slotChange) apply(ctx context.Context, s *Server, b *business) error {
	switch {
	case sc.before && !sc.after:
		return s.biz.updateState(ctx, b, func(st *validator.Business) { validator.RemoveReach(st, sc.beforeAt) })
	case !sc.before && sc.after:
		return s.biz.updateState(ctx, b, func(st *validator.Business) { validator.AddReach(st, sc.afterAt) })
	}
	return nil
}

// ReportInbound records a message or call from the user.
func (s *Server) ReportInbound(ctx context.Context, req *sgv1.ReportInboundRequest) (*sgv1.ReportInboundResponse, error) {
	if err := validateInbound(req); err != nil {
		return nil, err
	}
	ev, resp, err := s.prepareInbound(ctx, req, sourceAPI)
	if err == nil {
		err = s.apply(ctx, ev)
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return resp, nil
}

func (s *Server) prepareInbound(ctx context.Context, req *sgv1.ReportInboundRequest, source string) (event, *sgv1.ReportInboundResponse, error) {
	sender, err := s.reportSender(req.GetBusinessId(), req.GetSender())
	if err != nil {
		return event{}, nil, err
	}
	phone := eventPhone(req.GetPhone(), req.GetRegion(), source)
	b, r, now, at, err := s.eventTarget(ctx, req.GetBusinessId(), phone, req.GetUserId(), req.GetTimestamp())
	if err != nil {
		return event{}, nil, err
	}
	snap := b.snap.Load()
	in := validator.Inbound{
		Kind: req.GetKind(), At: at, MessageID: s.storedMessageID(req.GetMessageId()), Text: req.GetText(),
		Sender: sender, Referral: req.GetAdReferral(),
	}
	if in.Kind != sgv1.InboundKind_INBOUND_KIND_CALL {
		in.Keyword, in.Reason = matchKeyword(snap, req.GetText(), req.GetButtonPayload())
	}
	dedup := ""
	if id := req.GetMessageId(); id != "" {
		dedup = s.hash.opaque("d", "i\x00"+id)
	}
	resp := &sgv1.ReportInboundResponse{}
	if r.hasNumber {
		resp.PhoneE164 = r.number.E164
	}
	fn := func(c *storage.Contact) (storage.Write, error) {
		snap := b.snap.Load()
		if _, err := s.foldSuppression(ctx, r, c); err != nil {
			return storage.Write{}, err
		}
		before := c.Facts
		validator.ApplyInbound(&c.Rel, factsFor(snap, c, r), &snap.policy, in)
		s.learn(c, r, snap)
		resp.ServiceWindowUntil = nil
		if until := validator.WindowUntil(&c.Rel, &snap.policy, sender, now); !until.IsZero() {
			resp.ServiceWindowUntil = timestamppb.New(until)
		}
		return s.writeBack(snap, c, before, now), nil
	}
	done := func(_ context.Context, err error) error {
		label := inboundLabel(req.GetKind())
		if errors.Is(err, storage.ErrDuplicate) {
			s.metrics.events.WithLabelValues(source, label, "duplicate").Inc()
			*resp = sgv1.ReportInboundResponse{Duplicate: true, PhoneE164: resp.GetPhoneE164()}
			return nil
		}
		if err != nil {
			return err
		}
		s.metrics.events.WithLabelValues(source, label, "applied").Inc()
		resp.OptedOut = in.Keyword == validator.KeywordOptOut
		resp.OptedIn = in.Keyword == validator.KeywordOptIn
		return nil
	}
	return event{update: storage.ContactUpdate{Key: r.key, Dedup: dedup, Fn: fn}, done: done}, resp, nil
}

// matchKeyword matches an inbound message against the business's keywords:
// its text (what the user typed, or the label of the quick-reply button they
// tapped: Meta's marketing opt-out button sends "Stop promotions", "Parar
// promoções"…), and the button's payload (or an interactive reply's id), which
// the business chose. Each is matched whole (trimmed, case and accents aside).
// An opt-out in either wins over an opt-in in the other. The reason names what
// matched: `keyword "STOP"` for typed text, `button "Stop promotions"` for a
// button's label, `button payload "STOP_PROMOS"` for its payload.
func matchKeyword(snap *bizSnapshot, text, payload string) (validator.InboundKeyword, string) {
	label := "keyword "
	if payload != "" {
		label = "button "
	}
	for _, m := range []struct {
		matcher *keyword.Matcher
		kind    validator.InboundKeyword
	}{{snap.optOut, validator.KeywordOptOut}, {snap.optIn, validator.KeywordOptIn}} {
		switch {
		case text != "" && m.matcher.Match(text):
			return m.kind, label + strconv.Quote(strings.TrimSpace(text))
		case payload != "" && m.matcher.Match(payload):
			return m.kind, "button payload " + strconv.Quote(strings.TrimSpace(payload))
		}
	}
	return validator.KeywordNone, ""
}

// eventTarget resolves what every event needs: its business, its recipient (see
// resolveEvent), the server's time and the event's time (now when it has none; a
// time too far ahead is refused: see eventTime).
func (s *Server) eventTarget(ctx context.Context, business string, phone phoneIn, userID string, ts *timestamppb.Timestamp) (*business, recipient, time.Time, time.Time, error) {
	now := s.cfg.Now()
	at, err := s.eventTime(ts, now)
	if err != nil {
		return nil, recipient{}, time.Time{}, time.Time{}, err
	}
	b, err := s.biz.get(ctx, business)
	if err != nil {
		return nil, recipient{}, time.Time{}, time.Time{}, err
	}
	r, err := s.resolveEvent(ctx, b, phone, userID)
	if err != nil {
		return nil, recipient{}, time.Time{}, time.Time{}, err
	}
	return b, r, now, at, nil
}

// resolveEvent resolves the recipient of an event: an unparsable phone is an
// invalid argument here (there is nothing to record it against), and an event that
// names both a number and a user ID links them. A possible number that is not
// valid is recorded: that is how it proves itself real (INVALID_NUMBER is a
// check's verdict only).
func (s *Server) resolveEvent(ctx context.Context, b *business, phone phoneIn, userID string) (recipient, error) {
	r, err := s.resolve(ctx, b, phone, userID)
	if err != nil {
		return r, err
	}
	if r.invalid {
		return r, invalidArg("phone: %s", r.detail)
	}
	if err := s.link(ctx, r); err != nil {
		return r, err
	}
	return r, nil
}

// factsFor returns the number-wide facts an event of this business contributes to:
// the shared record, or the relationship's own copy when the business does not
// share number signals or the recipient has no known number.
func factsFor(snap *bizSnapshot, c *storage.Contact, r recipient) *validator.NumberFacts {
	return readFacts(snap, c, r)
}

// writeBack says what an event's update writes: the relationship always, the
// shared facts when they changed. The facts' TTL is never shortened by a business
// whose policy keeps them less long than the deployment's (another business may
// still need them): it is the longer of the two policies' expiries.
func (s *Server) writeBack(snap *bizSnapshot, c *storage.Contact, factsBefore validator.NumberFacts, now time.Time) storage.Write {
	w := storage.Write{Rel: true, RelTTL: storage.TTLUntil(c.Rel.ExpiresAt(&snap.policy), now)}
	if c.Facts != factsBefore {
		w.Facts = true
		exp := c.Facts.ExpiresAt(&snap.policy)
		if d := c.Facts.ExpiresAt(&s.cfg.Defaults); d.After(exp) {
			exp = d
		}
		w.FactsTTL = storage.TTLUntil(exp, now)
	}
	return w
}

// mayChangeTemplate tells whether a (duplicate) report could change a template's
// state: a pause or disable, a marketing pricing category, or a success of a
// template the business has state for.
func mayChangeTemplate(req *sgv1.ReportResultRequest, st *validator.Business) bool {
	if validator.MarketingPricing(req.GetPricingCategory()) {
		return true
	}
	if req.GetStatus() == sgv1.MessageStatus_MESSAGE_STATUS_FAILED {
		return req.GetErrorCode() == 132015 || req.GetErrorCode() == 132016
	}
	return len(st.Templates) > 0
}

// learn remembers the recipient's WhatsApp-ID spelling and user ID. A deployment
// that hashes numbers keeps only which folding applied (e.g. "fold:mexico"), from
// which the spelling is rebuilt for the response.
func (s *Server) learn(c *storage.Contact, r recipient, snap *bizSnapshot) {
	if r.hasNumber {
		if wa := r.number.WaID(); wa != "" {
			if s.cfg.HashNumbers {
				wa = storage.FoldPrefix + r.number.Fold.String()
			}
			c.Rel.WaID = wa
			if snap.policy.ShareNumberSignals {
				c.Facts.WaID = wa
			}
		}
		if r.userID != "" {
			c.Rel.UserID = r.userID
		}
	}
}

// waID is the WhatsApp-ID spelling to answer with, from what is stored.
func waID(stored string, r recipient) string {
	f, ok := strings.CutPrefix(stored, storage.FoldPrefix)
	if !ok {
		return stored
	}
	if !r.hasNumber {
		return ""
	}
	for fold := identity.FoldNone; fold <= identity.FoldArgentina; fold++ {
		if fold.String() == f {
			return identity.Unfold(r.number.E164, fold)
		}
	}
	return ""
}
