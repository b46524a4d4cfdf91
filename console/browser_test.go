package console_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/sendguard/sendguard/console"
	"github.com/sendguard/sendguard/internal/loadgen"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/webhook"
)

// The browser tests drive the console in Debian's headless Chromium against the
// real binary. They run with SENDGUARD_BROWSER=1 (make test-browser, CI's
// test-browser suite), never download a browser, and skip otherwise, so that
// make test needs no Chromium. SENDGUARD_CONSOLE_SCREENSHOTS=DIR writes a
// screenshot of each page there (make console-screenshots: docs/console).

const (
	chromium     = "/usr/bin/chromium"
	business     = "acme"
	pnid         = "106540352242922"
	appSecret    = "browser-test-app-secret"
	adminKey     = "browser-test-admin-key-0123456789abcdef"
	supportKey   = "browser-test-support-key-0123456789abcdef"
	limitedNum   = "5511987650101" // gets a 131049
	optOutNum    = "5511987650102" // opted out from the page
	freeEntryNum = "5511987650103" // writes from an ad, answered: a free entry point
)

// sendguard is the binary under test and where it listens.
type sendguard struct {
	bin              string
	grpc, http, api  string
	stderr           *bytes.Buffer
	stderrMu         *sync.Mutex
	cmd              *exec.Cmd
	consoleURL, base string
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// TestMain removes the binary that buildBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinary builds the sendguard binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "sendguard-console-"); binErr != nil {
			return
		}
		build := exec.Command("go", "build", "-o", filepath.Join(binDir, "sendguard"), "./cmd/sendguard")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("build: %v", binErr)
	}
	return filepath.Join(binDir, "sendguard")
}

var servingLine = regexp.MustCompile(`sendguard serving"? grpc=(\S+) http=(\S+) api=(\S*)`)

// startSendguard builds the binary and serves it on loopback ports the kernel
// picks, keyed with two API keys (an admin one for every business, a support
// one for acme without admin scope) or without keys.
func startSendguard(t *testing.T, keyed bool, dataDir string) *sendguard {
	t.Helper()
	dir := t.TempDir()
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	bin := buildBinary(t)
	cfg := fmt.Sprintf(`phone_number_ids:
  %q: %s
whatsapp_app_secret: %s
`, pnid, business, appSecret)
	if keyed {
		cfg += fmt.Sprintf(`api_keys:
  - name: admin
    sha256: %s
    businesses: ["*"]
    admin: true
  - name: support
    sha256: %s
    businesses: [%s]
`, server.HashAPIKey(adminKey), server.HashAPIKey(supportKey), business)
	}
	cfgPath := filepath.Join(dir, "sendguard.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath, "--data", dataDir,
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s := &sendguard{bin: bin, cmd: cmd, stderr: &bytes.Buffer{}, stderrMu: &sync.Mutex{}}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.stderrMu.Lock()
			s.stderr.WriteString(sc.Text() + "\n")
			s.stderrMu.Unlock()
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m:
				default:
				}
			}
		}
	}()
	select {
	case m := <-found:
		s.grpc, s.http, s.api = m[1], m[2], m[3]
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start within 30s")
	}
	s.base = "http://" + s.api
	s.consoleURL = s.base + console.Path
	return s
}

// webhookFailed POSTs Meta's status webhook: a marketing template sent by pnid
// to recipient failed with code at at.
func (s *sendguard) webhookFailed(t *testing.T, wamid, recipient string, code int, at time.Time) {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{`+
		`"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":%q},`+
		`"statuses":[{"id":%q,"status":"failed","timestamp":"%d","recipient_id":%q,`+
		`"errors":[{"code":%d,"title":"failed"}],"pricing":{"category":"marketing"}}]}}]}]}`,
		pnid, wamid, at.Unix(), recipient, code))
	s.postWebhook(t, body)
}

// webhookAdReply POSTs what Meta sends when a user writes from a
// click-to-WhatsApp ad (a message with a referral: a free entry point) at at,
// and then the status of the business's first answer, sent at answered.
func (s *sendguard) webhookAdReply(t *testing.T, recipient string, at, answered time.Time) {
	t.Helper()
	meta := fmt.Sprintf(`"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":%q}`, pnid)
	s.postWebhook(t, []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{`+meta+`,`+
		`"contacts":[{"profile":{"name":"Ana"},"wa_id":%q}],`+
		`"messages":[{"from":%q,"id":"wamid.AD1","timestamp":"%d","type":"text","text":{"body":"Is the offer still on?"},`+
		`"referral":{"source_url":"https://fb.me/ad","source_id":"120210","source_type":"ad","headline":"Sale","ctwa_clid":"ARAkLk"}}]}}]}]}`,
		recipient, recipient, at.Unix())))
	s.postWebhook(t, []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{`+meta+`,`+
		`"statuses":[{"id":"wamid.AD2","status":"sent","timestamp":"%d","recipient_id":%q,"pricing":{"category":"service"}}]}}]}]}`,
		answered.Unix(), recipient)))
}

// postWebhook POSTs a signed webhook body and wants 200.
func (s *sendguard) postWebhook(t *testing.T, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.http+"/webhooks/whatsapp", bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(body, []byte(appSecret)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook: %s", resp.Status)
	}
}

// page is one browser tab and what it saw.
type page struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string // console errors, exceptions, CSP violations
	foreign  []string // requests to another origin
	bytes    float64  // bytes transferred
	download chan string
}

func newPage(t *testing.T, origin, downloads string) *page {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("SENDGUARD_BROWSER=1 but %s is missing: apt-get install chromium (tests never download a browser)", chromium)
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	)
	t.Cleanup(cancel)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(cancelCtx)
	p := &page{t: t, ctx: ctx, download: make(chan string, 1)}
	// The first call starts the browser: it must not carry a timeout.
	if err := chromedp.Listen(ctx, p.listen(origin)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.ListenBrowser(ctx, p.listen(origin)); err != nil {
		t.Fatal(err)
	}
	events := true
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: &events,
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// listen records what the page shows of itself: errors, requests to other
// origins, bytes transferred, downloads.
func (p *page) listen(origin string) func(ev any) {
	return func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			p.problems = append(p.problems, fmt.Sprintf("exception: %s %s", e.ExceptionDetails.Text, describe(e.ExceptionDetails.Exception)))
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range e.Args {
					args = append(args, describe(a))
				}
				p.problems = append(p.problems, fmt.Sprintf("console.%s: %s", e.Type, strings.Join(args, " ")))
			}
		case *cdplog.EventEntryAdded:
			// Network errors are the 401 and 403 answers the tests ask for;
			// everything else (CSP violations: source "security") is a problem.
			if e.Entry.Level == cdplog.EntryLevelError && e.Entry.Source != cdplog.EntrySourceNetwork {
				p.problems = append(p.problems, fmt.Sprintf("log %s: %s", e.Entry.Source, e.Entry.Text))
			}
		case *network.EventRequestWillBeSent:
			u := e.Request.URL
			if !strings.HasPrefix(u, origin+"/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") {
				p.foreign = append(p.foreign, u)
			}
		case *network.EventLoadingFinished:
			p.bytes += e.EncodedDataLength
		case *browser.EventDownloadProgress:
			if e.State == browser.DownloadProgressStateCompleted {
				select {
				case p.download <- e.GUID:
				default:
				}
			}
		}
	}
}

func describe(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if o.Description != "" {
		return o.Description
	}
	return string(o.Value)
}

// do runs actions with a bound on their time.
func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("browser: %v", err)
	}
}

// value runs one action that returns a value.
func value[T any](p *page, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("browser: %v", err)
	}
	return v
}

func (p *page) text(sel string) string {
	p.t.Helper()
	p.do(chromedp.WaitVisible(chromedp.CSS(sel)))
	return value(p, chromedp.Text(chromedp.CSS(sel)))
}

// waitText waits until sel's text contains want, and returns it. The page may
// replace the element meanwhile (an answer arriving): a read that misses it
// is tried again.
func (p *page) waitText(sel, want string) string {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel)))
		var s string
		if err == nil {
			s, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		}
		cancel()
		if err == nil && strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: want %q in %q (%v)", sel, want, s, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the page, not timing the server
	}
}

func (p *page) attr(sel, name string) string {
	p.t.Helper()
	return value(p, chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}

// find looks a number up on the Find page and waits for its answer (the
// contact shown before is cleared first, so that nothing of it is taken for
// the answer).
func (p *page) find(who string) {
	p.t.Helper()
	value(p, chromedp.Evaluate[bool](`document.getElementById('contact').replaceChildren() === undefined`))
	p.do(chromedp.WaitVisible(chromedp.CSS("#find-who")), chromedp.SetValue(chromedp.CSS("#find-who"), who),
		chromedp.Click(chromedp.CSS("#find-form button")), chromedp.WaitVisible(chromedp.CSS("#decisions")))
}

// show opens one of the console's pages (a change of the URL's fragment).
func (p *page) show(name string) {
	p.t.Helper()
	value(p, chromedp.Evaluate[string](`location.hash = '#`+name+`'`))
}

// shot writes a screenshot of the page when SENDGUARD_CONSOLE_SCREENSHOTS names a directory.
func (p *page) shot(name string) {
	p.t.Helper()
	dir := os.Getenv("SENDGUARD_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := value(p, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) checkClean() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.problems {
		p.t.Errorf("in the page: %s", pr)
	}
	for _, u := range p.foreign {
		p.t.Errorf("a request to another origin: %s", u)
	}
}

// TestConsoleInBrowser walks the console as an operator would: sign in, find
// a number after a 131049 webhook, opt it out, change a policy field, judge an
// audience and compare it with `sendguard validate`, the live page, and a key
// without admin scope.
func TestConsoleInBrowser(t *testing.T) {
	if os.Getenv("SENDGUARD_BROWSER") != "1" {
		t.Skip("set SENDGUARD_BROWSER=1 (make test-browser) to run the console in headless Chromium")
	}
	s := startSendguard(t, true, "")
	downloads := t.TempDir()

	// The headers, as a client sees them: CSP on the page, and the Host check.
	resp, err := http.Get(s.consoleURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != console.CSP {
		t.Fatalf("GET %s: %s, CSP %q", s.consoleURL, resp.Status, resp.Header.Get("Content-Security-Policy"))
	}
	req, _ := http.NewRequest(http.MethodGet, s.consoleURL, http.NoBody)
	req.Host = "rebound.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("Host rebound.example: %v %v", resp, err)
	}

	p := newPage(t, s.base, downloads)
	start := time.Now()
	p.do(chromedp.Navigate(s.consoleURL), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="keys"] #signin-form`)))
	p.mu.Lock()
	weight := p.bytes
	p.mu.Unlock()
	t.Logf("FIGURE console first load: %.0f bytes transferred (%s to the sign-in form)", weight, time.Since(start).Round(time.Millisecond))
	p.shot("sign-in")

	t.Run("sign in", func(t *testing.T) {
		p.t = t
		p.do(chromedp.SetValue(chromedp.CSS("#signin-key"), "not-a-key"), chromedp.SetValue(chromedp.CSS("#signin-business"), business),
			chromedp.Click(chromedp.CSS(`#signin-form button`)))
		p.waitText("#error", "UNAUTHENTICATED: unknown API key")
		p.do(chromedp.SetValue(chromedp.CSS("#signin-key"), adminKey), chromedp.Click(chromedp.CSS(`#signin-form button`)),
			chromedp.WaitVisible(chromedp.CSS("#find-form")))
		stored := value(p, chromedp.Evaluate[string](`sessionStorage.getItem('sendguard.key')`))
		local := value(p, chromedp.Evaluate[string](`JSON.stringify(localStorage)`))
		url := value(p, chromedp.Location())
		if stored != adminKey || strings.Contains(local, adminKey) || strings.Contains(url, adminKey) {
			t.Errorf("the key is kept in sessionStorage only: session %q, local %q, location %q", stored, local, url)
		}
		// The live page starts reading /metrics when first opened.
		p.show("live")
		p.do(chromedp.WaitVisible(chromedp.CSS("#live-span")))
	})

	at := time.Now().UTC().Truncate(time.Second)
	t.Run("find a number after a 131049", func(t *testing.T) {
		p.t = t
		s.webhookFailed(t, "wamid.BROWSER1", limitedNum, 131049, at)
		begin := time.Now()
		p.show("find")
		p.do(chromedp.WaitVisible(chromedp.CSS("#find-who")),
			chromedp.SetValue(chromedp.CSS("#find-who"), "+55 (11) 98765-0101"), chromedp.Click(chromedp.CSS("#find-form button")),
			chromedp.WaitVisible(chromedp.CSS("#decisions")))
		t.Logf("FIGURE find a number: %s from the click to the answer in the page (a store of a few numbers)", time.Since(begin).Round(time.Millisecond))
		row := p.text(`#decisions tr[data-category="marketing"]`)
		if !strings.Contains(row, "DEFER") || !strings.Contains(row, "ECOSYSTEM_LIMIT") || !strings.Contains(row, "131049") {
			t.Errorf("marketing: %q", row)
		}
		// The retry time is the cooldown's end (24 h after the 131049), shown
		// in the viewer's time zone with the instant in datetime.
		retry := p.attr(`#decisions tr[data-category="marketing"] td.retry time`, "datetime")
		if got, err := time.Parse(time.RFC3339Nano, retry); err != nil || !got.Equal(at.Add(24*time.Hour)) {
			t.Errorf("retry_at %q, want %s", retry, at.Add(24*time.Hour))
		}
		if txt := p.text(`#decisions tr[data-category="marketing"] td.retry`); !strings.Contains(txt, "(in 23h 59m)") && !strings.Contains(txt, "(in 1d)") {
			t.Errorf("retry shown as %q", txt)
		}
		if tl := p.text("#timeline"); !strings.Contains(tl, "131049") {
			t.Errorf("timeline: %q", tl)
		}
		if row := p.text(`#decisions tr[data-category="utility"]`); !strings.Contains(row, "ALLOW") {
			t.Errorf("utility: %q", row)
		}
		p.shot("find-a-number")
	})

	t.Run("free entry point", func(t *testing.T) {
		p.t = t
		wrote := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		answered := wrote.Add(10 * time.Minute)
		s.webhookAdReply(t, freeEntryNum, wrote, answered)
		p.find(freeEntryNum)
		until := p.attr("#free-entry time", "datetime")
		if got, err := time.Parse(time.RFC3339Nano, until); err != nil || !got.Equal(answered.Add(72*time.Hour)) {
			t.Errorf("free entry point window until %q, want %s (72 h from the first answer)", until, answered.Add(72*time.Hour))
		}
	})

	t.Run("opt out", func(t *testing.T) {
		p.t = t
		p.find(optOutNum)
		p.waitText(`#decisions tr[data-category="marketing"]`, "ALLOW")
		p.do(chromedp.SetValue(chromedp.CSS("#optout-reason"), "support ticket 77"), chromedp.Click(chromedp.CSS("#opt-out")))
		row := p.waitText(`#decisions tr[data-category="marketing"]`, "DENY")
		if !strings.Contains(row, "OPTED_OUT") {
			t.Errorf("marketing after opting out: %q", row)
		}
		if txt := p.text("#contact"); !strings.Contains(txt, "support ticket 77") {
			t.Errorf("the opt-out's reason is not shown: %q", txt)
		}
	})

	t.Run("policy", func(t *testing.T) {
		p.t = t
		// A 131048 limits the sending number: the restriction is listed, and lifted.
		s.webhookFailed(t, "wamid.BROWSER2", "5511987650199", 131048, time.Now())
		p.show("business")
		p.do(chromedp.WaitVisible(chromedp.CSS("#policy-messagingLimit")))
		if txt := p.text("#restriction-table"); !strings.Contains(txt, "SENDER_LIMITED") || !strings.Contains(txt, pnid) || !strings.Contains(txt, "131048") {
			t.Errorf("restrictions: %q", txt)
		}
		p.shot("business")
		p.do(chromedp.Click(chromedp.CSS("#restriction-table button")), chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
			chromedp.Click(chromedp.CSS("#confirm-ok")))
		p.waitText("#notice", "Lifted 1 restriction")
		p.waitText("#restrictions", "No account or sender restriction")
		p.do(chromedp.SetValue(chromedp.CSS("#policy-messagingLimit"), "250"), chromedp.Click(chromedp.CSS(`#policy-form button[type="submit"]`)))
		p.waitText("#notice", "Saved: messagingLimit")
		p.waitText("#effective-messagingLimit", "250")
		// A value that is not a number is answered in the page.
		p.do(chromedp.SetValue(chromedp.CSS("#policy-pairBurst"), "lots"), chromedp.Click(chromedp.CSS(`#policy-form button[type="submit"]`)))
		p.waitText("#error", `Pair rate burst: "lots" is not a whole number`)
	})

	t.Run("audience equals validate", func(t *testing.T) {
		p.t = t
		file := filepath.Join(t.TempDir(), "audience.csv")
		if err := os.WriteFile(file, audience(2000), 0o600); err != nil {
			t.Fatal(err)
		}
		summary := p.audienceVsValidate(s, downloads, file, "audience")
		// The counts of the summary, against validate's.
		for _, v := range []string{"ALLOW", "DEFER", "DENY", "ERROR"} {
			want := regexp.MustCompile(`(?m)^` + v + `\s+(\d+)`).FindStringSubmatch(string(summary))
			if got := p.text("#count-" + v); len(want) < 2 || got != want[1] {
				t.Errorf("%s: page %s, validate %v", v, got, want)
			}
		}
		for _, kind := range []string{"doomed", "unwanted"} {
			want := regexp.MustCompile(`(?m)^\s+` + kind + `\s+(\d+)`).FindStringSubmatch(string(summary))
			if got := p.text("#avoided-" + kind); len(want) < 2 || got != want[1] {
				t.Errorf("%s: page %s, validate %v", kind, got, want)
			}
		}
		for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+)\s+(\S+)\s+(\S+)\s+(\S+)$`).FindAllStringSubmatch(string(summary), -1) {
			if m[1] == "ALLOW" || m[1] == "DEFER" || m[1] == "DENY" || m[1] == "ERROR" {
				continue
			}
			for i, kind := range []string{"doomed", "unwanted", "shadow"} {
				if got := p.text(fmt.Sprintf(`#summary-rules tr[data-rule=%q] td[data-kind=%q]`, m[1], kind)); got != m[2+i] {
					t.Errorf("rule %s %s: page %s, validate %s", m[1], kind, got, m[2+i])
				}
			}
		}
		if cost := p.text("#audience-result .cards"); !strings.Contains(string(summary), "they would have cost") {
			t.Errorf("validate priced nothing: %s", summary)
		} else if want := regexp.MustCompile(`would have cost (\S+)`).FindStringSubmatch(string(summary))[1]; !strings.Contains(cost, "would have cost "+want) {
			t.Errorf("cost: validate %s, page %q", want, cost)
		}
		// Filters: the rows of one verdict and one rule.
		p.do(chromedp.SetValue(chromedp.CSS("#filter-verdict"), "DEFER"))
		value(p, chromedp.Evaluate[bool](`document.getElementById('filter-verdict').dispatchEvent(new Event('change'))`))
		if caption := p.text("#audience-table caption"); !strings.Contains(caption, "of "+p.text("#count-DEFER")) {
			t.Errorf("filtered by DEFER: %q", caption)
		}
	})

	t.Run("a hostile audience equals validate", func(t *testing.T) {
		p.t = t
		file := filepath.Join(t.TempDir(), "hostile.csv")
		if err := os.WriteFile(file, []byte(hostileAudience), 0o600); err != nil {
			t.Fatal(err)
		}
		summary := p.audienceVsValidate(s, downloads, file, "")
		if want := regexp.MustCompile(`(?m)^ERROR\s+(\d+)`).FindStringSubmatch(string(summary)); len(want) < 2 || p.text("#count-ERROR") != want[1] {
			t.Errorf("ERROR rows: page %s, validate %v", p.text("#count-ERROR"), want)
		}
	})

	t.Run("live", func(t *testing.T) {
		p.t = t
		p.show("live")
		p.do(chromedp.WaitVisible(chromedp.CSS("#live-refresh")), chromedp.Click(chromedp.CSS("#live-refresh")))
		txt := p.waitText("#live", "DENY")
		for _, want := range []string{"ALLOW", "DEFER", "REGION_BLOCKED", "ECOSYSTEM_LIMIT", "failed applied"} {
			if !strings.Contains(txt, want) {
				t.Errorf("live: no %s in %q", want, txt)
			}
		}
		p.shot("live")
	})

	t.Run("every control is named", func(t *testing.T) {
		p.t = t
		// A field without a label or a button without a name cannot be
		// used with a screen reader; every page is checked as it is shown.
		const unnamed = `[...document.querySelectorAll('input, select, textarea, button')]
			.filter((e) => !e.closest('[hidden]') && !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
			.map((e) => e.outerHTML).join('\n')`
		for _, page := range []string{"find", "business", "audience", "live"} {
			p.show(page)
			p.do(chromedp.WaitVisible(chromedp.CSS("#page-" + page)))
			if got := value(p, chromedp.Evaluate[string](unnamed)); got != "" {
				t.Errorf("#%s: controls without a name:\n%s", page, got)
			}
		}
	})

	t.Run("a key without admin scope", func(t *testing.T) {
		p.t = t
		p.do(chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#signin-form")),
			chromedp.SetValue(chromedp.CSS("#signin-key"), supportKey), chromedp.SetValue(chromedp.CSS("#signin-business"), business),
			chromedp.Click(chromedp.CSS(`#signin-form button`)), chromedp.WaitVisible(chromedp.CSS("#nav")))
		p.show("business")
		p.waitText("#error", `PERMISSION_DENIED: API key "support" has no admin scope`)
		// Looking up is allowed; forgetting is not.
		p.show("find")
		p.find(optOutNum)
		p.do(chromedp.Click(chromedp.CSS("#forget")),
			chromedp.WaitVisible(chromedp.CSS("#confirm-ok")), chromedp.Click(chromedp.CSS("#confirm-ok")))
		p.waitText("#error", `PERMISSION_DENIED: API key "support" has no admin scope`)
		// A bad number is answered with the server's message.
		p.do(chromedp.SetValue(chromedp.CSS("#find-who"), "not a phone"), chromedp.Click(chromedp.CSS("#find-form button")))
		p.waitText("#error", "INVALID_ARGUMENT")
	})

	p.t = t
	p.checkClean()
	if t.Failed() {
		s.stderrMu.Lock()
		t.Logf("server log:\n%s", s.stderr)
		s.stderrMu.Unlock()
	}
}

// TestConsoleInBrowserWithoutKeys: on loopback without API keys the console
// opens without a sign-in, and a number is found at once.
func TestConsoleInBrowserWithoutKeys(t *testing.T) {
	if os.Getenv("SENDGUARD_BROWSER") != "1" {
		t.Skip("set SENDGUARD_BROWSER=1 (make test-browser) to run the console in headless Chromium")
	}
	s := startSendguard(t, false, "")
	p := newPage(t, s.base, t.TempDir())
	p.do(chromedp.Navigate(s.consoleURL), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="open"] #find-form`)))
	if v := value(p, chromedp.Evaluate[bool](`document.getElementById('sign-out').hidden && document.getElementById('page-signin').hidden`)); !v {
		t.Error("a sign-in shows on a server without keys")
	}
	p.do(chromedp.SetValue(chromedp.CSS("#business-id"), business), chromedp.SetValue(chromedp.CSS("#find-who"), "+1 212 736 0000"),
		chromedp.Click(chromedp.CSS("#find-form button")))
	if row := p.waitText(`#decisions tr[data-category="marketing"]`, "DENY"); !strings.Contains(row, "REGION_BLOCKED") {
		t.Errorf("marketing to a US number: %q", row)
	}
	p.checkClean()
}

// TestConsoleInBrowserFindOnLargeStore measures "find a number" in the page
// on a large store: SENDGUARD_CONSOLE_STORE names a data directory seeded by
// `sendguard-bench --serve-only --numbers N --data DIR` (business "bench",
// numbers loadgen.Number(0…N-1)) and SENDGUARD_CONSOLE_STORE_NUMBERS its N. It
// prints the time from the click to the decisions in the page, for numbers
// spread over the store; a measurement, not an assertion.
func TestConsoleInBrowserFindOnLargeStore(t *testing.T) {
	dir := os.Getenv("SENDGUARD_CONSOLE_STORE")
	if os.Getenv("SENDGUARD_BROWSER") != "1" || dir == "" {
		t.Skip("set SENDGUARD_BROWSER=1 and SENDGUARD_CONSOLE_STORE to a seeded data directory to measure")
	}
	n, err := strconv.Atoi(os.Getenv("SENDGUARD_CONSOLE_STORE_NUMBERS"))
	if err != nil || n < 1 {
		t.Fatal("SENDGUARD_CONSOLE_STORE_NUMBERS: want the number of numbers seeded")
	}
	s := startSendguard(t, false, dir)
	p := newPage(t, s.base, t.TempDir())
	p.do(chromedp.Navigate(s.consoleURL), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="open"] #find-form`)),
		chromedp.SetValue(chromedp.CSS("#business-id"), loadgen.Business))
	const lookups = 40
	took := make([]time.Duration, 0, lookups)
	for k := range lookups {
		phone := loadgen.Number(k * (n / lookups))
		value(p, chromedp.Evaluate[bool](`document.getElementById('contact').replaceChildren() === undefined`))
		p.do(chromedp.SetValue(chromedp.CSS("#find-who"), phone))
		begin := time.Now()
		p.do(chromedp.Click(chromedp.CSS("#find-form button")), chromedp.WaitVisible(chromedp.CSS("#decisions")))
		took = append(took, time.Since(begin))
		if got := p.text("#contact dd"); !strings.Contains(got, strings.TrimPrefix(phone, "+")) {
			t.Fatalf("%s: the page shows %q", phone, got)
		}
	}
	// The same lookups as bare JSON calls, in the same run: what the page adds.
	direct := make([]time.Duration, 0, lookups)
	for k := range lookups {
		body := fmt.Sprintf(`{"businessId":%q,"phone":%q}`, loadgen.Business, loadgen.Number(k*(n/lookups)+1))
		begin := time.Now()
		resp, err := http.Post(s.base+"/sendguard.v1.SendGuard/GetContact", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		direct = append(direct, time.Since(begin))
		if resp.StatusCode != 200 {
			t.Fatalf("GetContact: %s", resp.Status)
		}
	}
	slices.Sort(took)
	slices.Sort(direct)
	t.Logf("FIGURE find a number on a store of %d numbers: median %s, p90 %s, max %s over %d lookups (click to decisions in the page, CDP polling included); "+
		"GetContact as bare JSON in the same run: median %s, p90 %s",
		n, took[lookups/2].Round(time.Millisecond), took[lookups*9/10].Round(time.Millisecond), took[lookups-1].Round(time.Millisecond), lookups,
		direct[lookups/2].Round(100*time.Microsecond), direct[lookups*9/10].Round(100*time.Microsecond))
	p.checkClean()
}

// audienceVsValidate judges file in the page and with `sendguard validate`,
// requires the page's downloaded verdicts CSV byte-identical to validate's
// output, and returns validate's summary.
func (p *page) audienceVsValidate(s *sendguard, downloads, file, shot string) []byte {
	p.t.Helper()
	t := p.t
	p.show("audience")
	value(p, chromedp.Evaluate[bool](`document.getElementById('audience-result').replaceChildren() === undefined`))
	p.do(chromedp.WaitVisible(chromedp.CSS("#audience-file")),
		chromedp.SetUploadFiles(chromedp.CSS("#audience-file"), []string{file}),
		chromedp.SetValue(chromedp.CSS("#audience-template"), "promo_dec"),
		chromedp.SetValue(chromedp.CSS("#audience-price"), "0.0625"),
		chromedp.Click(chromedp.CSS("#audience-run")),
		chromedp.WaitVisible(chromedp.CSS("#audience-download")))
	value(p, chromedp.Evaluate[bool](`window.scrollTo(0, document.getElementById('audience-download').getBoundingClientRect().top + window.scrollY - 8) === undefined`))
	if shot != "" {
		p.shot(shot)
	}
	value(p, chromedp.Evaluate[bool](`window.scrollTo(0, 0) === undefined`))
	p.do(chromedp.Click(chromedp.CSS("#audience-download")))
	var guid string
	select {
	case guid = <-p.download:
	case <-time.After(30 * time.Second):
		t.Fatal("the verdicts CSV was not downloaded")
	}
	pageCSV, err := os.ReadFile(filepath.Join(downloads, guid))
	if err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "verdicts.csv")
	cmd := exec.Command(s.bin, "validate", "--addr", s.grpc, "--business", business, "--template", "promo_dec",
		"--price-per-message", "0.0625", "--in", file, "--out", out)
	cmd.Env = append(os.Environ(), "SENDGUARD_API_KEY="+adminKey)
	summary, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 3) {
		t.Fatalf("validate: %v\n%s", err, summary)
	}
	cliCSV, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pageCSV, cliCSV) {
		pl, cl := strings.Split(string(pageCSV), "\n"), strings.Split(string(cliCSV), "\n")
		for i := 0; i < len(pl) && i < len(cl); i++ {
			if pl[i] != cl[i] {
				t.Fatalf("the page's verdicts differ from validate's at line %d:\npage:     %s\nvalidate: %s", i+1, pl[i], cl[i])
			}
		}
		t.Fatalf("the page's verdicts have %d lines, validate's %d", len(pl), len(cl))
	}
	return summary
}

// hostileAudience holds what breaks CSV readers: a byte order mark, the phone
// column found by a Portuguese header, a user ID column, a quoted field over
// two lines, doubled quotes, a quote left open that swallows more than ten
// lines, one that closes on a later line with the wrong number of fields,
// text after a closing quote, a stray quote, rows with too many and too few
// fields, a row with neither phone nor user ID, a field starting with a space,
// accents, an empty line, CR-only line ends inside LF ones, and no line end
// at the end.
const hostileAudience = "\ufeffNome,Celular,BSUID,nota\r\n" +
	"Ana,+55 31 99551-1909,,ok\r\n" +
	"Bia,+55 31 99551-1912,,\"linha 1\nlinha 2\"\r\n" +
	"\"Edu \"\"E\"\"\",+55 31 99551-1915,,\"a, b\"\n" +
	"Caio,+55 31 99551-1913,,\"never closed\n" +
	"R1,+55 31 99551-1921,,\nR2,+55 31 99551-1922,,\nR3,+55 31 99551-1923,,\nR4,+55 31 99551-1924,,\n" +
	"R5,+55 31 99551-1925,,\nR6,+55 31 99551-1926,,\nR7,+55 31 99551-1927,,\nR8,+55 31 99551-1928,,\n" +
	"R9,+55 31 99551-1929,,\nR10,+55 31 99551-1930,,\nR11,+55 31 99551-1931,,\n" +
	"L,+55 31 99551-1920,,\"note\nend\",x,y\n" +
	"Dani,\"+55 31 99551-1914\"x,,n\n" +
	"Eva,+55 31 9955\"1-1932,,n\n" +
	"Fabi,,BR.1502576394655843,\n" +
	"Gil,,,\n" +
	"H,+55 31 99551-1916,,n,extra\n" +
	"Short,+55 31 99551-1933\n" +
	" Ivo,+55 31 99551-1917,, lead\n" +
	"\r\n" +
	"Júlia,+55 31 99551-1918,,ção\n" +
	"Kai,+55 31 99551-1935,,\ufeffjoined export\n" + // U+FEFF is no space to Go's csv.Writer: not quoted
	"Lia,+55 31 99551-1936,,\u0085next line\n" + // U+0085 is: quoted
	"Mel,+55 31 99551-1937,,\u00a0no-break\n" +
	"US,+1 212 736 0001,,\n" +
	"Typo,12345,,\n" +
	"Last,+55 31 99551-1934,,end"

// audience is an audience file of n data rows with what real exports hold:
// numbers in several spellings, US numbers (REGION_BLOCKED), numbers that are
// not numbers, the 131049 and opted-out numbers, a quoted field spanning two
// lines, a line that is not CSV, a line with too few fields, an empty line and
// a row without a phone.
func audience(n int) []byte {
	var b strings.Builder
	b.WriteString("name;Telefone;email\r\n")
	for i := 1; i <= n; i++ {
		if i == 50 {
			b.WriteString("\r\n") // skipped, not a row
		}
		switch {
		case i == 7:
			fmt.Fprintf(&b, "Limited;+%s;l@example.com\r\n", limitedNum)
		case i == 8:
			fmt.Fprintf(&b, "Opted out;%s;o@example.com\r\n", optOutNum)
		case i == 20:
			b.WriteString("\"Ana\nMaria\";+55 31 99551-1909;a@example.com\r\n")
		case i == 30:
			b.WriteString("Broken;+55 31 9\"9551-1910;b@example.com\r\n")
		case i == 40:
			b.WriteString("Short;+55 31 99551-1911\r\n")
		case i == 60:
			b.WriteString("Nobody;;n@example.com\r\n")
		case i%17 == 0:
			fmt.Fprintf(&b, "Typo %d;12%d;t@example.com\r\n", i, i)
		case i%10 == 0:
			fmt.Fprintf(&b, "US %d;+1 212 736 %04d;u@example.com\r\n", i, i)
		case i%3 == 0:
			fmt.Fprintf(&b, "Person %d;+55 (11) 9%04d-%04d;p%d@example.com\r\n", i, 8000+i%2000, i, i)
		default:
			fmt.Fprintf(&b, "Person %d;55119%04d%04d;p%d@example.com\r\n", i, 7000+i%2000, i, i)
		}
	}
	return []byte(b.String())
}
