package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/webhook"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
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

// The build information the test binary is built with, as the Makefile sets it.
const (
	buildinfoPkg = "github.com/sendguard/sendguard/internal/buildinfo"
	e2eVersion   = "v0.0.0-e2e"
	e2eRevision  = "0123456789abcdef0123456789abcdef01234567"
)

// buildBinary builds the sendguard binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "sendguard-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sendguard")
		cmd := exec.Command("go", "build", "-ldflags", "-X "+buildinfoPkg+".version="+e2eVersion+" -X "+buildinfoPkg+".revision="+e2eRevision, "-o", binPath, ".")
		cmd.Stderr = os.Stderr
		binErr = cmd.Run()
	})
	if binErr != nil {
		t.Fatalf("build: %v", binErr)
	}
	return binPath
}

type proc struct {
	cmd             *exec.Cmd
	grpc, http, api string
}

// The api address is optional: builds before the API port (issue 16) print none.
var servingLine = regexp.MustCompile(`sendguard serving"? grpc=(\S+) http=(\S+)(?: api=(\S*))?`)

// startServer starts `sendguard serve` on loopback ports chosen by the kernel and
// waits for it to say where it listens.
func startServer(t *testing.T, bin, dataDir string, env ...string) *proc {
	t.Helper()
	return startServerArgs(t, bin, dataDir, env)
}

// stop ends p with SIGTERM and waits for it.
func stop(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop within 20s of SIGTERM")
	}
}

// startServerArgs is startServer with extra serve flags.
func startServerArgs(t *testing.T, bin, dataDir string, env []string, args ...string) *proc {
	t.Helper()
	return startServerCmd(t, bin, env, append([]string{"serve", "--data", dataDir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0"}, args...)...)
}

// serveRefused runs `bin serve --data dataDir ARGS` on loopback ports with env
// added, for a start that must be refused: it waits up to 30 s for the process
// to exit on its own and returns what it printed, whether it had to be killed
// instead, and how it exited.
func serveRefused(t *testing.T, bin, dataDir string, env []string, args ...string) (out string, timedOut bool, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--data", dataDir,
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	return string(b), ctx.Err() != nil, err
}

// startServerCmd runs bin with args (a serve command line) and waits for it to
// say where it listens.
func startServerCmd(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case m := <-found:
		return &proc{cmd: cmd, grpc: m[1], http: m[2], api: m[3]}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start within 30s")
	}
	return nil
}

func dial(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.Dial(addr, client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestEndToEnd builds the binary, serves on a temporary data directory, plays the
// seed's four errors through ReportResult, checks each verdict over real gRPC, then
// kills the process with SIGKILL, restarts it on the same data and finds the
// opt-outs and reservations intact.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	p := startServer(t, bin, data)
	c := dial(t, p.grpc)
	ctx := context.Background()

	// Reflection lists the service (what `grpcurl -plaintext ... list` shows).
	rc, err := grpc_reflection_v1.NewServerReflectionClient(c.Conn()).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&grpc_reflection_v1.ServerReflectionRequest{MessageRequest: &grpc_reflection_v1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	lr, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range lr.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	if !slices.Contains(services, "sendguard.v1.SendGuard") || !slices.Contains(services, "grpc.health.v1.Health") {
		t.Fatalf("reflection lists %v", services)
	}
	rc.CloseSend()

	verify := seedEndToEnd(t, c)
	verify(c, "before kill")

	// /healthz and /metrics answer on the HTTP address.
	for _, path := range []string{"/healthz", "/metrics"} {
		r, err := http.Get("http://" + p.http + path)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, r, err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if path == "/metrics" && !strings.Contains(string(body), `sendguard_decisions_total{shadow="false",verdict="deny"}`) {
			t.Fatalf("/metrics lacks decision counters:\n%.2000s", body)
		}
	}

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	p2 := startServer(t, bin, data)
	verify(dial(t, p2.grpc), "after SIGKILL and restart")

	// SIGTERM stops the server cleanly.
	stop(t, p2)
}

// seedEndToEnd plays the seed's four errors, an opt-out and a reservation through
// c, and returns a check that a server (the same or another on the same data)
// gives each its verdict and remembers the reservation.
func seedEndToEnd(t *testing.T, c *client.Client) func(c *client.Client, when string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	phones := map[int32]string{131049: "+5511987650001", 131050: "+5511987650002", 130472: "+5511987650003", 131026: "+5511987650004"}
	for code, phone := range phones {
		_, err := c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: phone, MessageId: fmt.Sprint("wamid.", code),
			Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: code, Category: sgv1.Category_CATEGORY_MARKETING,
			Timestamp: timestamppb.New(now.Add(-time.Minute))})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: "+5511987650005", OptedOut: true, Reason: "support ticket"}); err != nil {
		t.Fatal(err)
	}
	reserve := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+5511987650006", Category: sgv1.Category_CATEGORY_MARKETING,
		Template: "promo", Reserve: true, MessageRef: "send-1"}
	if resp, err := c.Check(ctx, reserve); err != nil || resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
		t.Fatalf("reserve: %v %v", resp, err)
	}

	want := map[string]struct {
		verdict sgv1.Verdict
		rule    sgv1.Rule
	}{
		phones[131049]:   {sgv1.Verdict_VERDICT_DEFER, sgv1.Rule_RULE_ECOSYSTEM_LIMIT},
		phones[131050]:   {sgv1.Verdict_VERDICT_DENY, sgv1.Rule_RULE_OPTED_OUT},
		phones[130472]:   {sgv1.Verdict_VERDICT_DEFER, sgv1.Rule_RULE_EXPERIMENT},
		phones[131026]:   {sgv1.Verdict_VERDICT_DEFER, sgv1.Rule_RULE_UNDELIVERABLE},
		"+5511987650005": {sgv1.Verdict_VERDICT_DENY, sgv1.Rule_RULE_OPTED_OUT},
		"+5511987650006": {sgv1.Verdict_VERDICT_DEFER, sgv1.Rule_RULE_FREQUENCY_CAP},
	}
	return func(c *client.Client, when string) {
		t.Helper()
		for phone, w := range want {
			resp, err := c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING, Template: "other"})
			if err != nil {
				t.Fatalf("%s %s: %v", when, phone, err)
			}
			if resp.GetVerdict() != w.verdict || len(resp.GetReasons()) == 0 || resp.GetReasons()[0].GetRule() != w.rule {
				t.Errorf("%s %s: %v %v, want %v %v", when, phone, resp.GetVerdict(), resp.GetReasons(), w.verdict, w.rule)
			}
		}
		resp, err := c.Check(ctx, reserve)
		if err != nil || !resp.GetDuplicate() {
			t.Errorf("%s: the reservation's message_ref is not remembered: %v %v", when, resp, err)
		}
	}
}

func signedStatus(t *testing.T, phoneNumberID, wamid, recipient string, code int, at time.Time) []byte {
	t.Helper()
	return []byte(strings.ReplaceAll(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
 "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":%q},
 "statuses":[{"id":%q,"status":"failed","timestamp":"%d","recipient_id":%q,
  "errors":[{"code":%d,"title":"error"}],"pricing":{"category":"marketing"}}]}}]}]}`, phoneNumberID, wamid, at.Unix(), recipient, code), "\n", ""))
}

// TestWebhookEndToEnd: a signed webhook POSTed to a running server changes the
// CheckSend verdict of its number exactly as the equivalent ReportResult changes
// another's; `sendguard replay` backfills saved bodies into the running server.
func TestWebhookEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const secret, pnid = "e2e-app-secret", "106540352242922"
	bin := buildBinary(t)
	p := startServer(t, bin, t.TempDir(), "SENDGUARD_WHATSAPP_APP_SECRET="+secret)
	c := dial(t, p.grpc)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Second)

	body := signedStatus(t, pnid, "wamid.E2E1", "5511987650101", 131049, at)
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.http+"/webhooks/whatsapp", strings.NewReader(string(body)))
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(body, []byte(secret)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook POST: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: pnid, Phone: "5511987650102", MessageId: "wamid.E2E2",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131049, Category: sgv1.Category_CATEGORY_MARKETING,
		Timestamp: timestamppb.New(at)}); err != nil {
		t.Fatal(err)
	}
	check := func(phone string) *sgv1.CheckSendResponse {
		t.Helper()
		r, err := c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: pnid, Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	viaWebhook, viaReport := check("+5511987650101"), check("+5511987650102")
	viaWebhook.PhoneE164, viaReport.PhoneE164 = "", ""
	if viaWebhook.GetVerdict() != sgv1.Verdict_VERDICT_DEFER || !proto.Equal(viaWebhook, viaReport) {
		t.Fatalf("webhook %v\nreport  %v", viaWebhook, viaReport)
	}

	// replay: a saved 131050, a line that is not JSON, a user_preferences stop.
	lines := []string{
		string(signedStatus(t, pnid, "wamid.R1", "5511987650103", 131050, at)),
		"{not json",
		fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"user_preferences","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":%q},"user_preferences":[{"wa_id":"5511987650104","detail":"stop","category":"marketing_messages","value":"stop","timestamp":%d}]}}]}]}`, pnid, at.Unix()),
	}
	file := filepath.Join(t.TempDir(), "saved.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	replay := exec.Command(bin, "replay", file, "--http-addr", p.http)
	replay.Env = append(os.Environ(), "SENDGUARD_WHATSAPP_APP_SECRET="+secret)
	out, err := replay.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "3 bodies") || !strings.Contains(string(out), "2 accepted, 1 rejected, 0 failed") ||
		!strings.Contains(string(out), "rejected lines (first 1): [2]") || !strings.Contains(string(out), "events: 2 new, 0 already recorded (duplicates), 0 skipped") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	// A second replay of the same file: accepted again, and every event a duplicate.
	replay = exec.Command(bin, "replay", file, "--http-addr", p.http)
	replay.Env = append(os.Environ(), "SENDGUARD_WHATSAPP_APP_SECRET="+secret)
	out, err = replay.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2 accepted, 1 rejected, 0 failed") ||
		!strings.Contains(string(out), "events: 0 new, 2 already recorded (duplicates), 0 skipped") || !strings.Contains(string(out), "nothing new") {
		t.Fatalf("second replay: %v\n%s", err, out)
	}
	for _, phone := range []string{"+5511987650103", "+5511987650104"} {
		if r := check(phone); r.GetVerdict() != sgv1.Verdict_VERDICT_DENY {
			t.Fatalf("%s after replay: %v", phone, r)
		}
	}
	// A wrong secret stops the replay with a message that says why.
	replay = exec.Command(bin, "replay", file, "--http-addr", p.http)
	replay.Env = append(os.Environ(), "SENDGUARD_WHATSAPP_APP_SECRET=wrong")
	out, err = replay.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("replay with a wrong secret: %v\n%s", err, out)
	}
}
