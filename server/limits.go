package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Limits that keep a slow or hostile client from exhausting the server. What a
// client can make the server hold is bounded at every layer:
//   - connections: Config.MaxConnections (more are closed at once);
//   - calls: Config.MaxConcurrentStreams per connection, Config.MaxConcurrentCalls
//     in all (health checks excepted, so that they stay fast while the limit is
//     reached);
//   - bytes gRPC's transport buffers for a call the handler has not read yet: one
//     flow-control window, initialWindowSize, fixed (gRPC grows windows by its
//     bandwidth-delay estimate unless they are set, up to 16 MiB a call);
//   - rows a stream has read and not answered: streamWindow and
//     streamWindowBytes per stream, Config.StreamBudget in all, and only
//     decisionSlots of them decided at once (stream.go);
//   - one request: maxRecvMsgSize.
const (
	maxRecvMsgSize = 1 << 20 // one request, 1 MiB
	maxSendMsgSize = 4 << 20 // one response (GetContact is the largest)
	// Stream and connection flow-control windows, fixed: 64 KiB is gRPC's own
	// default and the smallest it takes; enough for 600 rows on the wire per
	// stream, which a round trip of a millisecond turns into 600,000 rows/s.
	initialWindowSize     = 64 << 10
	initialConnWindowSize = 1 << 20
)

// Defaults of the limits in Config.
const (
	DefaultMaxConnections       = 1024
	DefaultMaxConcurrentStreams = 64
	DefaultMaxConcurrentCalls   = 1024
	DefaultStreamBudget         = 16 << 20
)

func limitOptions(cfg Config, calls *callLimit) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		grpc.MaxSendMsgSize(maxSendMsgSize),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.InitialWindowSize(initialWindowSize),
		grpc.InitialConnWindowSize(initialConnWindowSize),
		grpc.InTapHandle(calls.tap),
		// Bound what a client can hold open: idle connections are closed, and
		// pings more often than every 10 s are refused (ping floods).
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 15 * time.Minute, Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}

// callLimit bounds the calls in progress on the whole server. gRPC asks it
// before it creates a call (tap), so a refused call costs no buffers; a call
// counts until its context ends, which gRPC does for every call it created.
type callLimit struct {
	max     int64
	n       atomic.Int64
	refused atomic.Int64
	// methods are the calls counted: the registered ones, except the health
	// check, which must answer while the limit is reached. (An unknown method
	// is answered UNIMPLEMENTED at once.)
	methods map[string]bool
}

func newCallLimit(limit int) *callLimit {
	return &callLimit{max: int64(limit), methods: map[string]bool{}}
}

// count registers the methods of the registered services (call once, after
// registering them, before serving).
func (l *callLimit) count(g *grpc.Server) {
	for svc, info := range g.GetServiceInfo() {
		for _, m := range info.Methods {
			l.methods["/"+svc+"/"+m.Name] = true
		}
	}
	delete(l.methods, "/grpc.health.v1.Health/Check")
}

var errBusy = status.Error(codes.Unavailable, "server busy: too many calls in progress (max_concurrent_calls); retry with backoff")

// tap admits a call while fewer than max are in progress.
func (l *callLimit) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if !l.methods[info.FullMethodName] {
		return ctx, nil
	}
	if !l.take() {
		return ctx, errBusy
	}
	context.AfterFunc(ctx, l.give)
	return ctx, nil
}

// take counts one more call in progress, or refuses it (false) when max are.
func (l *callLimit) take() bool {
	if l.n.Add(1) > l.max {
		l.n.Add(-1)
		l.refused.Add(1)
		return false
	}
	return true
}

// give ends a call that take counted.
func (l *callLimit) give() { l.n.Add(-1) }

// limitListener closes connections accepted beyond max open ones at once (the
// client sees UNAVAILABLE and retries), instead of leaving them queued unseen.
type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused atomic.Int64
}

func newLimitListener(l net.Listener, limit int) *limitListener {
	return &limitListener{Listener: l, max: int64(limit)}
}

// Accept returns the next connection while fewer than max are open.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &countedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		_ = c.Close()
	}
}

// countedConn gives its place back when it is closed.
type countedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// unaryDeadline gives a unary call without a deadline the server's default one.
func (s *Server) unaryDeadline(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.DefaultDeadline)
		defer cancel()
	}
	return handler(ctx, req)
}

// tlsCredentials loads the server certificate and, for mutual TLS, the client CA.
func tlsCredentials(c TLSConfig) (credentials.TransportCredentials, error) {
	cfg, err := tlsConfig(c)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// tlsConfig is tlsCredentials' TLS configuration (the API port serves it too).
func tlsConfig(c TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("tls: client_ca_file holds no PEM certificate")
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// limitMetrics exports what the limits hold and refuse.
func (s *Server) limitMetrics() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendguard_calls_in_progress",
			Help: "gRPC calls in progress, health checks excepted (max_concurrent_calls bounds them).",
		}, func() float64 { return float64(s.calls.n.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sendguard_calls_refused_total",
			Help: "gRPC calls refused UNAVAILABLE because max_concurrent_calls were in progress.",
		}, func() float64 { return float64(s.calls.refused.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendguard_businesses_cached",
			Help: "Businesses whose policy and state are cached in memory (business_cache bounds them).",
		}, func() float64 { return float64(s.biz.size()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sendguard_business_loads_total",
			Help: "Businesses read from the store into the cache (first use, or after eviction).",
		}, func() float64 { return float64(s.biz.loads.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendguard_stream_rows_bytes",
			Help: "What the rows read and not yet answered by every CheckSendStream cost, in bytes (stream_budget bounds it).",
		}, func() float64 { return float64(s.rows.used.Load()) }),
	}
}

// listenerMetrics exports the gRPC listener's connections.
func listenerMetrics(l *limitListener) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendguard_connections_open",
			Help: "Open gRPC connections (max_connections bounds them).",
		}, func() float64 { return float64(l.open.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sendguard_connections_refused_total",
			Help: "gRPC connections closed at once because max_connections were open.",
		}, func() float64 { return float64(l.refused.Load()) }),
	}
}
