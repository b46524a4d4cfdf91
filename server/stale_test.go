package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/redistest"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
	redisstore "github.com/sendguard/sendguard/storage/redis"
)

// TestAcknowledgedStopIsNeverStale races STOP webhooks against checks (and
// reservations) of the same numbers: every check that starts after the STOP's
// POST was answered 200 must be DENY. On Badger with a record cache (the cache must never answer from a record older than an
// acknowledged write), and on two replicas sharing one Redis, STOPs posted to one
// and checks spread over both (Redis has no cache: the replicas read the shared
// record).
func TestAcknowledgedStopIsNeverStale(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stores func(t *testing.T) []storage.Store
	}{
		{"badger with record cache", func(t *testing.T) []storage.Store {
			st, err := badger.Open(badger.Options{InMemory: true, Logger: discardLogger(), RecordCache: 256 << 10})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return []storage.Store{st}
		}},
		{"two replicas on redis", func(t *testing.T) []storage.Store {
			rs := redistest.StartServer(t)
			var sts []storage.Store
			for range 2 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				st, err := redisstore.Open(ctx, redisstore.Options{Addrs: []string{rs.Addr()}})
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				sts = append(sts, st)
			}
			return sts
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var replicas []*harness
			for _, st := range tc.stores(t) {
				replicas = append(replicas, newHarnessOn(t, func(storage.Store, Config) storage.Store { return st }, func(c *Config) {
					c.WebhookSecret = testSecret
					c.PhoneNumberIDs = map[string]string{pnid: "acme"}
				}))
			}
			raceStops(t, replicas)
		})
	}
}

func raceStops(t *testing.T, replicas []*harness) {
	const (
		numbers  = 48
		checkers = 4
		maxCalls = 600 // per checker
	)
	ctx := context.Background()
	phone := func(i int) string { return fmt.Sprintf("+551198765%04d", i) }
	hook := replicas[0].srv.HTTPHandler()
	// Every number has a stored record, read (and so cached) before the race.
	for i := range numbers {
		if _, err := replicas[0].c.Report(ctx, delivered(phone(i), fmt.Sprintf("wamid.d%d", i))); err != nil {
			t.Fatal(err)
		}
		for _, r := range replicas {
			if resp := r.check(t, marketing(phone(i))); resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
				t.Fatalf("%s before its STOP: %v", phone(i), resp)
			}
		}
	}

	var (
		acked    [numbers]atomic.Bool
		allAcked atomic.Bool
		checked  atomic.Int64 // checks that started after their number's STOP was acknowledged
		wg       sync.WaitGroup
	)
	wg.Go(func() {
		defer allAcked.Store(true)
		for i := range numbers {
			stop := body(t, pnid, map[string]any{"messages": []any{map[string]any{
				"from": strings.TrimPrefix(phone(i), "+"), "id": fmt.Sprintf("wamid.stop%d", i),
				"timestamp": fmt.Sprint(t0.Unix()), "type": "text", "text": map[string]string{"body": "STOP"},
			}}})
			if code := postSigned(t, hook, stop); code != http.StatusOK {
				t.Errorf("STOP webhook for %s: %d", phone(i), code)
				return
			}
			acked[i].Store(true)
		}
	})
	for w := range checkers {
		wg.Go(func() {
			r := replicas[w%len(replicas)]
			for k := range maxCalls {
				i := (k*7 + w*13) % numbers
				after := acked[i].Load() // read before the check starts
				req := marketing(phone(i))
				if k%2 == 1 {
					req.Reserve, req.MessageRef = true, fmt.Sprintf("ref.%d.%d", w, k)
				}
				resp, err := r.c.Check(ctx, req)
				if err != nil {
					t.Errorf("check of %s: %v", phone(i), err)
					return
				}
				if after {
					checked.Add(1)
					if resp.GetVerdict() != sgv1.Verdict_VERDICT_DENY {
						t.Errorf("check of %s after its STOP was acknowledged: %v", phone(i), resp)
						return
					}
				}
				if allAcked.Load() && k > maxCalls/2 {
					return
				}
			}
		})
	}
	wg.Wait()
	if checked.Load() == 0 {
		t.Fatal("no check started after an acknowledged STOP: the race tested nothing")
	}
	// And once every STOP is in, every number is denied on every replica.
	for i := range numbers {
		for _, r := range replicas {
			if resp := r.check(t, marketing(phone(i))); resp.GetVerdict() != sgv1.Verdict_VERDICT_DENY {
				t.Fatalf("%s after every STOP: %v", phone(i), resp)
			}
		}
	}
	t.Logf("%d checks started after their number's STOP was acknowledged", checked.Load())
}

func delivered(phone, id string) *sgv1.ReportResultRequest {
	return &sgv1.ReportResultRequest{BusinessId: "acme", Phone: phone, MessageId: id,
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Category: sgv1.Category_CATEGORY_UTILITY, Template: "order_shipped"}
}
