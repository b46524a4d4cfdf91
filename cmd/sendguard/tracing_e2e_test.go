package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestTracingEndToEnd: `sendguard serve` with OTEL_EXPORTER_OTLP_ENDPOINT set
// exports a span per RPC over OTLP/HTTP (the default protocol) as
// service.name sendguard, and sends what is still batched when it stops.
func TestTracingEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	var (
		mu    sync.Mutex
		names []string
		svc   []string
	)
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					svc = append(svc, kv.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					names = append(names, s.GetName())
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write([]byte{})
	}))
	defer col.Close()

	bin := buildBinary(t)
	p := startServer(t, bin, t.TempDir(), "OTEL_EXPORTER_OTLP_ENDPOINT="+col.URL, "OTEL_SERVICE_NAME=", "OTEL_TRACES_EXPORTER=", "OTEL_SDK_DISABLED=")
	c := dial(t, p.grpc)
	for range 3 {
		if _, err := c.Check(context.Background(), &sgv1.CheckSendRequest{BusinessId: "biz", Phone: "+5511987654321", Category: sgv1.Category_CATEGORY_UTILITY}); err != nil {
			t.Fatal(err)
		}
	}
	stop(t, p)

	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, name := range names {
		if name == "sendguard.v1.SendGuard/CheckSend" {
			n++
		}
	}
	if n != 3 || len(names) != 3 {
		t.Fatalf("spans exported: %q; want 3 CheckSend", names)
	}
	for _, s := range svc {
		if s != "sendguard" {
			t.Fatalf("service.name %q", s)
		}
	}
}
