package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// crashRounds is how many kill -9 rounds TestCrashLosesNothing runs: a few in
// `make test`, more with SENDGUARD_CRASH_ROUNDS (`make soak` sets 20).
func crashRounds() int {
	if n, err := strconv.Atoi(os.Getenv("SENDGUARD_CRASH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

type acked struct {
	mu       sync.Mutex
	reports  []string            // phones whose 131049 report was acknowledged
	reserved map[string][]string // phone -> message_refs of acknowledged ALLOWs
}

// both reports whether a report and a reservation have been acknowledged.
func (a *acked) both() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.reports) > 0 && len(a.reserved) > 0
}

// TestCrashLosesNothing kills the server with SIGKILL while 8 clients run reports
// and reserving checks, restarts it on the same data, and finds every acknowledged
// write, and no frequency cap (1 marketing send per 24 h) exceeded. Round after
// round on the same data directory.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	rounds := crashRounds()
	var totalReports, totalReserves int
	for round := range rounds {
		// Odd rounds run in strict durability (synced writes); a process crash
		// must lose nothing in either mode.
		mode := []string{"default", "strict"}[round%2]
		p := startServerArgs(t, bin, data, nil, "--durability", mode)
		c := dial(t, p.grpc)
		a := &acked{reserved: map[string][]string{}}
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for i := 0; ctx.Err() == nil && i < 100_000; i++ {
					if i%2 == 0 {
						phone := fmt.Sprintf("+55119%02d%02d%04d", round, w, i%10000)
						_, err := c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: phone,
							MessageId: fmt.Sprintf("wamid.%d.%d.%d", round, w, i), Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED,
							ErrorCode: 131049, Category: sgv1.Category_CATEGORY_MARKETING})
						if err == nil {
							a.mu.Lock()
							a.reports = append(a.reports, phone)
							a.mu.Unlock()
						}
						continue
					}
					// 40 numbers per round shared by all workers: they race for
					// each number's one send per 24 h.
					phone := fmt.Sprintf("+55219%02d9999%02d", round, rng.IntN(40))
					ref := fmt.Sprintf("ref.%d.%d.%d", round, w, i)
					resp, err := c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING,
						Template: "promo", Reserve: true, MessageRef: ref})
					if err == nil && resp.GetVerdict() == sgv1.Verdict_VERDICT_ALLOW {
						a.mu.Lock()
						a.reserved[phone] = append(a.reserved[phone], ref)
						a.mu.Unlock()
					}
				}
			}()
		}
		// Kill at a random moment once both kinds of write have been
		// acknowledged: a fixed delay killed before the first reservation on a
		// loaded machine.
		for deadline := time.Now().Add(30 * time.Second); !a.both() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
		stop()
		wg.Wait()

		p2 := startServer(t, bin, data)
		c2 := dial(t, p2.grpc)
		vctx := context.Background()
		for _, phone := range a.reports {
			resp, err := c2.Check(vctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING})
			if err != nil || resp.GetVerdict() != sgv1.Verdict_VERDICT_DEFER || resp.GetReasons()[0].GetRule() != sgv1.Rule_RULE_ECOSYSTEM_LIMIT {
				t.Fatalf("round %d: an acknowledged 131049 for %s is lost: %v %v", round, phone, resp, err)
			}
		}
		reserves := 0
		for phone, refs := range a.reserved {
			if len(refs) > 1 {
				t.Fatalf("round %d: %s got %d ALLOWs under a 1-per-24h cap: %v", round, phone, len(refs), refs)
			}
			reserves += len(refs)
			resp, err := c2.Check(vctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING,
				Template: "promo", Reserve: true, MessageRef: refs[0]})
			if err != nil || !resp.GetDuplicate() {
				t.Fatalf("round %d: the acknowledged reservation %s of %s is lost: %v %v", round, refs[0], phone, resp, err)
			}
			ct, err := c2.Contact(vctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: phone})
			if err != nil || len(ct.GetSends()) != 1 {
				t.Fatalf("round %d: %s holds %d sends, want exactly 1: %v", round, phone, len(ct.GetSends()), err)
			}
		}
		if len(a.reports) == 0 || reserves == 0 {
			t.Fatalf("round %d: nothing was acknowledged before the kill (%d reports, %d reservations)", round, len(a.reports), reserves)
		}
		t.Logf("round %d (%s durability): %d reports and %d reservations acknowledged before SIGKILL, all found after restart", round, mode, len(a.reports), reserves)
		totalReports += len(a.reports)
		totalReserves += reserves
		_ = p2.cmd.Process.Signal(syscall.SIGTERM)
		_ = p2.cmd.Wait()
	}
	t.Logf("%d rounds: %d acknowledged reports and %d acknowledged reservations survived kill -9", rounds, totalReports, totalReserves)
}
