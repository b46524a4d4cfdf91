package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestBusinessCacheBounded: checks naming ever new business_ids keep the cache
// at its size, and a business with nothing stored is never cached as one with
// state.
func TestBusinessCacheBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BusinessCache = 100 })
	for i := range 5000 {
		req := marketing(brPhone)
		req.BusinessId = fmt.Sprintf("tenant-%d", i)
		h.check(t, req)
	}
	if n := h.srv.biz.size(); n > 100 {
		t.Fatalf("%d businesses cached; size 100", n)
	}
	h.srv.biz.mu.RLock()
	stored := h.srv.biz.stored.len()
	h.srv.biz.mu.RUnlock()
	if stored != 0 {
		t.Fatalf("%d businesses with nothing stored were cached as stored", stored)
	}
}

// TestBusinessCacheEvictionKeepsState: a business evicted from the cache is read
// back with its policy and template pauses.
func TestBusinessCacheEvictionKeepsState(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BusinessCache = 4 })
	ctx := context.Background()
	if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: &sgv1.Policy{BlockedRegions: []string{"BR"}}}); err != nil {
		t.Fatal(err)
	}
	pause := failed("+5521987654321", 132015, t0)
	pause.BusinessId = "globex"
	h.report(t, pause)
	// Other businesses with and without state push both out.
	for i := range 50 {
		id := fmt.Sprintf("other-%d", i)
		if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: id, Policy: &sgv1.Policy{RequireOptIn: proto.Bool(true)}}); err != nil {
			t.Fatal(err)
		}
		req := marketing(brPhone)
		req.BusinessId = "junk-" + id
		h.check(t, req)
	}
	if h.srv.biz.peek("acme") != nil || h.srv.biz.peek("globex") != nil {
		t.Fatal("the test did not evict acme and globex")
	}
	loads := h.srv.biz.loads.Load()
	if r := h.check(t, marketing(brPhone)); r.GetVerdict() != sgv1.Verdict_VERDICT_DENY || rules(r)[0] != sgv1.Rule_RULE_REGION_BLOCKED {
		t.Fatalf("acme after eviction: %v", r)
	}
	g := marketing("+5521912345678")
	g.BusinessId = "globex"
	if r := h.check(t, g); r.GetVerdict() != sgv1.Verdict_VERDICT_DEFER || rules(r)[0] != sgv1.Rule_RULE_TEMPLATE_PAUSED {
		t.Fatalf("globex after eviction: %v", r)
	}
	if got := h.srv.biz.loads.Load() - loads; got != 2 {
		t.Fatalf("%d loads for two evicted businesses", got)
	}
}

// TestBusinessCacheMessagingLimitAcrossEvictions: a business evicted and read
// back while its reservations run never lets more through than its messaging
// limit (the lock of a business outlives its cache entries).
func TestBusinessCacheMessagingLimitAcrossEvictions(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BusinessCache = 2 })
	ctx := context.Background()
	if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: &sgv1.Policy{MessagingLimit: proto.Int32(5)}}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() { // evicts acme over and over
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("other-%d", i%8)
			if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: id, Policy: &sgv1.Policy{RequireOptIn: proto.Bool(i%2 == 0)}}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	// Batches of 40 concurrent reservations until acme has been loaded again
	// at least 10 times while they ran (on a loaded machine the churn may get
	// few turns during one batch); at most 50 batches.
	var allowed atomic.Int32
	before := h.srv.biz.loads.Load()
	for batch := 0; batch < 50 && h.srv.biz.loads.Load()-before < 10; batch++ {
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				req := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: fmt.Sprintf("+55119%08d", 10000000+batch*40+i),
					Category: sgv1.Category_CATEGORY_UTILITY, Template: "otp", Reserve: true, MessageRef: fmt.Sprintf("m%d.%d", batch, i)}
				resp, err := h.c.Check(ctx, req)
				if err != nil {
					t.Error(err)
					return
				}
				if resp.GetVerdict() == sgv1.Verdict_VERDICT_ALLOW {
					allowed.Add(1)
				}
			})
		}
		wg.Wait()
	}
	close(stop)
	churn.Wait()
	if n := allowed.Load(); n != 5 {
		t.Fatalf("%d reservations allowed under a messaging limit of 5", n)
	}
	if n := h.srv.biz.loads.Load() - before; n < 10 {
		t.Fatalf("only %d loads: acme was not evicted while reserving", n)
	}
}
