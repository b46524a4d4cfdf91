package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// serviceName is the name the health service reports for SendGuard.
const serviceName = "sendguard.v1.SendGuard"

// Server is a sendguard server: the gRPC service, the HTTP endpoints and the store.
type Server struct {
	sgv1.UnimplementedSendGuardServer

	cfg        Config
	log        *slog.Logger
	store      storage.Store
	ownStore   bool
	biz        *businesses
	metrics    *metrics
	webhook    *webhookState
	health     *health.Server
	grpc       *grpc.Server
	hashSecret []byte
	shared     bool      // other replicas write the store too (sharedStore)
	macs       sync.Pool // of hash.Hash keyed with hashSecret (Server.mac)
	keys       keyIndex
	senders    senderIndex   // phone_number_ids by business (sender.go)
	calls      *callLimit    // calls in progress (limits.go)
	rows       *rowBudget    // rows held by every stream (stream.go)
	slots      decisionSlots // rows decided by every stream at once (stream.go)
	unhealthy  atomic.Bool   // the store failed; a probe is watching it
	serving    servingState  // what the health service says (health.go)
	done       chan struct{} // closed when the server stops
	closeOnce  sync.Once
	service    bool // built by NewService: Close also stops the gRPC server

	grpcLis net.Listener
	httpLis net.Listener
	http    *http.Server
	apiLis  net.Listener // the JSON API (api.go)
	api     *http.Server
}

// New validates cfg, opens the store and binds the listeners. Call Run to serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	keys, err := newKeyIndex(cfg.APIKeys)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(keys) == 0 {
		for what, addr := range map[string]string{"grpc": cfg.GRPCAddr, "http": cfg.HTTPAddr, "api": cfg.APIAddr} {
			if addr == "" {
				continue
			}
			if err := requireLoopback(what, addr); err != nil {
				return nil, fmt.Errorf("refusing to start: %w", err)
			}
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(), store: cfg.Store, keys: keys, done: make(chan struct{})}
	if s.store == nil {
		st, err := openStore(cfg)
		if err != nil {
			return nil, err
		}
		s.store, s.ownStore = st, true
	}
	s.shared = sharedStore(s.store)
	if s.hashSecret, err = loadHashSecret(cfg, s.store); err != nil {
		s.closeStore()
		return nil, err
	}
	if err := s.build(); err != nil {
		s.closeStore()
		return nil, err
	}
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		s.grpc.Stop() // ends its stream workers
		s.closeStore()
		return nil, fmt.Errorf("grpc listen: %w", err)
	}
	limited := newLimitListener(lis, cfg.MaxConnections)
	s.grpcLis = limited
	s.metrics.registry.MustRegister(listenerMetrics(limited)...)
	if cfg.HTTPAddr != "" {
		if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			s.grpc.Stop()
			s.grpcLis.Close()
			s.closeStore()
			return nil, fmt.Errorf("http listen: %w", err)
		}
		s.httpLis = s.limitHTTPListener(s.httpLis)
		s.http = s.newHTTPServer()
	}
	if err := s.listenAPI(); err != nil {
		s.grpc.Stop()
		s.grpcLis.Close()
		if s.httpLis != nil {
			s.httpLis.Close()
		}
		s.closeStore()
		return nil, err
	}
	s.startRefresh()
	s.startSpaceWatch()
	return s, nil
}

// NewService builds the gRPC service on a store without listening: for in-process
// use (bufconn tests, benchmarks). Register it with Register.
func NewService(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("config: NewService needs a Store")
	}
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = "127.0.0.1:0"
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	keys, err := newKeyIndex(cfg.APIKeys)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(), store: cfg.Store, keys: keys, done: make(chan struct{}), service: true}
	s.shared = sharedStore(s.store)
	if len(cfg.HashSecret) > 0 || s.shared {
		if s.hashSecret, err = loadHashSecret(cfg, s.store); err != nil {
			return nil, err
		}
	} else {
		s.hashSecret = []byte("sendguard-test-secret")
	}
	if err := s.build(); err != nil {
		return nil, err
	}
	s.startRefresh()
	s.startSpaceWatch()
	return s, nil
}

// build makes what New and NewService share once the store and the hash secret
// are known: the business cache, the webhook metrics and the gRPC server.
func (s *Server) build() (err error) {
	s.senders = newSenderIndex(s.cfg.PhoneNumberIDs)
	s.biz, err = newBusinesses(s.store, s.cfg.Defaults, s.shared, s.cfg.BusinessCache, s.log)
	if err != nil {
		return fmt.Errorf("config: policy: %w", err)
	}
	s.calls = newCallLimit(s.cfg.MaxConcurrentCalls)
	s.rows = newRowBudget(s.cfg.StreamBudget)
	s.slots = newDecisionSlots(s.shared)
	s.metrics.registry.MustRegister(s.limitMetrics()...)
	s.metrics.registry.MustRegister(newRestrictionGauge(s))
	s.metrics.watchRecordCache(s.store)
	s.webhook = newWebhookState(s.cfg, s.metrics.registry)
	s.grpc, err = s.newGRPCServer()
	return err
}

// startRefresh starts the business refresh, when there is one; it ends when the
// server stops (s.done).
func (s *Server) startRefresh() {
	if d := businessRefresh(s.cfg, s.shared); d > 0 {
		go s.refreshBusinesses(d)
	}
}

// GRPCServer returns the gRPC server with every service registered.
func (s *Server) GRPCServer() *grpc.Server { return s.grpc }

// GRPCAddr and HTTPAddr return the bound addresses.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr returns the bound HTTP address, or "" when HTTP is off.
func (s *Server) HTTPAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

func (s *Server) newGRPCServer() (*grpc.Server, error) {
	panicHandler := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		s.metrics.panics.Inc()
		s.log.ErrorContext(ctx, "panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	levelOf := func(c codes.Code) logging.Level {
		switch c {
		case codes.OK, codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated:
			return logging.LevelDebug
		case codes.Internal, codes.Unknown, codes.DataLoss:
			return logging.LevelError
		}
		return logging.LevelWarn
	}
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(levelOf),
	}
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		s.log.Log(ctx, slog.Level(lvl), msg, fixReplayed(ctx, fields)...)
	})
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(panicHandler),
			s.metrics.grpc.UnaryServerInterceptor(),
			s.quietUnaryLogging(logging.UnaryServerInterceptor(logger, logOpts...), levelOf),
			s.unaryAuth,
			unaryBadRequest,
			s.unaryDeadline,
		),
		grpc.ChainStreamInterceptor(
			recovery.StreamServerInterceptor(panicHandler),
			s.metrics.grpc.StreamServerInterceptor(),
			logging.StreamServerInterceptor(logger, logOpts...),
			s.streamAuth,
		),
	}
	opts = append(opts, limitOptions(s.cfg, s.calls)...)
	opts = append(opts, s.tracingOptions()...)
	opts = append(opts, grpc.ForceServerCodecV2(newLenientCodec()))
	// Handlers run on long-lived goroutines whose stacks have already grown to
	// what a check needs, instead of a new goroutine per call that grows its
	// stack (copying it) several times: that was an eighth of CheckSend's CPU.
	// As many as one connection may have calls at once (beyond that, gRPC starts
	// a goroutine per call as before).
	opts = append(opts, grpc.NumStreamWorkers(s.cfg.MaxConcurrentStreams))
	if s.cfg.TLS.CertFile != "" {
		creds, err := tlsCredentials(s.cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(creds))
	}
	g := grpc.NewServer(opts...)
	sgv1.RegisterSendGuardServer(g, s)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(g, s.health)
	s.setServing(true)
	s.registerReflection(g) // reflection.go
	s.calls.count(g)
	s.metrics.grpc.InitializeMetrics(g)
	return g, nil
}

// HTTPHandler returns the HTTP endpoints: /metrics, /healthz and, when a webhook
// secret is configured, the WhatsApp webhook.
func (s *Server) HTTPHandler() http.Handler { return s.httpHandler() }

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	if len(s.cfg.WebhookSecret) > 0 {
		mux.HandleFunc("GET "+WebhookPath, s.handleWebhookVerify)
		mux.Handle("POST "+WebhookPath, s.traceWebhook(s.handleWebhook))
	} else {
		mux.HandleFunc(WebhookPath, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "webhook not configured: set SENDGUARD_WHATSAPP_APP_SECRET (or whatsapp_app_secret in the config file)", http.StatusNotFound)
		})
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc(BackupPath, s.handleBackupMoved) // on the API port now (api.go)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /healthz/writes", s.handleHealthzWrites)
	return mux
}

// Run serves until ctx ends, then stops: health goes NOT_SERVING, streams get
// ShutdownGrace to drain (then are cut), and the store is closed last.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.grpc.Serve(s.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("grpc: %w", err)
		}
	}()
	if s.http != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.http.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http: %w", err)
			}
		}()
	}
	if s.api != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serveAPI(); err != nil {
				errc <- fmt.Errorf("api: %w", err)
			}
		}()
	}
	s.log.Info("sendguard serving", "grpc", s.GRPCAddr(), "http", s.HTTPAddr(), "api", s.APIAddr())
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.stop()
	wg.Wait()
	return runErr
}

// Close stops background work of a server built by NewService, and its gRPC
// server with the handler goroutines it keeps (Run's stop does it for New's).
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	if s.service {
		s.grpc.Stop()
	}
}

func (s *Server) stop() {
	s.log.Info("sendguard stopping", "grace", s.cfg.ShutdownGrace)
	s.Close()
	s.health.Shutdown()
	apiDone := s.shutdownAPI(s.cfg.ShutdownGrace)
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownGrace):
		s.log.Warn("grace period over; cutting remaining streams")
		s.grpc.Stop()
		<-done
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.http.Shutdown(ctx)
	}
	<-apiDone
	s.closeStore()
	s.log.Info("sendguard stopped")
}

func (s *Server) closeStore() {
	if s.ownStore {
		if err := s.store.Close(); err != nil {
			s.log.Error("closing store", "err", err)
		}
	}
}

// loadHashSecret returns the configured secret; or, on a store shared by
// replicas, the one kept in the store (the first replica creates it); or the one
// kept in the data directory (created on first start).
func loadHashSecret(cfg Config, st storage.Store) ([]byte, error) {
	if len(cfg.HashSecret) > 0 {
		return cfg.HashSecret, nil
	}
	if keeper, ok := st.(storage.SecretKeeper); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		b, err := keeper.SharedSecret(ctx, "hash")
		if err != nil {
			return nil, fmt.Errorf("shared hash secret: %w", err)
		}
		return b, nil
	}
	if cfg.Store != nil && cfg.DataDir == "" {
		return []byte("sendguard-ephemeral-secret"), nil
	}
	path := filepath.Join(cfg.DataDir, "suppression.key")
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return b, nil
}

// Defaults returns the deployment's default policy.
func (s *Server) Defaults() validator.Policy { return s.cfg.Defaults }
