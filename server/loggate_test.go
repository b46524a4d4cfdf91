package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
	"github.com/sendguard/sendguard/storage/faulty"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestCallLogging: with Debug on every call is logged by the middleware; with
// Debug off a successful call writes nothing, and a failed call that is logged
// still gets the middleware's line, with its real start time and duration.
func TestCallLogging(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelWarn} {
		t.Run(level.String(), func(t *testing.T) {
			st, err := badger.Open(badger.Options{InMemory: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			fs := faulty.Wrap(st)
			var out syncBuffer
			h := newHarnessOn(t, func(storage.Store, Config) storage.Store { return fs }, func(c *Config) {
				c.Logger = slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}))
			})
			h.check(t, marketing(brPhone))
			okLogged := strings.Contains(out.String(), `msg="finished call"`) && strings.Contains(out.String(), "grpc.code=OK")
			if okLogged != (level == slog.LevelDebug) {
				t.Fatalf("a successful call at level %v: logged %v:\n%s", level, okLogged, out.String())
			}
			fs.Fail(syscall.EIO)
			before := time.Now()
			if _, err := h.c.Check(context.Background(), marketing(brPhone)); err == nil {
				t.Fatal("no error from a failing store")
			}
			var line string
			for l := range strings.Lines(out.String()) {
				if strings.Contains(l, "grpc.code=Unavailable") {
					line = l
				}
			}
			if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "grpc.method=CheckSend") ||
				!strings.Contains(line, "grpc.time_ms=") || !strings.Contains(line, "peer.address=") {
				t.Fatalf("failed call not logged by the middleware:\n%s", out.String())
			}
			i := strings.Index(line, "grpc.start_time=") + len("grpc.start_time=")
			start, err := time.Parse(time.RFC3339, strings.Fields(line[i:])[0])
			if err != nil || start.Before(before.Truncate(time.Second)) || start.After(time.Now()) {
				t.Fatalf("start time %v (%v) not within the call:\n%s", start, err, line)
			}
		})
	}
}
