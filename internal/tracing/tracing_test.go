package tracing

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// setenv sets the OTEL_* variables of kv for the test, and clears the others
// a developer's shell may have.
func setenv(t *testing.T, kv map[string]string) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, kv[k])
	}
}

// TestFromEnvOff: tracing is off unless an OTLP endpoint is set, and the
// standard ways of turning it off win over an endpoint.
func TestFromEnvOff(t *testing.T) {
	for name, kv := range map[string]map[string]string{
		"nothing set":      {},
		"only a protocol":  {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
		"sdk disabled":     {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "TRUE"},
		"exporter none":    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"},
		"metrics endpoint": {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:4318"},
	} {
		t.Run(name, func(t *testing.T) {
			setenv(t, kv)
			tp, err := FromEnv(context.Background())
			if tp != nil || err != nil {
				t.Errorf("provider %v, %v; want off", tp, err)
			}
		})
	}
}

// TestFromEnvRefused: what sendguard cannot do is a startup error naming the
// variable, not silently no traces.
func TestFromEnvRefused(t *testing.T) {
	for kv, wantInErr := range map[[2]string]string{
		{"OTEL_TRACES_EXPORTER", "zipkin"}:               "OTEL_TRACES_EXPORTER",
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"}:     "OTEL_EXPORTER_OTLP_PROTOCOL",
		{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift"}: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	} {
		setenv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", kv[0]: kv[1]})
		tp, err := FromEnv(context.Background())
		if err == nil || !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("%s=%s: %v, %v; want an error naming %s", kv[0], kv[1], tp, err, wantInErr)
		}
		if tp != nil {
			_ = tp.Shutdown(context.Background())
		}
	}
}

// collector is an OTLP/gRPC trace collector on loopback that keeps what it
// receives.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
}

func (c *collector) Export(_ context.Context, r *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, r)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestFromEnvGRPC: with OTEL_EXPORTER_OTLP_PROTOCOL=grpc spans reach an
// OTLP/gRPC collector at OTEL_EXPORTER_OTLP_ENDPOINT, named by
// OTEL_SERVICE_NAME, with sendguard's version and the resource attributes
// given.
func TestFromEnvGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	g := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(g, col)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)

	setenv(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + lis.Addr().String(),
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_SERVICE_NAME":           "sendguard-eu",
		"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment=test",
	})
	tp, err := FromEnv(context.Background())
	if err != nil || tp == nil {
		t.Fatalf("FromEnv: %v, %v", tp, err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "one")
	span.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.reqs) != 1 {
		t.Fatalf("%d exports, want 1", len(col.reqs))
	}
	rs := col.reqs[0].GetResourceSpans()
	if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || rs[0].GetScopeSpans()[0].GetSpans()[0].GetName() != "one" {
		t.Fatalf("exported %v", rs)
	}
	attrs := map[string]string{}
	for _, kv := range rs[0].GetResource().GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	if attrs["service.name"] != "sendguard-eu" || attrs["deployment.environment"] != "test" || attrs["service.version"] == "" {
		t.Fatalf("resource %v", attrs)
	}
}
