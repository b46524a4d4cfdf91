package server

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Tracing. With Config.TracerProvider set, every SendGuard RPC gets a server
// span (one per stream, not per row: a row's work is in its answer) continuing
// the caller's W3C trace context, and every webhook POST gets one that starts
// a trace of its own, since anyone on the internet can reach the webhook and
// must not choose the traces it joins (it is linked to what it claimed). Health
// checks and reflection are not traced. Metrics stay Prometheus's: the
// instrumentations' own meters are no-ops. Without a provider nothing is
// installed, so tracing off costs nothing.

// propagator reads and writes W3C trace context and baggage.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// tracingOptions returns the gRPC server option that traces SendGuard RPCs, or
// none without a tracer provider.
func (s *Server) tracingOptions() []grpc.ServerOption {
	if s.cfg.TracerProvider == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(s.cfg.TracerProvider),
		otelgrpc.WithMeterProvider(noop.NewMeterProvider()),
		otelgrpc.WithPropagators(propagator),
		otelgrpc.WithFilter(filters.ServiceName(sgv1.SendGuard_ServiceDesc.ServiceName)),
	))}
}

// traceWebhook wraps the webhook POST handler in a span, or returns it as it is
// without a tracer provider.
func (s *Server) traceWebhook(h http.HandlerFunc) http.Handler {
	if s.cfg.TracerProvider == nil {
		return h
	}
	return otelhttp.NewHandler(h, "POST "+WebhookPath,
		otelhttp.WithTracerProvider(s.cfg.TracerProvider),
		otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithPropagators(propagator),
		otelhttp.WithPublicEndpointFn(func(*http.Request) bool { return true }),
	)
}
