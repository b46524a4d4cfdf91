package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

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
	r := &replayer{url: srv.URL, secret: []byte("s"), client: srv.Client(), workers: 1, out: io.Discard}
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
