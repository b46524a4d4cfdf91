package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sgserver "github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/webhook"
)

// The webhook runs: what strangers on the internet can make the server hold
// through POST /webhooks/whatsapp, which Meta needs public. Each part has its own
// server with the defaults (webhook_body_budget 32 MiB, max_webhook_body 8 MiB,
// webhook_read_timeout 10 s, http_max_connections 1,024).

const (
	whSecret       = "chaos-app-secret"
	whBudget       = 32 << 20 // webhook_body_budget's default
	whReadTimeout  = 10 * time.Second
	whFloodBodies  = 100     // unsigned 8 MB bodies sent at full speed, and as many stalled ones
	whFullBody     = 8 << 20 // max_webhook_body's default
	whStalledBytes = whFullBody - 10<<10
)

// whStart starts the binary with the webhook on.
func whStart(t *testing.T) *server {
	t.Helper()
	return start(t, t.TempDir(), []string{"SENDGUARD_WHATSAPP_APP_SECRET=" + whSecret})
}

// webhookURL is the server's webhook endpoint.
func (s *server) webhookURL() string { return "http://" + s.http + sgserver.WebhookPath }

// TestWebhookUnsignedFlood: 100 unsigned 8 MB POSTs at full speed and 100 that
// send 7.99 MB and stall, all at once, hold at most the body budget (plus the
// connections' own buffers); meanwhile a signed POST is answered 200 or 503,
// never left hanging, and /healthz answers.
func TestWebhookUnsignedFlood(t *testing.T) {
	s := whStart(t)
	whWarmUp(t, s)
	idle := s.rss()
	peak := s.peakRSS()
	start := time.Now()

	full := bytes.Repeat([]byte("x"), whFullBody)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: whFloodBodies}, Timeout: 60 * time.Second}
	var (
		mu       sync.Mutex
		outcomes = map[string]int{}
		wg       sync.WaitGroup
	)
	count := func(what string) {
		mu.Lock()
		outcomes[what]++
		mu.Unlock()
	}
	for range whFloodBodies {
		wg.Add(2)
		go func() { // 8 MB, unsigned, as fast as the server reads
			defer wg.Done()
			resp, err := client.Post(s.webhookURL(), "application/json", bytes.NewReader(full))
			if err != nil {
				count("sent: connection closed")
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			count("sent: " + strconv.Itoa(resp.StatusCode))
		}()
		go func() { // 7.99 MB of a declared 8 MB, then nothing
			defer wg.Done()
			count("stalled: " + whStall(s.http, full[:whStalledBytes]))
		}()
	}

	// Meanwhile: signed POSTs and health checks.
	whWaitBudgetInUse(t, s)
	signed := whSignedBody(t)
	var legit []string
	var slowest, slowestHealth time.Duration
	for range 10 {
		code, took := whPost(t, s, signed)
		legit = append(legit, strconv.Itoa(code))
		slowest = max(slowest, took)
		if code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Errorf("a signed POST during the flood got %d, want 200 or 503", code)
		}
		t0 := time.Now()
		if code, _ := s.get(t, "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz during the flood: %d", code)
		}
		slowestHealth = max(slowestHealth, time.Since(t0))
	}
	goroutines := whMetric(t, s, "go_goroutines")
	wg.Wait()
	flood := time.Since(start)
	p := peak()
	s.alive(t)

	keys := make([]string, 0, len(outcomes))
	for k := range outcomes {
		keys = append(keys, fmt.Sprintf("%s ×%d", k, outcomes[k]))
	}
	sort.Strings(keys)
	t.Logf("flood outcomes: %s; signed POSTs meanwhile: %s", strings.Join(keys, ", "), strings.Join(legit, " "))
	bound := idle + whBudget + 150<<20
	figure(t, "webhook unsigned flood peak RSS", fmt.Sprintf("%s (idle %s, +%s; %d goroutines mid-flood; flood over in %s)",
		mib(p), mib(idle), mib(p-idle), int(goroutines), flood.Round(100*time.Millisecond)), "idle + budget 32 MiB + 150 MiB = "+mib(bound))
	figure(t, "webhook signed POST during the flood, slowest", slowest.Round(time.Millisecond).String(), "answered 200 or 503 within the read timeout, 10s")
	figure(t, "healthz during the flood, slowest", slowestHealth.Round(time.Millisecond).String(), "2s")
	if p > bound {
		t.Errorf("peak RSS %s over the bound %s", mib(p), mib(bound))
	}
	if slowest > whReadTimeout {
		t.Errorf("a signed POST took %s, past the read timeout", slowest)
	}
	if slowestHealth > 2*time.Second {
		t.Errorf("/healthz took %s", slowestHealth)
	}
	// The budget is whole again once the flood is answered.
	if code, _ := whPost(t, s, signed); code != http.StatusOK {
		t.Errorf("a signed POST after the flood: %d", code)
	}
	if held := whMetric(t, s, "sendguard_webhook_body_bytes"); held != 0 {
		t.Errorf("%v body bytes still held after the flood", held)
	}
	s.stop(t)
}

// TestWebhookTinyItems: one signed body of 2.79 M empty items (as many as 8 MiB
// holds) is decoded only as far as the event cap.
func TestWebhookTinyItems(t *testing.T) {
	s := whStart(t)
	whWarmUp(t, s)
	const n = 2_790_000
	var b bytes.Buffer
	b.WriteString(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"statuses":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("{}")
	}
	b.WriteString(`]}}]}]}`)
	if b.Len() > whFullBody {
		t.Fatalf("the body is %d bytes, over max_webhook_body", b.Len())
	}
	idle := s.rss()
	peak := s.peakRSS()
	code, took := whPost(t, s, b.Bytes())
	p := peak()
	s.alive(t)
	if code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	skipped := whMetric(t, s, `sendguard_webhook_skipped_total{reason="too_many_events"}`)
	bound := idle + 128<<20
	figure(t, "webhook signed body of 2.79 M empty items, peak RSS", fmt.Sprintf("%s (idle %s, +%s; answered in %s; %d items skipped unread)",
		mib(p), mib(idle), mib(p-idle), took.Round(time.Millisecond), int(skipped)), "idle + 128 MiB = "+mib(bound))
	if p > bound {
		t.Errorf("peak RSS %s over the bound %s", mib(p), mib(bound))
	}
	if skipped != n-webhook.MaxEvents {
		t.Errorf("too_many_events = %v, want %d", skipped, n-webhook.MaxEvents)
	}
	s.stop(t)
}

// TestWebhookLabelSeries: 2,000 signed bodies, each with change fields, statuses,
// call events and preference values no one has used before, add a handful of
// metric series, not thousands.
func TestWebhookLabelSeries(t *testing.T) {
	s := whStart(t)
	before := whSeries(t, s)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				b := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"f%[1]d","value":{}},`+
					`{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"statuses":[{"id":"w%[1]d","status":"s%[1]d","recipient_id":"1"}],`+
					`"calls":[{"id":"c","from":"1","event":"e%[1]d","direction":"d%[1]d"}],"user_preferences":[{"wa_id":"1","value":"v%[1]d"}]}}]}]}`, i)
				if code, _ := whPost(t, s, []byte(b)); code != http.StatusOK {
					t.Errorf("body %d: %d", i, code)
				}
			}
		}()
	}
	deadline := time.After(60 * time.Second)
feed:
	for i := range 2000 {
		select {
		case jobs <- i:
		case <-deadline:
			t.Errorf("2,000 bodies not sent within 60s (stopped at %d)", i)
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	after := whSeries(t, s)
	reasons := whLabels(t, s, "sendguard_webhook_skipped_total", "reason")
	figure(t, "webhook label values after 2,000 bodies of unique names", fmt.Sprintf("%d reasons %v; %d series in all (%d before)",
		len(reasons), reasons, after, before), "10 reasons")
	if len(reasons) > 10 {
		t.Errorf("%d distinct reasons", len(reasons))
	}
	s.stop(t)
}

// whWarmUp sends one signed POST, so that idle RSS includes what serving one takes.
func whWarmUp(t *testing.T, s *server) {
	t.Helper()
	if code, _ := whPost(t, s, whSignedBody(t)); code != http.StatusOK {
		t.Fatalf("warm-up POST: %d", code)
	}
}

// whSignedBody is a realistic webhook body: one delivered status.
func whSignedBody(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "webhook", "testdata", "status_delivered.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// whPost POSTs body signed with the app secret, and says how long the answer
// took. The client gives up after the read timeout and 5 s more (then code 0).
func whPost(t *testing.T, s *server, body []byte) (int, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), whReadTimeout+5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.webhookURL(), bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(body, []byte(whSecret)))
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	took := time.Since(start)
	if err != nil {
		t.Errorf("signed POST: %v after %s", err, took)
		return 0, took
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, took
}

// whStall declares a full body, sends part and then nothing, and reports how the
// server answered ("408", "503", …, or "closed").
func whStall(addr string, part []byte) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "dial failed"
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(whReadTimeout + 20*time.Second))
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", sgserver.WebhookPath, whFullBody)
	_, _ = c.Write(part) // fails once the server answers early and closes
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "closed"
	}
	resp.Body.Close()
	return strconv.Itoa(resp.StatusCode)
}

// whWaitBudgetInUse waits (at most 10 s) until the flood holds most of the budget.
func whWaitBudgetInUse(t *testing.T, s *server) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if whMetric(t, s, "sendguard_webhook_body_bytes") >= whBudget*3/4 {
			return
		}
	}
	t.Logf("the flood never held 3/4 of the budget")
}

// whScrape returns the server's /metrics text.
func whScrape(t *testing.T, s *server) string {
	t.Helper()
	code, text := s.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	return text
}

// whMetric returns the value of the series named exactly sel ("name" or
// `name{label="v"}`), 0 when absent.
func whMetric(t *testing.T, s *server, sel string) float64 {
	t.Helper()
	for _, line := range strings.Split(whScrape(t, s), "\n") {
		if v, ok := strings.CutPrefix(line, sel+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// whSeries counts the series /metrics shows.
func whSeries(t *testing.T, s *server) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(whScrape(t, s), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}

// whLabels returns the values a label takes in a metric's series.
func whLabels(t *testing.T, s *server, name, label string) []string {
	t.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\{.*\b` + regexp.QuoteMeta(label) + `="([^"]*)"`)
	var vals []string
	for _, line := range strings.Split(whScrape(t, s), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			vals = append(vals, m[1])
		}
	}
	return vals
}
