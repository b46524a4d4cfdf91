package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
	"github.com/sendguard/sendguard/webhook"
)

// DefaultMaxWebhookBody bounds a webhook POST body. Meta batches up to 1,000
// statuses per POST (about 350 KB); 8 MiB leaves room for verbose payloads.
const DefaultMaxWebhookBody = 8 << 20

// WebhookPath is where Meta's WhatsApp webhook is served.
const WebhookPath = "/webhooks/whatsapp"

// WebhookEventsHeader is the response header that, on a 200, counts what the
// POST's events did, e.g. "applied=3 duplicate=1 skipped=0" (duplicate:
// recorded before; skipped: not applied, see sendguard_webhook_skipped_total),
// so that `sendguard replay` can tell new events from repeats.
const WebhookEventsHeader = "Sendguard-Events"

// webhookState is what the webhook endpoint keeps: its metrics and the budget
// of bytes its bodies may hold.
type webhookState struct {
	requests  *prometheus.CounterVec
	skipped   *prometheus.CounterVec
	restamped prometheus.Counter
	bodies    *bodyBudget
	unsigned  unsignedLog
}

// unsignedLog says in the log that webhook POSTs are refused for their
// signature, at most once per unsignedLogEvery with the count since: a wrong
// whatsapp_app_secret refuses every POST Meta sends, which the metrics alone
// do not tell whoever reads the log, and a stranger's flood must not flood it.
type unsignedLog struct {
	mu      sync.Mutex
	last    time.Time // when the last line was written (zero: never)
	refused int       // POSTs refused since then
}

// unsignedLogEvery is the least time between two lines of unsignedLog.
const unsignedLogEvery = time.Minute

// refuse counts a refused POST and returns how many to report now (0: not yet).
func (u *unsignedLog) refuse(now time.Time) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.refused++
	if !u.last.IsZero() && now.Sub(u.last) < unsignedLogEvery {
		return 0
	}
	n := u.refused
	u.last, u.refused = now, 0
	return n
}

func newWebhookState(cfg Config, reg *prometheus.Registry) *webhookState {
	m := &webhookState{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendguard_webhook_requests_total",
			Help: "Webhook HTTP requests by method and response code.",
		}, []string{"method", "code"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendguard_webhook_skipped_total",
			Help: "Webhook items that were authenticated but not applied, by reason.",
		}, []string{"reason"}),
		restamped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendguard_webhook_events_restamped_total",
			Help: "Webhook events dated more than max_event_skew after the server's clock, applied with the time they were received instead.",
		}),
		bodies: newBodyBudget(cfg.WebhookBodyBudget),
	}
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sendguard_webhook_body_bytes",
		Help: "Bytes of webhook bodies held now, signed or not (at most webhook_body_budget).",
	}, func() float64 { return float64(m.bodies.used.Load()) })
	reg.MustRegister(m.requests, m.skipped, m.restamped, held)
	return m
}

// handleWebhookVerify answers Meta's subscription check.
func (s *Server) handleWebhookVerify(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	token := []byte(q.Get("hub.verify_token"))
	want := []byte(s.cfg.WebhookVerifyToken)
	if q.Get("hub.mode") != "subscribe" || len(want) == 0 || subtle.ConstantTimeCompare(token, want) != 1 {
		s.webhook.requests.WithLabelValues("GET", "403").Inc()
		http.Error(w, "verification failed", http.StatusForbidden)
		return
	}
	s.webhook.requests.WithLabelValues("GET", "200").Inc()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, q.Get("hub.challenge"))
}

// webhookRetryAfter is the Retry-After of a 503: the budget or the store may
// have room again by then.
const webhookRetryAfter = "5"

// handleWebhook takes one signed webhook POST: 401 for a missing or wrong
// signature, 413 for a body over the limit, 408 for a body not sent within the
// read timeout, 400 for a body that is not a webhook JSON object (nothing
// applied), 503 with Retry-After when the body budget is spent or the store
// cannot take the events (Meta retries), and 200 for everything else,
// including events it skipped (counted).
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	// The body must arrive within the read timeout, however slowly it trickles
	// in (a deadline on the connection, which the server resets for the next
	// request).
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.WebhookReadTimeout))
	code := s.serveWebhook(w, r)
	s.webhook.requests.WithLabelValues("POST", strconv.Itoa(code)).Inc()
	switch code {
	case http.StatusOK:
		w.WriteHeader(http.StatusOK)
		return
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", webhookRetryAfter)
	}
	http.Error(w, http.StatusText(code), code)
}

func (s *Server) serveWebhook(w http.ResponseWriter, r *http.Request) int {
	received := s.cfg.Now()
	b, code := readWebhookBody(w, r, s.webhook.bodies, s.cfg.MaxWebhookBody)
	if code != 0 {
		return code
	}
	defer b.release() // Parse copies what it keeps
	if !b.verify(r.Header.Get("X-Hub-Signature-256"), s.cfg.WebhookSecret) {
		if n := s.webhook.unsigned.refuse(s.cfg.Now()); n > 0 {
			// refused: since the last such line (at most one a minute).
			s.log.Warn("webhook POSTs refused for their signature: no X-Hub-Signature-256, or not made with "+
				"whatsapp_app_secret (if Meta's own are refused, the app secret configured is not the Meta app's)",
				"refused", n, "remote", r.RemoteAddr)
		}
		return http.StatusUnauthorized
	}
	events, stats, err := webhook.Parse(b.bytes())
	if err != nil {
		return http.StatusBadRequest
	}
	skipped := 0
	for reason, n := range stats.Skipped {
		s.webhook.skipped.WithLabelValues(reason).Add(float64(n))
		skipped += n
	}
	applied, dup, err := s.applyWebhookEvents(r.Context(), events, received)
	if err != nil {
		// Meta retries the whole POST; the events already applied are deduplicated
		// then.
		s.log.Warn("webhook: store unavailable; asking Meta to retry", "err", err)
		if errors.Is(err, storage.ErrUnavailable) {
			s.storeFailed(err)
		}
		return http.StatusServiceUnavailable
	}
	w.Header().Set(WebhookEventsHeader, fmt.Sprintf("applied=%d duplicate=%d skipped=%d", applied, dup, skipped+len(events)-applied-dup))
	return http.StatusOK
}

// businessFor maps a phone_number_id to its business_id: the configured mapping, or
// the id itself unless the deployment skips unmapped ids.
func (s *Server) businessFor(phoneNumberID string) (string, bool) {
	if b, ok := s.cfg.PhoneNumberIDs[phoneNumberID]; ok {
		return b, true
	}
	// With API keys configured the deployment is multi-tenant: a webhook must not
	// create or write to a business that no mapping names.
	if s.cfg.SkipUnmappedPhoneNumberIDs || len(s.keys) > 0 {
		return "", false
	}
	return phoneNumberID, true
}

// applyWebhookEvents prepares every event, applies them with one UpdateContacts,
// then finishes each. A bad event is skipped and counted; only a failing store fails
// the whole POST. received is when the POST arrived. It returns how many events
// the store applied and how many it had recorded before.
func (s *Server) applyWebhookEvents(ctx context.Context, events []webhook.Event, received time.Time) (applied, dup int, err error) {
	prepared := make([]event, 0, len(events))
	for i := range events {
		s.boundEventTime(&events[i], received)
		if events[i].WABAID != "" { // an account event: account_update, templates, capability, quality
			outcome, err := s.applyAccountEvent(ctx, &events[i], received)
			if err != nil {
				return 0, 0, err // a store error: the events are not batched, nothing else can fail
			}
			switch outcome {
			case "applied":
				applied++
			case "duplicate":
				dup++
			}
			continue
		}
		if events[i].Kind == webhook.KindIdentityChange {
			// Two keys, read then written: applied on its own, in order.
			outcome, err := s.applyIdentityChange(ctx, &events[i], received)
			if err != nil {
				return 0, 0, err
			}
			switch outcome {
			case "applied":
				applied++
			case "duplicate":
				dup++
			}
			continue
		}
		ev, ok, err := s.prepareWebhookEvent(ctx, &events[i])
		switch {
		case err != nil && isStoreError(err):
			return 0, 0, err
		case err != nil:
			s.webhook.skipped.WithLabelValues("invalid_event").Inc()
			s.log.Debug("webhook: event skipped", "kind", events[i].Kind.String(), "err", err)
		case ok:
			prepared = append(prepared, ev)
		}
	}
	updates := make([]storage.ContactUpdate, len(prepared))
	for i, ev := range prepared {
		updates[i] = ev.update
	}
	results, err := s.store.UpdateContacts(ctx, updates)
	if err != nil {
		return 0, 0, err
	}
	for i, ev := range prepared {
		switch {
		case results[i] == nil:
			applied++
		case errors.Is(results[i], storage.ErrDuplicate):
			dup++
		}
		if err := ev.done(ctx, results[i]); err != nil {
			if isStoreError(err) {
				return 0, 0, err
			}
			s.webhook.skipped.WithLabelValues("invalid_event").Inc()
		}
	}
	return applied, dup, nil
}

// boundEventTime stamps an event dated more than MaxEventSkew after received
// with received instead, and counts it: Meta must get its 200 (it would retry a
// refusal for days), but a date years ahead would hold a contact's state until
// then (DESIGN.md "Time").
func (s *Server) boundEventTime(ev *webhook.Event, received time.Time) {
	if ev.Timestamp.After(received.Add(s.cfg.MaxEventSkew)) {
		ev.Timestamp = received
		s.webhook.restamped.Inc()
	}
}

func isStoreError(err error) bool {
	return errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrConflict) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// prepareWebhookEvent turns one webhook event into a prepared report; ok is false
// when the event is skipped (counted).
func (s *Server) prepareWebhookEvent(ctx context.Context, ev *webhook.Event) (event, bool, error) {
	business, ok := s.businessFor(ev.PhoneNumberID)
	if !ok {
		s.webhook.skipped.WithLabelValues("unmapped_phone_number_id").Inc()
		return event{}, false, nil
	}
	if err := checkRecipient(business, ev.Phone, ev.UserID); err != nil {
		return event{}, false, err
	}
	var ts *timestamppb.Timestamp
	if !ev.Timestamp.IsZero() {
		ts = timestamppb.New(ev.Timestamp)
	}
	var (
		prepared event
		err      error
	)
	switch ev.Kind {
	case webhook.KindStatus:
		prepared, _, err = s.prepareResult(ctx, &sgv1.ReportResultRequest{
			BusinessId: business, Phone: ev.Phone, UserId: ev.UserID, MessageId: ev.MessageID,
			MessageRef: ev.CallbackData, Status: ev.Status, ErrorCode: ev.ErrorCode, ErrorTitle: ev.ErrorTitle,
			Category: ev.Category, Timestamp: ts, Sender: ev.PhoneNumberID, PricingCategory: ev.PricingCategory,
		}, sourceWebhook)
	case webhook.KindMessage, webhook.KindCall:
		req := &sgv1.ReportInboundRequest{
			BusinessId: business, Phone: ev.Phone, UserId: ev.UserID, MessageId: ev.MessageID,
			Kind: sgv1.InboundKind_INBOUND_KIND_MESSAGE, Text: ev.Text, Timestamp: ts, Sender: ev.PhoneNumberID,
			AdReferral: ev.Referral, ButtonPayload: ev.ButtonPayload,
		}
		if ev.Kind == webhook.KindCall {
			req.Kind, req.Text, req.ButtonPayload = sgv1.InboundKind_INBOUND_KIND_CALL, "", ""
		}
		prepared, _, err = s.prepareInbound(ctx, req, sourceWebhook)
	case webhook.KindUserPreference:
		if c := ev.PreferenceCategory; c != "" && c != "marketing_messages" {
			s.webhook.skipped.WithLabelValues("preference_category").Inc()
			return event{}, false, nil
		}
		prepared, err = s.preparePreference(ctx, business, ev)
	default:
		s.webhook.skipped.WithLabelValues("unknown_kind").Inc()
		return event{}, false, nil
	}
	return prepared, err == nil, err
}

// preparePreference prepares a user_preferences stop or resume: Meta's own opt-out
// record for marketing from this business.
func (s *Server) preparePreference(ctx context.Context, business string, ev *webhook.Event) (event, error) {
	sender, err := s.reportSender(business, ev.PhoneNumberID)
	if err != nil {
		return event{}, err
	}
	b, err := s.biz.get(ctx, business)
	if err != nil {
		return event{}, err
	}
	r, err := s.resolveEvent(ctx, b, eventPhone(ev.Phone, "", sourceWebhook), ev.UserID)
	if err != nil {
		return event{}, err
	}
	now := s.cfg.Now()
	at := ev.Timestamp
	if at.IsZero() {
		at = now
	}
	stop := ev.PreferenceStop
	value := "resume"
	if stop {
		value = "stop"
	}
	fn := func(c *storage.Contact) (storage.Write, error) {
		snap := b.snap.Load()
		validator.ApplyUserPreference(&c.Rel, sender, stop, at)
		s.learn(c, r, snap)
		return storage.Write{Rel: true, RelTTL: storage.TTLUntil(c.Rel.ExpiresAt(&snap.policy), now)}, nil
	}
	done := func(_ context.Context, err error) error {
		outcome := "applied"
		if errors.Is(err, storage.ErrDuplicate) {
			outcome, err = "duplicate", nil
		}
		if err == nil {
			s.metrics.events.WithLabelValues(sourceWebhook, "user_preference_"+value, outcome).Inc()
		}
		return err
	}
	dedup := s.hash.opaque("d", "p\x00"+r.key.ID+"\x00"+value+"\x00"+strconv.FormatInt(at.Unix(), 10))
	return event{update: storage.ContactUpdate{Key: r.key, Dedup: dedup, Fn: fn}, done: done}, nil
}
