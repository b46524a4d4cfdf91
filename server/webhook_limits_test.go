package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/webhook"
)

// waitFor polls cond until it holds, failing after 10 s: it waits for another
// goroutine to reach a state, it measures nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWebhookBodyBudget: bodies being read hold the budget; a POST that finds it
// spent gets 503 with Retry-After, without its body being read; once the held
// bodies are answered the budget is whole again.
func TestWebhookBodyBudget(t *testing.T) {
	h, hd := webhookHarness(t, func(c *Config) {
		c.MaxWebhookBody = 2 * bodyChunk
		c.WebhookBodyBudget = 2 * bodyChunk
	})
	budget := h.srv.webhook.bodies
	good := body(t, pnid, statuses(newStatus("wamid.1", "delivered", t0, "5511987654321", 0)))

	// A stranger sends more than a chunk, unsigned, and stalls.
	pr, pw := io.Pipe()
	stalled := make(chan int)
	go func() {
		req := httptest.NewRequest(http.MethodPost, WebhookPath, pr)
		rec := httptest.NewRecorder()
		hd.ServeHTTP(rec, req)
		stalled <- rec.Code
	}()
	if _, err := pw.Write(bytes.Repeat([]byte(" "), bodyChunk+1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stalled body to hold the budget", func() bool { return budget.used.Load() == 2*bodyChunk })
	if got := metricTotal(t, h, "sendguard_webhook_body_bytes"); got != 2*bodyChunk {
		t.Fatalf("sendguard_webhook_body_bytes = %v while a body holds the budget", got)
	}

	req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(good))
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(good, testSecret))
	rec := httptest.NewRecorder()
	hd.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("with the budget spent: %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}

	pw.Close() // the stranger's body ends: unsigned
	if code := <-stalled; code != http.StatusUnauthorized {
		t.Fatalf("stalled body: %d, want 401", code)
	}
	if used := budget.used.Load(); used != 0 {
		t.Fatalf("after the stalled body was answered the budget holds %d bytes", used)
	}
	if code := postSigned(t, hd, good); code != http.StatusOK {
		t.Fatalf("with the budget free again: %d", code)
	}
	if got := testCounter(t, h, "sendguard_webhook_requests_total", "503"); got != 1 {
		t.Fatalf("503s counted: %v", got)
	}
}

// TestWebhookBodyBudgetReleasedOnEveryAnswer: whatever the answer, the charge
// comes back, and bodies of one or several chunks read the same.
func TestWebhookBodyBudgetReleasedOnEveryAnswer(t *testing.T) {
	h, hd := webhookHarness(t, func(c *Config) { c.MaxWebhookBody = 4 * bodyChunk })
	var ss []wireStatus
	for i := range 700 { // about 92 KB: three chunks
		ss = append(ss, newStatus(fmt.Sprint("wamid.", i), "delivered", t0, fmt.Sprintf("55119%08d", i), 0))
	}
	big := body(t, pnid, statuses(ss...))
	if len(big) <= 2*bodyChunk || len(big) > 4*bodyChunk {
		t.Fatalf("the big body is %d bytes", len(big))
	}
	chunked := func(b []byte, sig string) int { // no Content-Length: read as it comes
		req := httptest.NewRequest(http.MethodPost, WebhookPath, io.MultiReader(bytes.NewReader(b)))
		req.ContentLength = -1
		req.Header.Set("X-Hub-Signature-256", sig)
		rec := httptest.NewRecorder()
		hd.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, tc := range []struct {
		name string
		code int
		want int
	}{
		{"small, signed", postSigned(t, hd, body(t, pnid, statuses(newStatus("wamid.s", "sent", t0, "5511987654321", 0)))), 200},
		{"several chunks, signed", postSigned(t, hd, big), 200},
		{"several chunks, chunked, signed", chunked(big, webhook.Sign(big, testSecret)), 200},
		{"several chunks, unsigned", post(t, hd, big, ""), 401},
		{"exactly one chunk, unsigned", post(t, hd, bytes.Repeat([]byte(" "), bodyChunk), "sha256=00"), 401},
		{"over the limit", postSigned(t, hd, bytes.Repeat([]byte(" "), 4*bodyChunk+1)), 413},
		{"over the limit, chunked", chunked(bytes.Repeat([]byte(" "), 4*bodyChunk+1), ""), 413},
		{"not JSON", postSigned(t, hd, []byte("nope")), 400},
	} {
		if tc.code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, tc.code, tc.want)
		}
		if used := h.srv.webhook.bodies.used.Load(); used != 0 {
			t.Fatalf("%s: the budget still holds %d bytes", tc.name, used)
		}
	}
	resp := h.check(t, &sgv1.CheckSendRequest{BusinessId: pnid, Phone: "+5511900000699", Category: sgv1.Category_CATEGORY_UTILITY})
	if resp.GetPhoneE164() != "+5511900000699" {
		t.Fatalf("the last status of the big body was not applied: %v", resp)
	}
}

// serveHTTP serves the server's HTTP endpoints on a loopback port the way New
// does (the same http.Server settings and connection cap) until the test ends.
func serveHTTP(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.newHTTPServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(s.limitHTTPListener(l))
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-done
	})
	return l.Addr().String()
}

// rawConn opens a TCP connection to addr that the test closes at its end.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestWebhookReadTimeout: a POST that stops sending its body is answered 408 at
// the read timeout, and its chunk goes back to the budget.
func TestWebhookReadTimeout(t *testing.T) {
	h, _ := webhookHarness(t, func(c *Config) { c.WebhookReadTimeout = 200 * time.Millisecond })
	c := rawConn(t, serveHTTP(t, h.srv))
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nX-Hub-Signature-256: sha256=00\r\n\r\n{\"object\":", WebhookPath)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a safety net, not a measure
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %d, want 408", resp.StatusCode)
	}
	waitFor(t, "the budget to be whole", func() bool { return h.srv.webhook.bodies.used.Load() == 0 })
}

// TestHTTPConnectionCap: past HTTPMaxConnections a new connection is not served
// until one closes.
func TestHTTPConnectionCap(t *testing.T) {
	h, _ := webhookHarness(t, func(c *Config) { c.HTTPMaxConnections = 1 })
	addr := serveHTTP(t, h.srv)
	holder := rawConn(t, addr)
	fmt.Fprintf(holder, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // headers never finished
	waiter := rawConn(t, addr)
	fmt.Fprintf(waiter, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = waiter.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := waiter.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection past the cap was served while the first was held")
	}
	holder.Close()
	_ = waiter.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(waiter), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after the first connection closed: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestWebhookRestampsFutureEvents: an event dated more than MaxEventSkew after
// the server's clock is applied at the time it was received, and counted; one
// within the skew keeps its time.
func TestWebhookRestampsFutureEvents(t *testing.T) {
	h, hd := webhookHarness(t)
	const far, near = "5511987650001", "5511987650002"
	b := body(t, pnid, statuses(
		newStatus("wamid.far", "delivered", t0.Add(DefaultMaxEventSkew+time.Second), far, 0),
		newStatus("wamid.near", "delivered", t0.Add(DefaultMaxEventSkew), near, 0),
	))
	if code := postSigned(t, hd, b); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	for phone, want := range map[string]time.Time{far: t0, near: t0.Add(DefaultMaxEventSkew)} {
		c, err := h.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: pnid, Phone: "+" + phone})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.GetNumber().GetLastDeliveredAt().AsTime(); !got.Equal(want) {
			t.Errorf("%s delivered at %v, want %v", phone, got, want)
		}
	}
	if got := metricTotal(t, h, "sendguard_webhook_events_restamped_total"); got != 1 {
		t.Fatalf("restamped: %v, want 1", got)
	}
}

// TestWebhookSkipLabelsAreClosed: 2,000 signed bodies full of names no one
// documents add a handful of series, not thousands.
func TestWebhookSkipLabelsAreClosed(t *testing.T) {
	h, hd := webhookHarness(t)
	for i := range 2000 {
		b := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"f%[1]d","value":{}},`+
			`{"field":"messages","value":{"metadata":{"phone_number_id":"%[2]s"},"statuses":[{"id":"w%[1]d","status":"s%[1]d","recipient_id":"1"}],`+
			`"calls":[{"id":"c","from":"1","event":"e%[1]d","direction":"d%[1]d"}],"user_preferences":[{"wa_id":"1","value":"v%[1]d"}]}},`+
			`{"field":"user_preferences","value":{"metadata":{"phone_number_id":"%[2]s"},"user_preferences":[{"wa_id":"1650","value":"stop","category":"c%[1]d"}]}}]}]}`, i, pnid)
		if code := postSigned(t, hd, []byte(b)); code != http.StatusOK {
			t.Fatalf("body %d: %d", i, code)
		}
	}
	labels := labelValues(t, h, "sendguard_webhook_skipped_total", "reason")
	if len(labels) > 8 {
		t.Fatalf("%d reasons: %v", len(labels), labels)
	}
	for _, l := range labels {
		if strings.ContainsAny(l, "0123456789") {
			t.Errorf("reason %q holds text from a body", l)
		}
	}
	t.Logf("reasons after 2,000 bodies: %v", labels)
}

// labelValues returns the values label takes in the series of metric name.
func labelValues(t testing.TB, h *harness, name, label string) []string {
	t.Helper()
	mfs, err := h.srv.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					vals = append(vals, l.GetValue())
				}
			}
		}
	}
	return vals
}

// metricTotal returns the sum of the series of a counter or gauge.
func metricTotal(t testing.TB, h *harness, name string) float64 {
	t.Helper()
	mfs, err := h.srv.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// TestWebhookLimitsConfig: the limits come from the config file, have defaults,
// and a budget that could never hold the largest body is refused.
func TestWebhookLimitsConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sendguard.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("max_webhook_body: 1048576\nwebhook_body_budget: 4194304\nwebhook_read_timeout: 3s\nhttp_max_connections: 64\n")
	cfg := DefaultConfig()
	if err := LoadConfigFile(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.withDefaultsChecked(); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxWebhookBody != 1<<20 || cfg.WebhookBodyBudget != 4<<20 || cfg.WebhookReadTimeout != 3*time.Second || cfg.HTTPMaxConnections != 64 {
		t.Fatalf("loaded %d %d %v %d", cfg.MaxWebhookBody, cfg.WebhookBodyBudget, cfg.WebhookReadTimeout, cfg.HTTPMaxConnections)
	}
	def := DefaultConfig()
	if err := def.withDefaultsChecked(); err != nil {
		t.Fatal(err)
	}
	if def.WebhookBodyBudget != DefaultWebhookBodyBudget || def.WebhookReadTimeout != DefaultWebhookReadTimeout ||
		def.HTTPMaxConnections != DefaultHTTPMaxConnections {
		t.Fatalf("defaults %d %v %d", def.WebhookBodyBudget, def.WebhookReadTimeout, def.HTTPMaxConnections)
	}
	big := DefaultConfig()
	big.MaxWebhookBody = 64 << 20
	if err := big.withDefaultsChecked(); err != nil || big.WebhookBodyBudget != 64<<20 {
		t.Fatalf("a body limit over the default budget raises the default budget: %v, %d", err, big.WebhookBodyBudget)
	}
	small := DefaultConfig()
	small.WebhookBodyBudget = 1 << 20
	if err := small.withDefaultsChecked(); err == nil || !strings.Contains(err.Error(), "webhook_body_budget") {
		t.Fatalf("a budget under max_webhook_body: %v", err)
	}
	write("webhook_read_timeout: soon\n")
	if err := LoadConfigFile(path, &cfg); err == nil {
		t.Fatal("webhook_read_timeout: soon accepted")
	}
}
