package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/webhook"
)

var testSecret = []byte("app-secret")

const pnid = "106540352242922"

func webhookHarness(t testing.TB, mutate ...func(*Config)) (*harness, http.Handler) {
	return webhookHarnessOn(t, nil, mutate...)
}

// webhookHarnessOn is webhookHarness on a store of the test's (see newHarnessOn).
func webhookHarnessOn(t testing.TB, wrap func(st storage.Store, c Config) storage.Store, mutate ...func(*Config)) (*harness, http.Handler) {
	h := newHarnessOn(t, wrap, append([]func(*Config){func(c *Config) {
		c.WebhookSecret = testSecret
		c.WebhookVerifyToken = "verify-me"
	}}, mutate...)...)
	return h, h.srv.HTTPHandler()
}

func post(t testing.TB, hd http.Handler, body []byte, sig string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	rec := httptest.NewRecorder()
	hd.ServeHTTP(rec, req)
	return rec.Code
}

func postSigned(t testing.TB, hd http.Handler, body []byte) int {
	t.Helper()
	return post(t, hd, body, webhook.Sign(body, testSecret))
}

// wireStatus is one statuses[] item of a webhook body.
type wireStatus struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Timestamp string `json:"timestamp"`
	Recipient string `json:"recipient_id"`
	Callback  string `json:"biz_opaque_callback_data,omitempty"`
	Errors    []struct {
		Code  int    `json:"code"`
		Title string `json:"title"`
	} `json:"errors,omitempty"`
	Pricing *struct {
		Category string `json:"category"`
	} `json:"pricing,omitempty"`
}

func newStatus(id, st string, at time.Time, recipient string, code int) wireStatus {
	s := wireStatus{ID: id, Status: st, Timestamp: fmt.Sprint(at.Unix()), Recipient: recipient}
	if code != 0 {
		s.Errors = append(s.Errors, struct {
			Code  int    `json:"code"`
			Title string `json:"title"`
		}{code, "error"})
	}
	s.Pricing = &struct {
		Category string `json:"category"`
	}{"marketing"}
	return s
}

// body builds a webhook POST body from values (each a change's value without
// metadata).
func body(t testing.TB, phoneNumberID string, values ...map[string]any) []byte {
	t.Helper()
	var changes []any
	for _, v := range values {
		v["messaging_product"] = "whatsapp"
		v["metadata"] = map[string]string{"display_phone_number": "15550783881", "phone_number_id": phoneNumberID}
		field := "messages"
		if _, ok := v["user_preferences"]; ok {
			field = "user_preferences"
		}
		changes = append(changes, map[string]any{"field": field, "value": v})
	}
	b, err := json.Marshal(map[string]any{"object": "whatsapp_business_account",
		"entry": []any{map[string]any{"id": "102290129340398", "changes": changes}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func statuses(ss ...wireStatus) map[string]any { return map[string]any{"statuses": ss} }

func TestWebhookVerification(t *testing.T) {
	_, hd := webhookHarness(t)
	for _, tc := range []struct {
		query string
		code  int
	}{
		{"hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444", 200},
		{"hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444", 403},
		{"hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1", 403},
		{"hub.challenge=1", 403},
	} {
		rec := httptest.NewRecorder()
		hd.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, WebhookPath+"?"+tc.query, http.NoBody))
		if rec.Code != tc.code || (tc.code == 200 && rec.Body.String() != "1158201444") {
			t.Errorf("%s: %d %q", tc.query, rec.Code, rec.Body.String())
		}
	}
}

func TestWebhookSignatureFailuresRecordNothing(t *testing.T) {
	h, hd := webhookHarness(t)
	b := body(t, pnid, statuses(newStatus("wamid.1", "failed", t0, "5511987654321", 131050)))
	altered := bytes.Replace(b, []byte("131050"), []byte("131051"), 1)
	for name, code := range map[string]int{
		"missing":      post(t, hd, b, ""),
		"garbage":      post(t, hd, b, "sha256=zz"),
		"wrong secret": post(t, hd, b, webhook.Sign(b, []byte("other"))),
		"altered body": post(t, hd, altered, webhook.Sign(b, testSecret)),
		"no prefix":    post(t, hd, b, strings.TrimPrefix(webhook.Sign(b, testSecret), "sha256=")),
	} {
		if code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	c, err := h.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: pnid, Phone: "+5511987654321"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.GetEvents()) != 0 || c.GetMetaOptedOut() {
		t.Fatalf("an unauthenticated body was recorded: %v", c)
	}
	if code := postSigned(t, hd, b); code != 200 {
		t.Fatalf("signed: %d", code)
	}
	if resp := h.check(t, &sgv1.CheckSendRequest{BusinessId: pnid, Phone: "+5511987654321", Category: sgv1.Category_CATEGORY_MARKETING}); resp.GetVerdict() != deny {
		t.Fatalf("after signed 131050: %v", resp.GetVerdict())
	}
}

// TestWebhookSignatureFailuresLogged: POSTs refused for their signature are
// said in the log (a wrong app secret refuses all of Meta's), in one line at
// most per minute of the clock with the count since the last, so that a
// stranger's flood does not flood the log.
func TestWebhookSignatureFailuresLogged(t *testing.T) {
	var logs syncBuffer
	h, hd := webhookHarness(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	b := body(t, pnid, statuses(newStatus("wamid.1", "delivered", t0, "5511987654321", 0)))
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "webhook POSTs refused for their signature") {
				out = append(out, l)
			}
		}
		return out
	}
	for range 5 {
		post(t, hd, b, webhook.Sign(b, []byte("not the app secret")))
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "refused=1") || !strings.Contains(got[0], "level=WARN") {
		t.Fatalf("after 5 refused POSTs within a minute: %q, want one WARN line for the first", got)
	}
	if code := postSigned(t, hd, b); code != http.StatusOK {
		t.Fatalf("signed: %d", code)
	}
	h.clock.Advance(unsignedLogEvery)
	post(t, hd, b, "")
	if got := lines(); len(got) != 2 || !strings.Contains(got[1], "refused=5") {
		t.Fatalf("a minute later: %q, want a second line counting the 4 unreported and this one", got)
	}
}

func TestWebhookBadBodies(t *testing.T) {
	_, hd := webhookHarness(t, func(c *Config) { c.MaxWebhookBody = 1024 })
	if code := postSigned(t, hd, bytes.Repeat([]byte(" "), 2048)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("big body: %d", code)
	}
	for _, b := range []string{`not json`, `[1,2]`, `{"object":"whatsapp_business_account","entry":[`} {
		if code := postSigned(t, hd, []byte(b)); code != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", b, code)
		}
	}
	// Understood JSON with nothing to apply is 200: Meta disables failing webhooks.
	if code := postSigned(t, hd, []byte(`{"object":"page","entry":[]}`)); code != 200 {
		t.Errorf("other object: %d", code)
	}
}

func TestWebhookNotConfigured(t *testing.T) {
	h := newHarness(t)
	rec := httptest.NewRecorder()
	h.srv.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, WebhookPath, strings.NewReader("{}")))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("%d", rec.Code)
	}
}

// TestWebhookTestdata posts every realistic payload of webhook/testdata and checks
// what each one did to the contact.
func TestWebhookTestdata(t *testing.T) {
	var us string // the file's user, as Meta spells it
	contact := func(h *harness, phone, userID string) *sgv1.Contact {
		c, err := h.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: pnid, Phone: phone, UserId: userID})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := map[string]func(h *harness) string{
		"status_failed_131049.json": func(h *harness) string {
			return check(contact(h, us, "").GetNumber().GetEcosystemStreak() == 1, "ecosystem streak")
		},
		"status_failed_131050.json": func(h *harness) string { return check(contact(h, us, "").GetMetaOptedOut(), "meta opt-out") },
		"status_failed_130472.json": func(h *harness) string {
			return check(contact(h, us, "").GetNumber().GetExperimentAt() != nil, "experiment")
		},
		"status_failed_131026.json": func(h *harness) string {
			return check(contact(h, us, "").GetNumber().GetUndeliverableStreak() == 1, "undeliverable")
		},
		"status_delivered.json": func(h *harness) string {
			return check(contact(h, us, "").GetNumber().GetLastDeliveredAt() != nil, "delivered")
		},
		"status_read.json": func(h *harness) string {
			return check(contact(h, us, "").GetNumber().GetLastDeliveredAt() != nil, "read")
		},
		"status_sent.json":    func(h *harness) string { return check(len(contact(h, us, "").GetSends()) == 1, "send recorded") },
		"message_text.json":   func(h *harness) string { return check(contact(h, us, "").GetLastInboundAt() != nil, "window") },
		"message_button.json": func(h *harness) string { return check(contact(h, us, "").GetLastInboundAt() != nil, "window") },
		"message_image.json":  func(h *harness) string { return check(contact(h, us, "").GetLastInboundAt() != nil, "window") },
		"call_user_initiated.json": func(h *harness) string {
			return check(contact(h, us, "").GetLastInboundAt() != nil, "window from call")
		},
		"call_business_initiated.json": func(h *harness) string {
			return check(contact(h, us, "").GetLastInboundAt() == nil, "no window from a business call")
		},
		"user_preferences_stop.json": func(h *harness) string { return check(contact(h, us, "").GetMetaOptedOut(), "stop") },
		"message_bsuid_username.json": func(h *harness) string {
			return check(contact(h, "", "BR.1502576394655843").GetOptedOut(), "PARAR from a username user")
		},
	}
	for file, verify := range cases {
		t.Run(file, func(t *testing.T) {
			h, hd := webhookHarness(t)
			raw, err := os.ReadFile(filepath.Join("..", "webhook", "testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			evs, _, err := webhook.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			us = "16505551234" // a business-initiated call has no event: the user called
			if len(evs) > 0 {
				us = evs[0].Phone
			}
			if code := postSigned(t, hd, raw); code != 200 {
				t.Fatalf("POST: %d", code)
			}
			if msg := verify(h); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

func check(ok bool, what string) string {
	if ok {
		return ""
	}
	return what + ": not recorded"
}

func TestWebhookDuplicatesAndOrder(t *testing.T) {
	h, hd := webhookHarness(t)
	ctx := context.Background()
	const phone = "5511987654321"
	// The same POST twice changes nothing the second time.
	fail := body(t, pnid, statuses(newStatus("wamid.A", "failed", t0, phone, 131049)))
	for range 2 {
		if code := postSigned(t, hd, fail); code != 200 {
			t.Fatal(code)
		}
	}
	c, _ := h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: pnid, Phone: phone})
	if c.GetNumber().GetEcosystemStreak() != 1 || len(c.GetEvents()) != 1 {
		t.Fatalf("after a duplicated POST: streak %d, %d events", c.GetNumber().GetEcosystemStreak(), len(c.GetEvents()))
	}
	// delivered arrives before sent; read after both; a multi-device failed after
	// delivered: the send is recorded once, and the delivery stands.
	later := t0.Add(48 * time.Hour)
	h.clock.Advance(48 * time.Hour)
	postSigned(t, hd, body(t, pnid, statuses(newStatus("wamid.B", "delivered", later.Add(2*time.Second), phone, 0))))
	postSigned(t, hd, body(t, pnid, statuses(newStatus("wamid.B", "sent", later.Add(time.Second), phone, 0))))
	postSigned(t, hd, body(t, pnid, statuses(newStatus("wamid.B", "read", later.Add(3*time.Second), phone, 0))))
	postSigned(t, hd, body(t, pnid, statuses(newStatus("wamid.B", "failed", later.Add(4*time.Second), phone, 131000))))
	c, _ = h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: pnid, Phone: phone})
	var b []*sgv1.SendRecord
	for _, s := range c.GetSends() {
		if s.GetMessageId() == "wamid.B" {
			b = append(b, s)
		}
	}
	if len(b) != 1 || !b[0].GetAt().AsTime().Equal(later.Add(time.Second)) || b[0].GetFailed() {
		t.Fatalf("wamid.B sends: %v (want one, at the SENT time, counted despite the multi-device failure)", b)
	}
	if !c.GetNumber().GetLastDeliveredAt().AsTime().Equal(later.Add(3 * time.Second)) {
		t.Fatalf("last delivered %v", c.GetNumber().GetLastDeliveredAt().AsTime())
	}
	if c.GetNumber().GetEcosystemStreak() != 0 {
		t.Fatalf("a delivered marketing message did not reset the 131049 streak: %d", c.GetNumber().GetEcosystemStreak())
	}
}

func TestWebhookBatchOf1000(t *testing.T) {
	h, hd := webhookHarness(t)
	var ss []wireStatus
	for i := range 1000 {
		ss = append(ss, newStatus(fmt.Sprint("wamid.", i), "failed", t0, fmt.Sprintf("55119%08d", i), 131049))
	}
	b := body(t, pnid, statuses(ss...))
	if code := postSigned(t, hd, b); code != 200 {
		t.Fatalf("POST: %d", code)
	}
	for _, i := range []int{0, 1, 499, 998, 999} {
		resp := h.check(t, &sgv1.CheckSendRequest{BusinessId: pnid, Phone: fmt.Sprintf("+55119%08d", i), Category: sgv1.Category_CATEGORY_MARKETING})
		if resp.GetVerdict() != deferV || rules(resp)[0] != sgv1.Rule_RULE_ECOSYSTEM_LIMIT {
			t.Fatalf("number %d: %v %v", i, resp.GetVerdict(), rules(resp))
		}
	}
}

func TestWebhookPhoneNumberIDMapping(t *testing.T) {
	fail := func(t *testing.T, hd http.Handler, id string) {
		if code := postSigned(t, hd, body(t, id, statuses(newStatus("wamid."+id, "failed", t0, "5511987654321", 131050)))); code != 200 {
			t.Fatalf("POST: %d", code)
		}
	}
	req := func(b string) *sgv1.CheckSendRequest {
		return &sgv1.CheckSendRequest{BusinessId: b, Phone: "+5511987654321", Category: sgv1.Category_CATEGORY_MARKETING}
	}
	t.Run("mapped", func(t *testing.T) {
		h, hd := webhookHarness(t, func(c *Config) { c.PhoneNumberIDs = map[string]string{pnid: "acme"} })
		fail(t, hd, pnid)
		if resp := h.check(t, req("acme")); resp.GetVerdict() != deny {
			t.Fatalf("mapped business: %v", resp.GetVerdict())
		}
	})
	t.Run("unmapped is its own business", func(t *testing.T) {
		h, hd := webhookHarness(t)
		fail(t, hd, "999")
		if resp := h.check(t, req("999")); resp.GetVerdict() != deny {
			t.Fatalf("unmapped id as business: %v", resp.GetVerdict())
		}
	})
	t.Run("unmapped skipped", func(t *testing.T) {
		h, hd := webhookHarness(t, func(c *Config) { c.SkipUnmappedPhoneNumberIDs = true })
		fail(t, hd, "999")
		if resp := h.check(t, req("999")); resp.GetVerdict() != allow {
			t.Fatalf("skipped id applied: %v", resp.GetVerdict())
		}
		if got := testCounter(t, h, "sendguard_webhook_skipped_total", "unmapped_phone_number_id"); got != 1 {
			t.Fatalf("skips counted: %v", got)
		}
	})
}

// TestWebhookEqualsReportResult: a webhook status changes the verdict exactly as
// the equivalent ReportResult does.
func TestWebhookEqualsReportResult(t *testing.T) {
	for _, code := range []int{131049, 131050, 130472, 131026, 131056} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			hw, hd := webhookHarness(t)
			hr := newHarness(t)
			at := t0
			if c := postSigned(t, hd, body(t, pnid, statuses(newStatus("wamid.X", "failed", at, "5511987654321", code)))); c != 200 {
				t.Fatal(c)
			}
			hr.report(t, &sgv1.ReportResultRequest{BusinessId: pnid, Phone: "5511987654321", MessageId: "wamid.X",
				Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: int32(code), ErrorTitle: "error",
				Category: sgv1.Category_CATEGORY_MARKETING, Timestamp: timestamppb.New(at), Sender: pnid})
			req := &sgv1.CheckSendRequest{BusinessId: pnid, Phone: "+5511987654321", Category: sgv1.Category_CATEGORY_MARKETING}
			a, b := hw.check(t, req), hr.check(t, req)
			if !proto.Equal(a, b) || a.GetVerdict() == allow {
				t.Fatalf("webhook %v\nreport  %v", a, b)
			}
		})
	}
}

func testCounter(t testing.TB, h *harness, name, label string) float64 {
	t.Helper()
	mfs, err := h.srv.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
