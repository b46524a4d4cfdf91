package redis

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/redistest"
	"github.com/sendguard/sendguard/storage"
)

// TestReplayedScriptsApplyOnce runs each state-changing script twice with the
// same arguments, as go-redis does when a connection fails after Redis ran a
// command but before its answer arrived: the second run must report success and
// change nothing.
func TestReplayedScriptsApplyOnce(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := t.Context()
	s, err := Open(ctx, Options{Addrs: []string{srv.Addr()}, Prefix: "replay:"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := storage.ContactKey{Business: "acme", ID: "+5511900000001"}
	inc := func(c *storage.Contact) (storage.Write, error) {
		c.Rel.PairStreak++
		c.Facts.EcoStreak++
		return storage.Write{Rel: true, Facts: true}, nil
	}
	for _, dedup := range []string{"", "ev-1"} {
		before, err := s.GetContact(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.prepare(ctx, k, dedup, inc)
		if err != nil {
			t.Fatal(err)
		}
		for run := range 2 {
			if res, err := s.commit(ctx, p); err != nil || res != resOK {
				t.Fatalf("dedup %q, run %d of one commit: %d, %v; want %d", dedup, run+1, res, err, resOK)
			}
		}
		after, err := s.GetContact(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if after.Rel.PairStreak != before.Rel.PairStreak+1 || after.Facts.EcoStreak != before.Facts.EcoStreak+1 {
			t.Fatalf("dedup %q: a replayed commit applied %d times", dedup, after.Rel.PairStreak-before.Rel.PairStreak)
		}
	}

	// A replayed delete answers what the first run deleted.
	keys := []string{s.contactKey(k.ID), s.receiptKey(k.ID)}
	var first []any
	for run := range 2 {
		res, err := deleteScript.Run(ctx, s.c, keys, relField(k.Business), int64(1), "1").Slice()
		if err != nil {
			t.Fatal(err)
		}
		if run == 0 {
			first = res
			if res[2].(int64) != 1 || res[0].(string) == "" {
				t.Fatalf("first delete: %v", res)
			}
		} else if res[0] != first[0] || res[1] != first[1] || res[2] != first[2] {
			t.Fatalf("replayed delete answered differently: %v, then %v", first, res)
		}
	}

	// Templates and reach counts.
	version := ""
	args := []any{version, token(), "s", "sale", "x"}
	tk := []string{s.templatesKey("acme"), s.versionKey("acme")}
	for run := range 2 {
		if res, err := templatesScript.Run(ctx, s.c, tk, args...).Int64(); err != nil || res != 0 {
			t.Fatalf("run %d of one templates write: %d, %v", run+1, res, err)
		}
	}
	hk := s.hourKey("acme", 1)
	rk := []string{hk, hk + ":t:" + token()}
	for range 2 {
		if err := reachScript.Run(ctx, s.c, rk, int64(3_600_000), int64(61), int64(1)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.c.HGet(context.Background(), hk, "61").Int(); err != nil || n != 1 {
		t.Fatalf("a replayed reach increment counted %d, %v; want 1", n, err)
	}
}

// TestFailMapsTimeouts: a dial that timed out is a failing store (UNAVAILABLE),
// not the caller's deadline, while the caller's context is live; once the
// context has ended, its own error is returned.
func TestFailMapsTimeouts(t *testing.T) {
	_, dialErr := net.DialTimeout("tcp", "127.0.0.1:1", time.Nanosecond)
	if !errors.Is(dialErr, context.DeadlineExceeded) {
		t.Skipf("this platform's dial timeout (%v) is not a deadline error", dialErr)
	}
	s := &Store{}
	if err := s.fail(t.Context(), "dial", dialErr); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("dial timeout with a live context: %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.fail(ctx, "dial", dialErr); err != context.Canceled {
		t.Fatalf("with an ended context: %v, want context.Canceled", err)
	}
}
