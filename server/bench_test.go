package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
)

// BenchmarkCheckSend measures CheckSend over gRPC through bufconn (in-process, no
// socket): a fresh number, a number with history, and a reserving check.
func BenchmarkCheckSend(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	const numbers = 1000
	phone := func(i int) string { return fmt.Sprintf("+55119%08d", i%numbers) }
	for i := range numbers {
		if i%3 == 0 {
			h.report(b, failed(phone(i), 131049, t0.Add(-48*time.Hour)))
			h.inbound(b, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: phone(i), MessageId: fmt.Sprint("in", i),
				Timestamp: timestamppb.New(t0.Add(-72 * time.Hour))})
		}
	}
	// The baseline: the gRPC health Check on the same server and connection, so that
	// the figures below can be quoted as ratios measured in the same run.
	b.Run("health-baseline", func(b *testing.B) {
		hc := healthpb.NewHealthClient(h.c.Conn())
		req := &healthpb.HealthCheckRequest{}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := hc.Check(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fresh", func(b *testing.B) {
		req := marketing("+5521987654321")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := h.api.CheckSend(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("history", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := h.api.CheckSend(ctx, marketing(phone(i))); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("reserve", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			req := marketing(fmt.Sprintf("+55219%08d", i))
			req.Reserve, req.MessageRef = true, fmt.Sprint("r", i)
			if _, err := h.api.CheckSend(ctx, req); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := h.api.CheckSend(ctx, marketing(phone(i))); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

// BenchmarkWebhook1000 measures webhook ingestion: signed 1,000-status bodies
// (failed 131049 for distinct numbers) through the HTTP handler into Badger. The
// events/s figure is b.N*1000 over the elapsed time (reported as events/s).
func BenchmarkWebhook1000(b *testing.B) {
	h, hd := webhookHarness(b)
	n := 0
	bodies := func() []byte {
		var ss []wireStatus
		for range 1000 {
			ss = append(ss, newStatus(fmt.Sprint("wamid.", n), "failed", t0, fmt.Sprintf("55119%08d", n%1_000_000), 131049))
			n++
		}
		return body(b, pnid, statuses(ss...))
	}
	_ = h
	for b.Loop() {
		b.StopTimer()
		raw := bodies()
		b.StartTimer()
		if code := postSigned(b, hd, raw); code != 200 {
			b.Fatal(code)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkReportDurability measures ReportResult over bufconn on an on-disk Badger
// store in the default mode (survives a process crash) and in strict mode (synced
// writes: survives power loss), in the same run.
func BenchmarkReportDurability(b *testing.B) {
	for _, mode := range []string{DurabilityDefault, DurabilityStrict} {
		b.Run(mode, func(b *testing.B) {
			st, err := badger.Open(badger.Options{Dir: b.TempDir(), SyncWrites: mode == DurabilityStrict})
			if err != nil {
				b.Fatal(err)
			}
			h := newHarnessOn(b, func(storage.Store, Config) storage.Store { return st })
			b.Cleanup(func() { st.Close() })
			ctx := context.Background()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				req := failed(fmt.Sprintf("+55119%08d", i), 131049, t0)
				req.MessageId = fmt.Sprint("w", i)
				if _, err := h.api.ReportResult(ctx, req); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
		})
	}
}
