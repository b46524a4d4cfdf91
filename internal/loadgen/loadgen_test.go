package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sendguard/sendguard/identity"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
	"github.com/sendguard/sendguard/webhook"
)

// TestNumbers: the audience's numbers are distinct, canonical and valid.
func TestNumbers(t *testing.T) {
	const n = 200_000
	seen := make(map[string]bool, n)
	for i := range n {
		s := Number(i)
		if seen[s] {
			t.Fatalf("Number(%d) = %s repeats", i, s)
		}
		seen[s] = true
		if i%97 == 0 {
			p, err := identity.Parse(s, "")
			if err != nil || p.E164 != s {
				t.Fatalf("Number(%d) = %s parses as %+v, %v", i, s, p, err)
			}
			if Digits(i) != s[1:] {
				t.Fatalf("Digits(%d) = %s", i, Digits(i))
			}
		}
	}
	for _, i := range []int{MaxNumbers - 1, MaxNumbers - len(slots)} {
		if _, err := identity.Parse(Number(i), ""); err != nil {
			t.Fatalf("Number(%d) = %s: %v", i, Number(i), err)
		}
	}
	p := newPermute(1000)
	hit := make([]bool, 1000)
	for k := range uint64(1000) {
		hit[p.at(k)] = true
	}
	for i, h := range hit {
		if !h {
			t.Fatalf("permutation misses %d", i)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h hist
	for i := 1; i <= 10_000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := got - c.want; d < -c.want/100 || d > c.want/100 {
			t.Errorf("quantile(%v) = %v, want %v ± 1 %%", c.q, got, c.want)
		}
	}
}

// TestWebhookBody: the generated bodies are webhooks Meta could send.
func TestWebhookBody(t *testing.T) {
	body := webhookBody(nil, "bench", "x", 20, func(k int) int { return k }, time.Unix(1_780_000_000, 0))
	events, stats, err := webhook.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 20 || len(stats.Skipped) != 0 {
		t.Fatalf("%d events, skipped %v:\n%s", len(events), stats.Skipped, body)
	}
	if events[3].Phone != Digits(3) || events[19].ErrorCode != 131049 {
		t.Fatalf("events: %+v", events)
	}
}

// TestRun is a miniature `sendguard-bench`: every workload runs against an
// in-process server and the table has a row for each.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every workload")
	}
	cfg := DefaultConfig()
	cfg.Numbers, cfg.ScaleBase = 3000, 1000
	cfg.Duration, cfg.Rounds = 400*time.Millisecond, 2
	cfg.Concurrency, cfg.WebhookBatch = 8, 50
	var out bytes.Buffer
	cfg.Out = &out
	if err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	table := out.String()
	for _, want := range []string{
		"no-op echo stream (baseline)", "CheckSendStream", "health Check ×8 (baseline)", "CheckSend ×8",
		"CheckSend ×1", "scale: p99 at 3000 / p99 at 1000 numbers", "reserving stream",
		"ReportResult ×8, default durability", "ReportResult ×8, strict durability",
		"webhook events (POSTs of 50), default durability", "webhook events (POSTs of 50), strict durability",
		"bytes on disk per stored number",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("no %q row:\n%s", want, table)
		}
	}
	if strings.Contains(table, "errors)") {
		t.Errorf("errors in the run:\n%s", table)
	}
}

// TestSeedMix: the seeded numbers divide as asked: with history, never seeded
// (fresh), and the rest with one utility message.
func TestSeedMix(t *testing.T) {
	const n = 20_000
	now := time.Now()
	for _, m := range []mix{{0.3, 0}, {0.3, 0.7}, {0.1, 0.5}} {
		var fresh, plain, hist int
		for i := range n {
			switch evs := seedEvents(i, m, now); len(evs) {
			case 0:
				fresh++
			case 1:
				plain++
			default:
				hist++
			}
		}
		near := func(got int, want float64) bool { return math.Abs(float64(got)/n-want) < 0.02 }
		if !near(hist, m.history) || !near(fresh, m.fresh) || !near(plain, 1-m.history-m.fresh) {
			t.Errorf("%+v: %d with history, %d fresh, %d plain of %d", m, hist, fresh, plain, n)
		}
		if got := m.stored(n); got != n-fresh {
			t.Errorf("%+v: stored(%d) = %d, want the %d seeded", m, n, got, n-fresh)
		}
	}
}

// TestFlow is a miniature flow workload: two campaigns against an in-process
// server and as the no-op flow; every status is accepted by both, and the
// table has a row per step and the end-to-end ratio.
func TestFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the flow")
	}
	cfg := DefaultConfig()
	cfg.Numbers, cfg.Campaign, cfg.WebhookBatch = 3000, 1000, 200
	cfg.Workloads = []string{WFlow}
	var out, log bytes.Buffer
	cfg.Out, cfg.Log = &out, &log
	if err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out.String(), log.String())
	}
	table := out.String()
	for _, want := range []string{
		"flow: validate (stream), no-op (baseline)", "flow: reserve each ALLOW (stream)",
		"flow: statuses (webhook POSTs of 200)", "flow: guarded sends end to end (2 campaigns of 1000 of 3000 numbers)",
		"flow campaign 2: 1000 numbers", "record cache during the flow",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("no %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "errors)") || strings.Contains(table, "cut at") {
		t.Errorf("errors in the run:\n%s", table)
	}
}

// TestFlowCampaignDefault: without --campaign a campaign is a tenth of the
// numbers (the 1 M of 10 M, make bench-flow's 100 k of 1 M), and a size
// the population cannot hold twice is refused by name.
func TestFlowCampaignDefault(t *testing.T) {
	for _, tc := range []struct {
		numbers, campaign, want int
	}{
		{10_000_000, 0, 1_000_000},
		{1_000_000, 0, 100_000},
		{5, 0, 1},
		{3000, 1000, 1000},
		{1000, 700, -1}, // 1,050 needed with the default overlap of a half
		{1000, -1, -1},
	} {
		cfg := DefaultConfig()
		cfg.Numbers, cfg.Campaign = tc.numbers, tc.campaign
		err := cfg.validateFlow()
		switch {
		case tc.want < 0 && !errors.Is(err, errFlowConfig):
			t.Errorf("numbers %d, campaign %d: err %v, want a flow error", tc.numbers, tc.campaign, err)
		case tc.want >= 0 && (err != nil || cfg.Campaign != tc.want):
			t.Errorf("numbers %d, campaign %d: campaign %d, err %v; want %d", tc.numbers, tc.campaign, cfg.Campaign, err, tc.want)
		}
	}
}

// TestFlowStatuses: the flow's bodies are webhooks Meta could send, and its
// failures follow the configured codes and rate.
func TestFlowStatuses(t *testing.T) {
	cfg := DefaultConfig()
	w := &workloads{cfg: &cfg, run: "r"}
	part := []flowStatus{{1, "sent", 0, 0}, {2, "failed", 131026, 1}, {3, "read", 0, 2}}
	events, stats, err := webhook.Parse(w.flowBody(0, part))
	if err != nil || len(events) != 3 || len(stats.Skipped) != 0 {
		t.Fatalf("%d events, %v, %v", len(events), stats.Skipped, err)
	}
	if events[1].ErrorCode != 131026 || events[2].CallbackData != w.flowRef(0, 2) || events[0].Phone != Digits(1) {
		t.Fatalf("events: %+v", events)
	}
	const n = 100_000
	count := map[int]int{}
	for k := range n {
		count[w.failCode(0, k)]++
	}
	near := func(got int, want float64) bool { return math.Abs(float64(got)/n-want) < 0.005 }
	if !near(n-count[0], cfg.FailRate) {
		t.Errorf("%d of %d failed, want %v", n-count[0], n, cfg.FailRate)
	}
	for _, fc := range cfg.FailCodes {
		if !near(count[fc.Code], cfg.FailRate*fc.Share) {
			t.Errorf("code %d: %d of %d, want %v", fc.Code, count[fc.Code], n, cfg.FailRate*fc.Share)
		}
	}
	if fc, err := ParseFailCodes(FormatFailCodes(DefaultFailCodes)); err != nil || len(fc) != 4 || fc[1] != DefaultFailCodes[1] {
		t.Fatalf("ParseFailCodes(FormatFailCodes) = %v, %v", fc, err)
	}
	if _, err := ParseFailCodes("131049"); err == nil {
		t.Fatal("a code without a share was taken")
	}
}

// TestServeOnlyProfiles runs the serve-only server with both profiles, as
// memcap.sh does: a SIGUSR1 after "ready" replaces the heap profile with a whole
// one, and the CPU profile is written when the server stops.
func TestServeOnlyProfiles(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Numbers = 200
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.MemProfile, cfg.CPUProfile = filepath.Join(dir, "heap.pprof"), filepath.Join(dir, "cpu.pprof")
	out := &readyWriter{ready: make(chan struct{})}
	var log syncBuffer
	cfg.Out, cfg.Log = out, &log
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ServeOnly(ctx, cfg) }()
	select {
	case <-out.ready:
	case err := <-done:
		t.Fatalf("ServeOnly returned before it was ready: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the server was not ready after 2 minutes")
	}

	for _, want := range []int{1, 2} { // a second signal replaces the first profile
		before, _ := os.Stat(cfg.MemProfile)
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			st, err := os.Stat(cfg.MemProfile)
			if err == nil && (before == nil || !os.SameFile(before, st)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("signal %d: no new heap profile after a minute; log:\n%s", want, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		checkProfile(t, cfg.MemProfile, "inuse_space")
	}
	if m, _ := filepath.Glob(cfg.MemProfile + ".*"); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v; log:\n%s", err, log.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the server did not stop within 2 minutes")
	}
	checkProfile(t, cfg.CPUProfile, "cpu")
}

// checkProfile fails unless path is a whole gzipped pprof profile naming want
// among its sample types.
func checkProfile(t *testing.T, path, want string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("%s: cut short: %v", path, err)
	}
	if !bytes.Contains(b, []byte(want)) {
		t.Fatalf("%s: no %q in the profile's strings (%d bytes)", path, want, len(b))
	}
}

// readyWriter takes the serve-only server's output and closes ready at its
// "bench server ready" line.
type readyWriter struct {
	syncBuffer
	once  sync.Once
	ready chan struct{}
}

func (w *readyWriter) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if strings.Contains(w.String(), "bench server ready") {
		w.once.Do(func() { close(w.ready) })
	}
	return n, err
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestFlowSlices sends two campaigns in slices of 150 numbers (150, 150, 100)
// against an in-process server, then as the no-op flow: every slice's ALLOWs
// are reserved under message_refs distinct across the campaign, every guarded
// send's record holds exactly one send of the campaign, delivered or failed as
// failCode says for its index, campaign 2's first slice (all in campaign 1's
// tail) has nothing to reserve, the steps count every row, and the no-op flow
// carries the same sends in the same slices with the same statuses, its
// receiver taking every status posted. The record cache's counters read from
// the server's /metrics are the store's own.
func TestFlowSlices(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the flow")
	}
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Numbers, cfg.Campaign, cfg.Slice, cfg.WebhookBatch = 1000, 400, 150, 40
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	tg, err := startLocal(ctx, t.TempDir(), server.DurabilityDefault, 1, cfg.RecordCache, &log)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.close()
	if err := seedStore(ctx, tg.store, 0, cfg.Numbers, cfg.mix(), 2, func(int) {}); err != nil {
		t.Fatal(err)
	}
	w := &workloads{cfg: &cfg, t: tg, run: "s", logf: func(string, ...any) {}}
	noop, err := startNoopHook([]byte("noop"))
	if err != nil {
		t.Fatal(err)
	}
	defer noop.close()

	for c := range 2 {
		audience := w.flowAudience(c)
		r, allowed, err := w.flowCampaign(ctx, c, audience, nil, nil)
		if err != nil {
			t.Fatalf("campaign %d: %v\n%s", c+1, err, log.String())
		}
		if len(allowed) != 3 || (c == 1) != (len(allowed[0]) == 0) {
			t.Fatalf("campaign %d: sends per slice %v; want 3 slices, only campaign 2's first empty", c+1, lens(allowed))
		}
		prefix := "flow.s." + strconv.Itoa(c) + "."
		var guarded, statuses int64
		indexes := map[int]bool{}
		for i, part := range allowed {
			slice := audience[i*150 : min(len(audience), (i+1)*150)]
			guarded += int64(len(part))
			for _, snd := range part {
				if !slices.Contains(slice, snd.number) {
					t.Fatalf("campaign %d, slice %d: number %d is not in its audience", c+1, i, snd.number)
				}
				if indexes[snd.index] {
					t.Fatalf("campaign %d: send index %d used twice", c+1, snd.index)
				}
				indexes[snd.index] = true
				ct, err := tg.store.GetContact(ctx, storage.ContactKey{Business: Business, ID: Number(snd.number)})
				if err != nil {
					t.Fatal(err)
				}
				var mine []validator.Send
				for _, s := range ct.Rel.Sends {
					if strings.HasPrefix(s.Ref, prefix) {
						mine = append(mine, s)
					}
				}
				if len(mine) != 1 || mine[0].Ref != w.flowRef(c, snd.index) {
					t.Fatalf("campaign %d, number %d: sends %+v; want one, %s", c+1, snd.number, mine, w.flowRef(c, snd.index))
				}
				failed := w.failCode(c, snd.index) != 0
				if mine[0].Failed != failed || mine[0].Delivered == failed {
					t.Errorf("campaign %d, number %d, send %d: failed %v, delivered %v; want failed %v", c+1, snd.number, snd.index, mine[0].Failed, mine[0].Delivered, failed)
				}
				if failed {
					statuses++ // FAILED alone
				} else {
					statuses += 3 // SENT, DELIVERED, READ
				}
			}
		}
		if guarded == 0 || guarded != r.guarded {
			t.Fatalf("campaign %d: %d guarded sends in the slices, %d counted", c+1, guarded, r.guarded)
		}
		if v, st := r.steps[0].r.ops, r.steps[2].r.ops; v != int64(len(audience)) || st != statuses {
			t.Fatalf("campaign %d: %d rows validated, %d statuses; want %d, %d", c+1, v, st, len(audience), statuses)
		}
		if r.total <= 0 || r.steps[0].r.note != "" {
			t.Fatalf("campaign %d: total %s, note %q", c+1, r.total, r.steps[0].r.note)
		}

		taken := noop.taken.Load()
		b, again, err := w.flowCampaign(ctx, c, audience, allowed, noop)
		if err != nil {
			t.Fatal(err)
		}
		if b.guarded != r.guarded || !slices.EqualFunc(again, allowed, slices.Equal) {
			t.Fatalf("campaign %d, no-op flow: %d sends in %v, want %d in %v", c+1, b.guarded, lens(again), r.guarded, lens(allowed))
		}
		if posted := b.steps[2].r.ops; posted != statuses || noop.taken.Load()-taken != posted {
			t.Fatalf("campaign %d: no-op receiver took %d statuses of %d posted; sendguard's flow posted %d", c+1, noop.taken.Load()-taken, posted, statuses)
		}
	}

	remote, ok := (&workloads{t: &target{httpAddr: tg.httpAddr}}).recordCache(ctx)
	local, _ := tg.store.RecordCache()
	if !ok || remote != local || local.Hits == 0 {
		t.Fatalf("record cache from /metrics %+v (%v), from the store %+v", remote, ok, local)
	}
}

// TestRemoteRecordCache: against a separate server, the flow reads the record
// cache's counters from its /metrics (samples without labels, separated by
// blanks, with or without a timestamp; comments and labelled samples skipped),
// and a server without them has no cache.
func TestRemoteRecordCache(t *testing.T) {
	body := "# HELP sendguard_record_cache_hits_total Reads.\n# TYPE sendguard_record_cache_hits_total counter\n" +
		"sendguard_record_cache_hits_total 1.5e+06\nsendguard_record_cache_misses_total 500000\n" +
		"sendguard_record_cache_bytes\t6.7e+07\nsendguard_record_cache_limit_bytes 6.7108864e+07 1700000000000\n\n" +
		"grpc_server_handled_total{grpc_code=\"OK\"} 9\nprocess_resident_memory_bytes 1.2e+09\n"
	var withCache atomic.Bool
	withCache.Store(true)
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		if withCache.Load() {
			_, _ = io.WriteString(rw, body)
		} else {
			_, _ = io.WriteString(rw, "process_resident_memory_bytes 1\n")
		}
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Close()
	w := &workloads{t: &target{httpAddr: lis.Addr().String()}}
	st, ok := w.recordCache(context.Background())
	want := storage.RecordCacheStats{Hits: 1_500_000, Misses: 500_000, Bytes: 67_000_000, Limit: 64 << 20}
	if !ok || st != want {
		t.Fatalf("recordCache = %+v, %v; want %+v", st, ok, want)
	}
	if rss, err := remoteRSS(context.Background(), lis.Addr().String()); err != nil || rss != 1_200_000_000 {
		t.Fatalf("remoteRSS = %d, %v", rss, err)
	}
	if m, err := remoteMetrics(context.Background(), lis.Addr().String()); err != nil || len(m) != 5 {
		t.Fatalf("remoteMetrics = %v, %v; want the 5 samples without labels", m, err)
	}
	withCache.Store(false)
	if st, ok := w.recordCache(context.Background()); ok {
		t.Fatalf("a server without the counters has a cache: %+v", st)
	}
}

func lens(s [][]flowSend) []int {
	out := make([]int, len(s))
	for i, p := range s {
		out[i] = len(p)
	}
	return out
}
