package chaos

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// latencies collects durations and summarises them.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// p returns the q-quantile (0 < q <= 1) and the count.
func (l *latencies) p(q float64) (time.Duration, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0, 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	i := min(len(s)-1, int(q*float64(len(s))))
	return s[i], len(s)
}

// TestChaosNeverReadingStreams: 200 CheckSendStreams on 10 connections of a stock
// grpc-go client (whose receive windows grow by its BDP estimate) send rows and
// never read an answer, for 20 s, from another process at the lowest CPU
// priority. Meanwhile a health check and a fresh CheckSend on another connection
// stay fast. The same 200 streams reading their answers, against a fresh server
// first, are the baseline: what never reading adds to the server's memory is
// bounded by the stream budget, one 64 KiB window a stream and gRPC's queue of
// unsent answers (64 KiB of them a stream).
func TestChaosNeverReadingStreams(t *testing.T) {
	reading := streamFlood(t, "read")
	never := streamFlood(t, "never")
	const extra = 16<<20 + 200*(64<<10+256<<10) + 32<<20 // budget, windows, queues, slack
	figure(t, "stream flood, clients reading: the attacker", reading.attacker, "none")
	figure(t, "stream flood, clients reading: server RSS", reading.rss(), "baseline")
	figure(t, "never-reading streams: the attacker", never.attacker, "none")
	figure(t, "never-reading streams: server RSS", never.rss(), fmt.Sprintf("peak growth < the reading run's + %s, and < 512.0 MiB", mib(extra)))
	for _, r := range []floodRun{reading, never} {
		figure(t, r.name+": health check meanwhile", fmt.Sprintf("p99 %v, max %v over %d", r.h99, r.hmax, r.n), "max < 1s")
		figure(t, r.name+": fresh CheckSend meanwhile", fmt.Sprintf("p99 %v, max %v over %d", r.c99, r.cmax, r.n), "max < 1s")
		if r.failures > 0 {
			t.Errorf("%s: %d health checks or fresh calls failed", r.name, r.failures)
		}
		if r.hmax > time.Second || r.cmax > time.Second {
			t.Errorf("%s: health max %v, fresh CheckSend max %v; bound 1s", r.name, r.hmax, r.cmax)
		}
	}
	if g := never.peak - never.idle; g > reading.peak-reading.idle+extra || g > 512<<20 {
		t.Errorf("never-reading streams grew the server by %s (reading: %s)", mib(g), mib(reading.peak-reading.idle))
	}
}

// floodRun is what one stream flood measured.
type floodRun struct {
	name, attacker       string
	idle, peak           int64
	h99, hmax, c99, cmax time.Duration
	n, failures          int
}

func (r floodRun) rss() string {
	return fmt.Sprintf("idle %s, peak %s (+%s)", mib(r.idle), mib(r.peak), mib(r.peak-r.idle))
}

// streamFlood starts a server, floods it with 200 streams for 20 s (mode "read":
// the clients read every answer; "never": they read none) and probes it
// every 100 ms meanwhile.
func streamFlood(t *testing.T, mode string) floodRun {
	s := start(t, t.TempDir(), nil)
	r := floodRun{name: "never-reading streams", idle: s.rss()}
	if mode == "read" {
		r.name = "stream flood, clients reading"
	}
	peak := s.peakRSS()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	wait := attack(t, ctx, "TestChaosNeverReadingAttacker", s.grpc+" 10 20 20s "+mode)
	probe := s.dial(t)
	health := healthpb.NewHealthClient(probe.Conn())
	var hl, cl latencies
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		t0 := time.Now()
		hr, err := health.Check(pctx, &healthpb.HealthCheckRequest{Service: "sendguard.v1.SendGuard"})
		hl.add(time.Since(t0))
		if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			r.failures++
		}
		t1 := time.Now()
		_, err = probe.Check(pctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+5511976543210", Category: sgv1.Category_CATEGORY_MARKETING, Template: "promo"})
		cl.add(time.Since(t1))
		if err != nil {
			r.failures++
		}
		pcancel()
	}
	s.alive(t)
	r.peak = peak()
	r.attacker = attackerLine(wait())
	r.h99, r.n = hl.p(0.99)
	r.hmax, _ = hl.p(1)
	r.c99, _ = cl.p(0.99)
	r.cmax, _ = cl.p(1)
	s.stop(t)
	return r
}

// attackerLine is the attacker's summary line from its output.
func attackerLine(out string) string {
	for _, line := range splitLines(out) {
		if i := strings.Index(line, "ATTACK "); i >= 0 {
			return line[i+len("ATTACK "):]
		}
	}
	return "no summary; output:\n" + out
}

// TestChaosNeverReadingAttacker is the attacker of TestChaosNeverReadingStreams,
// run in its own process (attack): "ADDR CONNS STREAMS-PER-CONN DURATION MODE",
// MODE "read" (every answer is read) or "never".
func TestChaosNeverReadingAttacker(t *testing.T) {
	args := strings.Fields(os.Getenv(attackEnv))
	if len(args) != 5 {
		t.Skip("run by TestChaosNeverReadingStreams")
	}
	conns, _ := strconv.Atoi(args[1])
	perConn, _ := strconv.Atoi(args[2])
	d, err := time.ParseDuration(args[3])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var sent, streams atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		c, err := client.Dial(args[0], client.Options{Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() }) // every connection stays open until the attack ends
		for range perConn {
			st, err := c.CheckStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			streams.Add(1)
			if args[4] == "read" {
				wg.Go(func() {
					for st.Context().Err() == nil {
						if _, err := st.Recv(); err != nil {
							return
						}
					}
				})
			}
			wg.Go(func() {
				req := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+5511987654321", Category: sgv1.Category_CATEGORY_UTILITY, Template: "order_update"}
				for n := 0; n < 2_000_000 && ctx.Err() == nil; n++ { // bounded in count and time
					if st.Send(req) != nil {
						return
					}
					sent.Add(1)
				}
			})
		}
	}
	<-ctx.Done()
	wg.Wait()
	how := "without reading an answer"
	if args[4] == "read" {
		how = "reading every answer"
	}
	t.Logf("ATTACK %d streams sent %d rows in %v %s", streams.Load(), sent.Load(), d, how)
}

// TestChaosTenants: 100,000 read-only checks, each naming a business_id never seen
// before, leave the server's memory and its metric series where they were.
func TestChaosTenants(t *testing.T) {
	s := start(t, t.TempDir(), nil)
	c := s.dial(t)
	ctx := context.Background()
	series := func() int {
		_, body := s.get(t, "/metrics")
		n := 0
		for _, line := range splitLines(body) {
			if line != "" && line[0] != '#' {
				n++
			}
		}
		return n
	}
	// Warm up: one business, so that idle memory includes what any traffic needs.
	for range 1000 {
		if _, err := c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+5511987654321", Category: sgv1.Category_CATEGORY_UTILITY}); err != nil {
			t.Fatal(err)
		}
	}
	before, seriesBefore := s.rss(), series()
	peak := s.peakRSS()
	const tenants, workers = 100_000, 8
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > tenants || time.Since(start) > 3*time.Minute {
					return
				}
				_, err := c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: fmt.Sprintf("tenant-%06d", i), Phone: "+5511987654321", Category: sgv1.Category_CATEGORY_UTILITY})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	top := peak()
	s.alive(t)
	after, seriesAfter := s.rss(), series()
	done := min(next.Load(), tenants)
	figure(t, "tenants: read-only checks with new business_ids", fmt.Sprintf("%d in %v", done, time.Since(start).Round(time.Millisecond)), "100,000")
	figure(t, "tenants: server RSS", fmt.Sprintf("before %s, peak %s, after %s", mib(before), mib(top), mib(after)), "peak growth < 64.0 MiB")
	figure(t, "tenants: metric series", fmt.Sprintf("before %d, after %d", seriesBefore, seriesAfter), "growth < 50")
	if done < tenants {
		t.Errorf("only %d checks in 3 minutes", done)
	}
	if top-before > 64<<20 {
		t.Errorf("memory grew %s with %d tenants", mib(top-before), tenants)
	}
	if seriesAfter-seriesBefore >= 50 {
		t.Errorf("metric series grew from %d to %d", seriesBefore, seriesAfter)
	}
}

func splitLines(s string) []string {
	var out []string
	for s != "" {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

// rawMessage is a request's wire bytes as a client wrote them (Go's protobuf
// library will not marshal invalid UTF-8; other languages' clients send it).
type rawMessage []byte

// rawCodec sends rawMessages as they are and decodes answers as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(rawMessage))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// wireCheck builds a utility CheckSendRequest with a raw template.
func wireCheck(requestID, phone, template string) rawMessage {
	field := func(b []byte, n protowire.Number, v string) []byte {
		return protowire.AppendString(protowire.AppendTag(b, n, protowire.BytesType), v)
	}
	var b []byte
	b = field(b, 1, "acme")
	b = field(b, 2, phone)
	b = protowire.AppendVarint(protowire.AppendTag(b, 4, protowire.VarintType), uint64(sgv1.Category_CATEGORY_UTILITY))
	b = field(b, 5, template)
	return field(b, 7, requestID)
}

// TestChaosBadBytesStream: a CheckSendStream of 20,000 rows of which every tenth
// is not valid UTF-8 and every hundredth is cut short: every row is answered, in
// order; the bad ones get INVALID_ARGUMENT and the stream goes on.
func TestChaosBadBytesStream(t *testing.T) {
	s := start(t, t.TempDir(), nil)
	c := s.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := c.Conn().NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/sendguard.v1.SendGuard/CheckSendStream", grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	const rows = 20_000
	go func() {
		for i := range rows {
			id := fmt.Sprint(i)
			row := wireCheck(id, fmt.Sprintf("+55119%08d", i), "order_update")
			switch {
			case i%100 == 99:
				row = row[:len(row)-len(id)-1]
			case i%10 == 9:
				row = wireCheck(id, fmt.Sprintf("+55119%08d", i), "order\xff\xfeupdate")
			}
			if st.SendMsg(row) != nil {
				return
			}
		}
		_ = st.CloseSend()
	}()
	start := time.Now()
	var answered, bad, wrongOrder int
	for i := range rows {
		var resp sgv1.CheckSendResponse
		if err := st.RecvMsg(&resp); err != nil {
			t.Fatalf("row %d: the stream broke: %v", i, err)
		}
		answered++
		if resp.GetError() != nil {
			if codes.Code(resp.GetError().GetCode()) != codes.InvalidArgument {
				t.Fatalf("row %d: %v", i, &resp)
			}
			bad++
		}
		if id := resp.GetRequestId(); id != "" && id != fmt.Sprint(i) {
			wrongOrder++
		}
	}
	elapsed := time.Since(start)
	figure(t, "bad bytes in a stream: rows answered", fmt.Sprintf("%d of %d in %v, %d INVALID_ARGUMENT, %d out of order", answered, rows, elapsed.Round(time.Millisecond), bad, wrongOrder), "all, 2,000 bad, 0 out of order")
	if bad != rows/10 || wrongOrder != 0 {
		t.Errorf("%d bad rows (want %d), %d out of order", bad, rows/10, wrongOrder)
	}
	s.alive(t)
}
