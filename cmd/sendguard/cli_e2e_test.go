package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exitCode runs cmd and returns its exit status and output.
func exitCode(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("%v: %v", cmd.Args, err)
	return -1, ""
}

// TestCLIEndToEnd: the binary's version (set by -ldflags, as the Makefile's
// build does) is what it prints and what /metrics says; policy, optout and a
// suppression import against a running server, with the import's exit status
// 3 for lines it could not read.
func TestCLIEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out := exitCode(t, exec.Command(bin, args...))
		if code != 0 || !strings.HasPrefix(out, "sendguard "+e2eVersion+"\n  revision: "+e2eRevision+"\n  go:       go1.") {
			t.Fatalf("%v: %d\n%s", args, code, out)
		}
	}
	p := startServer(t, bin, t.TempDir())
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte(`sendguard_build_info{goversion="go1.`)) ||
		!bytes.Contains(metrics, []byte(`revision="`+e2eRevision+`",version="`+e2eVersion+`"} 1`)) {
		t.Fatalf("/metrics lacks sendguard_build_info:\n%s", grepLines(string(metrics), "build_info"))
	}

	run := func(args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), envAddr+"="+p.grpc, envAPIKey+"=")
		return exitCode(t, cmd)
	}
	if code, out := run("policy", "set", "--business", "acme", "--blocked-regions", "US,AR"); code != 0 || !strings.Contains(out, "blocked_regions: [US] -> [US, AR]") {
		t.Fatalf("policy set: %d\n%s", code, out)
	}
	list := filepath.Join(t.TempDir(), "stop.csv")
	if err := os.WriteFile(list, []byte("phone\n+5511987650051\n\"+5511987650052\n+5511987650053\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := run("optout", "--in", list, "--business", "acme")
	if code != exitUnreadLines || !strings.Contains(out, "opted out                 2") || !strings.Contains(out, "bad lines                 1") ||
		!strings.Contains(out, "sendguard: 1 row of "+list+" not imported (listed above): 1 line that could not be read;") {
		t.Fatalf("optout --in: exit %d\n%s", code, out)
	}
	if code, out := run("check", "+5511987650053", "--business", "acme"); code != 0 || !strings.HasPrefix(out, "DENY") || !strings.Contains(out, "OPTED_OUT") {
		t.Fatalf("check after the import: %d\n%s", code, out)
	}
	if code, out := run("check", "+54 9 11 2345-6789", "--business", "acme"); code != 0 || !strings.Contains(out, "This business does not send marketing to AR") {
		t.Fatalf("check of a region the business blocked: %d\n%s", code, out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReplayEndToEndStops: the binary's replay against a server that is not
// there gives up after --attempts with a message that says so (status 1), and
// Ctrl-C during a replay ends it with status 130.
func TestReplayEndToEndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	file := writeLines(t, `{}`, `{}`, `{}`)
	env := append(os.Environ(), "SENDGUARD_WHATSAPP_APP_SECRET=s")

	cmd := exec.Command(bin, "replay", file, "--http-addr", closedAddr(t), "--attempts", "2")
	cmd.Env = env
	code, out := exitCode(t, cmd)
	if code != 1 || !strings.Contains(out, "cannot reach the server at") || !strings.Contains(out, "(2 attempts over") ||
		!strings.Contains(out, "trying again in 200ms (attempt 2 of 2)") {
		t.Fatalf("replay to nothing: exit %d\n%s", code, out)
	}

	// A server that takes the POSTs and never answers them.
	posted := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posted <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	cmd = exec.Command(bin, "replay", file, "--http-addr", strings.TrimPrefix(srv.URL, "http://"))
	cmd.Env = env
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-posted:
	case <-time.After(20 * time.Second):
		t.Fatal("no POST within 20s")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted || !strings.Contains(outb.String(), "interrupted: replaying the file again is safe") {
			t.Fatalf("after Ctrl-C: %v\n%s", err, outb.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("replay did not stop within 20s of SIGINT")
	}
}
