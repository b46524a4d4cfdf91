package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sendguard/sendguard/webhook"
)

// TestWebhookEventsHeader: a 200 says what its events did, so that a replay can
// tell new events from repeats: the same POST again is all duplicates, and what
// was skipped (an unknown status, a body of another object) is counted apart.
func TestWebhookEventsHeader(t *testing.T) {
	_, hd := webhookHarness(t)
	const phone = "5511987654321"
	two := body(t, pnid, statuses(
		newStatus("wamid.A", "failed", t0, phone, 131049),
		newStatus("wamid.B", "delivered", t0, phone, 0),
		newStatus("wamid.C", "made_up", t0, phone, 0),
	))
	for _, tc := range []struct {
		body []byte
		want string
	}{
		{two, "applied=2 duplicate=0 skipped=1"},
		{two, "applied=0 duplicate=2 skipped=1"},
		{[]byte(`{}`), "applied=0 duplicate=0 skipped=1"},
	} {
		req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(tc.body))
		req.Header.Set("X-Hub-Signature-256", webhook.Sign(tc.body, testSecret))
		rec := httptest.NewRecorder()
		hd.ServeHTTP(rec, req)
		if got := rec.Header().Get(WebhookEventsHeader); rec.Code != 200 || got != tc.want {
			t.Errorf("%.60s: %d %s: %q, want %q", tc.body, rec.Code, WebhookEventsHeader, got, tc.want)
		}
	}
}

// TestWebhookOtherObjects: what README's webhook section says `{}` and other
// non-WhatsApp objects get: 200 (Meta disables a webhook that keeps failing),
// nothing applied, and each counted as skipped (unknown_object), in the metric
// and in the Sendguard-Events header.
func TestWebhookOtherObjects(t *testing.T) {
	h, hd := webhookHarness(t)
	bodies := []string{
		`{}`,
		`{"object":"page","entry":[{"id":"1","changes":[{"field":"messages","value":{"statuses":[{"id":"x","status":"sent","recipient_id":"5511987654321"}]}}]}]}`,
		`{"object":"instagram","entry":[]}`,
	}
	for _, b := range bodies {
		req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader([]byte(b)))
		req.Header.Set("X-Hub-Signature-256", webhook.Sign([]byte(b), testSecret))
		rec := httptest.NewRecorder()
		hd.ServeHTTP(rec, req)
		if got := rec.Header().Get(WebhookEventsHeader); rec.Code != http.StatusOK || got != "applied=0 duplicate=0 skipped=1" {
			t.Errorf("%.40s: %d %q, want 200 applied=0 duplicate=0 skipped=1", b, rec.Code, got)
		}
	}
	if n := testCounter(t, h, "sendguard_webhook_skipped_total", "unknown_object"); n != float64(len(bodies)) {
		t.Errorf("sendguard_webhook_skipped_total{reason=unknown_object} = %v, want %d", n, len(bodies))
	}
}
