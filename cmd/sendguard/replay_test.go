package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/server"
)

// testReplayer replays to base with fast retries.
func testReplayer(base string, client *http.Client, out io.Writer) *replayer {
	return &replayer{base: base, secret: []byte("s"), client: client, workers: 1, attempts: 3, backoff: time.Millisecond, out: out}
}

// TestReplayRetriesWhatTheServerCannotTakeNow: a 503 (spent body budget, failing
// store), 408 or 429 is sent again; a 400 is rejected at once.
func TestReplayRetriesWhatTheServerCannotTakeNow(t *testing.T) {
	var calls atomic.Int32
	answers := []int{http.StatusServiceUnavailable, http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusOK, http.StatusBadRequest}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(answers[min(int(calls.Add(1))-1, len(answers)-1)])
	}))
	defer srv.Close()
	r := testReplayer(srv.URL, srv.Client(), io.Discard)
	if err := r.send(context.Background(), line{n: 1, body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if r.accepted.Load() != 1 || calls.Load() != 4 {
		t.Fatalf("accepted %d after %d calls; want 1 after 4", r.accepted.Load(), calls.Load())
	}
	if err := r.send(context.Background(), line{n: 2, body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if r.rejected.Load() != 1 || calls.Load() != 5 {
		t.Fatalf("rejected %d after %d calls; want 1 after 5", r.rejected.Load(), calls.Load())
	}
}

// TestReplayStopsWhenTheServerCannotTakeEvents: a server that answers every
// POST 503 (its store is failing) gets busyTries tries of the first body, each
// retry said, and then the replay stops with an error naming the line and the
// answer, instead of spending as long on every other line of the file.
func TestReplayStopsWhenTheServerCannotTakeEvents(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var notices strings.Builder
	lines := make([]string, 50)
	for i := range lines {
		lines[i] = `{}`
	}
	sum, err := testReplayer(srv.URL, srv.Client(), &notices).run(context.Background(), writeLines(t, lines...))
	if err == nil || !strings.Contains(err.Error(), "line 1: the server at "+srv.URL+" answered 503 Service Unavailable 8 times") {
		t.Fatalf("error: %v", err)
	}
	if posts.Load() != busyTries || sum.failed != 1 || !sum.stopped {
		t.Errorf("%d POSTs, %d failed, stopped %v; want %d tries of line 1 and a stop", posts.Load(), sum.failed, sum.stopped, busyTries)
	}
	if n := strings.Count(notices.String(), "line 1: the server answered 503 Service Unavailable; trying again in"); n != busyTries-1 {
		t.Errorf("%d retry notices, want %d:\n%s", n, busyTries-1, notices.String())
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func writeLines(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "saved.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplayServerDown: a server that is not there is tried --attempts times,
// each failure said on stderr, then the replay stops with an error that says
// what to check, before sending anything.
func TestReplayServerDown(t *testing.T) {
	var notices strings.Builder
	r := testReplayer("http://"+closedAddr(t), http.DefaultClient, &notices)
	_, err := r.run(context.Background(), writeLines(t, `{}`))
	if err == nil || !strings.Contains(err.Error(), "cannot reach the server at") || !strings.Contains(err.Error(), "3 attempts") ||
		!strings.Contains(err.Error(), "is `sendguard serve` running there") {
		t.Fatalf("error: %v", err)
	}
	if n := strings.Count(notices.String(), "trying again in"); n != 2 {
		t.Errorf("%d retry notices, want 2:\n%s", n, notices.String())
	}
}

// TestReplayServerGone: a server that stops answering during the replay ends
// it with an error naming the line, after r.attempts tries of that body.
func TestReplayServerGone(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			return // /healthz
		}
		posts.Add(1)
		// The connection drops without an answer.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	r := testReplayer(srv.URL, srv.Client(), io.Discard)
	sum, err := r.run(context.Background(), writeLines(t, `{}`, `{}`))
	if err == nil || !strings.Contains(err.Error(), "line 1: cannot reach the server") {
		t.Fatalf("error: %v", err)
	}
	if posts.Load() != 3 || sum.accepted != 0 {
		t.Errorf("%d POSTs, %d accepted; want 3 tries of line 1 and nothing accepted", posts.Load(), sum.accepted)
	}
}

// TestReplayNoWebhook: a server without an app secret answers 404: the replay
// stops at once and says how to turn the endpoint on.
func TestReplayNoWebhook(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, err := testReplayer(srv.URL, srv.Client(), io.Discard).run(context.Background(), writeLines(t, `{}`, `{}`))
	if !errors.Is(err, errNoWebhook) {
		t.Fatalf("error: %v", err)
	}
}

// TestReplayCountsEvents: the summary adds up the server's Sendguard-Events
// answers, new events apart from duplicates, and says when nothing was new.
func TestReplayCountsEvents(t *testing.T) {
	answers := []string{"applied=0 duplicate=2 skipped=1", "applied=0 duplicate=3 skipped=0", ""}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if h := answers[calls.Add(1)-1]; h != "" {
				w.Header().Set(server.WebhookEventsHeader, h)
			}
		}
	}))
	defer srv.Close()
	sum, err := testReplayer(srv.URL, srv.Client(), io.Discard).run(context.Background(), writeLines(t, `{}`, `{}`))
	if err != nil {
		t.Fatal(err)
	}
	got := sum.String()
	for _, want := range []string{"2 accepted, 0 rejected, 0 failed", "events: 0 new, 5 already recorded (duplicates), 1 skipped", "nothing new"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	sum, err = testReplayer(srv.URL, srv.Client(), io.Discard).run(context.Background(), writeLines(t, `{}`))
	if err != nil || !strings.Contains(sum.String(), "1 accepted bodies not counted") {
		t.Errorf("an answer without the header: %v\n%s", err, sum)
	}
}
