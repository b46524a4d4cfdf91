package server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/webhook"
)

// callerTrace is the W3C trace context a caller sends.
const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerParent  = "00-" + callerTraceID + "-00f067aa0ba902b7-01"
)

// traced runs a server whose spans go to the returned recorder, and sends it a
// unary check, a stream of three rows, a health check and a webhook POST, each
// carrying the caller's trace context.
func traced(t *testing.T, tp trace.TracerProvider) {
	t.Helper()
	srv := runServer(t, func(c *Config) {
		c.TracerProvider = tp
		c.WebhookSecret = testSecret
	})
	c := dialServer(t, srv)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", callerParent)

	if _, err := c.Check(ctx, marketing(brPhone)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(ctx, &sgv1.CheckSendRequest{Phone: brPhone}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("check without business_id: %v", err)
	}
	st, err := c.CheckStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := st.Send(marketing(brPhone)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err == nil {
		t.Fatal("stream answered past its rows")
	}
	if _, err := healthpb.NewHealthClient(c.Conn()).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}

	b := body(t, pnid, statuses(newStatus("wamid.T1", "delivered", time.Now(), "5511987654321", 0)))
	req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(b))
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(b, testSecret))
	req.Header.Set("traceparent", callerParent)
	rec := httptest.NewRecorder()
	srv.HTTPHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("webhook POST: %d %s", rec.Code, rec.Body)
	}
}

// TestTracing: with a tracer provider, each SendGuard RPC is one server span
// that continues the caller's trace (a stream is one span, not one per row),
// with its gRPC status; a webhook POST is a span of a trace of its own, linked
// to the context it claimed (anyone can send one); health checks are not
// traced.
func TestTracing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	traced(t, tp)

	// A server span ends when its handler's last event is handled, which may
	// come after the client has its answer: wait (bounded) for the four.
	spans := rec.Ended()
	for deadline := time.Now().Add(10 * time.Second); len(spans) < 4 && time.Now().Before(deadline); spans = rec.Ended() {
		time.Sleep(10 * time.Millisecond)
	}
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	want := map[string]int{
		"sendguard.v1.SendGuard/CheckSend":       2,
		"sendguard.v1.SendGuard/CheckSendStream": 1,
		"POST " + WebhookPath:                    1,
	}
	for name, n := range want {
		if len(byName[name]) != n {
			t.Errorf("%d spans named %q, want %d", len(byName[name]), name, n)
		}
	}
	if len(spans) != 4 {
		for _, s := range spans {
			t.Logf("span %q", s.Name())
		}
		t.Fatalf("%d spans, want 4 (health checks untraced)", len(spans))
	}

	codesSeen := map[string]bool{}
	for _, name := range []string{"sendguard.v1.SendGuard/CheckSend", "sendguard.v1.SendGuard/CheckSendStream"} {
		for _, s := range byName[name] {
			if s.SpanKind() != trace.SpanKindServer {
				t.Errorf("%s: kind %v", name, s.SpanKind())
			}
			if got := s.SpanContext().TraceID().String(); got != callerTraceID {
				t.Errorf("%s: trace %s, want the caller's %s", name, got, callerTraceID)
			}
			codesSeen[attr(s, "rpc.response.status_code").String()] = true
		}
	}
	if !codesSeen["OK"] || !codesSeen["INVALID_ARGUMENT"] {
		t.Errorf("gRPC status codes on the spans: %v, want OK and INVALID_ARGUMENT", codesSeen)
	}

	hook := byName["POST "+WebhookPath][0]
	if hook.SpanContext().TraceID().String() == callerTraceID || hook.Parent().IsValid() {
		t.Errorf("webhook span joined the trace its sender named (trace %s)", hook.SpanContext().TraceID())
	}
	if links := hook.Links(); len(links) != 1 || links[0].SpanContext.TraceID().String() != callerTraceID {
		t.Errorf("webhook span links %v, want one to the claimed context", links)
	}
	if got := attr(hook, "http.response.status_code").AsInt64(); got != http.StatusOK {
		t.Errorf("webhook span status code %d", got)
	}
}

// TestTracingOff: without a tracer provider the server installs nothing, not
// even what would use OpenTelemetry's global provider.
func TestTracingOff(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	traced(t, nil)
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans with tracing off", n)
	}
}

// attr returns the span's attribute key (an empty value when it has none).
func attr(s sdktrace.ReadOnlySpan, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// BenchmarkCheckSendTracing measures a CheckSend (a fresh number, through
// bufconn) with tracing off (no provider: nothing installed) and on (every
// call sampled, spans batched to an exporter that drops them), in the same run:
// quote on/off as a ratio.
func BenchmarkCheckSendTracing(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			var tp *sdktrace.TracerProvider
			if mode == "on" {
				tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			}
			h := newHarness(b, func(c *Config) {
				if tp != nil {
					c.TracerProvider = tp
				}
			})
			ctx := context.Background()
			req := marketing(brPhone)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.c.Check(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
