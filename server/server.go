package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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

// Server is the sendguard service: the gRPC service and its HTTP handlers, the
// business cache and the health state, on a store it is given and does not
// close. New builds it; the runner (internal/serve) opens the store, loads the
// hash secret and serves it with Listen and Run. In-process users (bufconn
// tests, the Go client's examples) serve GRPCServer themselves and call Close.
type Server struct {
	sgv1.UnimplementedSendGuardServer

	cfg       Config
	log       *slog.Logger
	store     storage.Store
	biz       *businesses
	metrics   *metrics
	webhook   *webhookState
	health    *health.Server
	grpc      *grpc.Server
	hash      *hasher // keyed hashes of identifiers, keyed with cfg.HashSecret (hasher.go)
	shared    bool    // other replicas write the store too (storage.IsShared)
	keys      keyIndex
	senders   senderIndex   // phone_number_ids by business (sender.go)
	calls     *callLimit    // calls in progress (limits.go)
	rows      *rowBudget    // rows held by every stream (stream.go)
	slots     decisionSlots // rows decided by every stream at once (stream.go)
	unhealthy atomic.Bool   // the store failed; a probe is watching it
	serving   servingState  // what the health service says (health.go)
	done      chan struct{} // closed when the server stops
	closeOnce sync.Once

	grpcLis net.Listener
	httpLis net.Listener
	http    *http.Server
	apiLis  net.Listener // the JSON API (api.go)
	api     *http.Server
}

// New builds the service on st from cfg (defaults filled in for its zero
// fields, then validated): its clock is cfg.Now and its hash secret
// cfg.HashSecret, which must be set. It listens nowhere: serve GRPCServer (and
// HTTPHandler, APIHandler) in-process, or call Listen and Run. st stays the
// caller's to close, after the server has stopped.
func New(st storage.Store, cfg Config) (*Server, error) {
	if st == nil {
		return nil, errors.New("config: no store")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	keys, err := cfg.keyIndex()
	if err != nil {
		return nil, err
	}
	if len(cfg.HashSecret) == 0 {
		return nil, errors.New("config: no hash secret")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(), store: st, keys: keys, done: make(chan struct{}),
		hash: newHasher(cfg.HashSecret), shared: storage.IsShared(st)}
	if err := s.build(); err != nil {
		return nil, err
	}
	s.startRefresh()
	s.startSpaceWatch()
	return s, nil
}

// Listen binds the gRPC, HTTP and API addresses of the config (the HTTP and API
// ones unless ""). Run serves them.
func (s *Server) Listen() error {
	if s.cfg.GRPCAddr == "" {
		return errors.New("config: grpc address is empty")
	}
	lis, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	limited := newLimitListener(lis, s.cfg.MaxConnections)
	s.grpcLis = limited
	s.metrics.registry.MustRegister(listenerMetrics(limited)...)
	if s.cfg.HTTPAddr != "" {
		if s.httpLis, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
			return errors.Join(fmt.Errorf("http listen: %w", err), s.grpcLis.Close())
		}
		s.httpLis = s.limitHTTPListener(s.httpLis)
		s.http = s.newHTTPServer()
	}
	if err := s.listenAPI(); err != nil {
		err = errors.Join(err, s.grpcLis.Close())
		if s.httpLis != nil {
			err = errors.Join(err, s.httpLis.Close())
		}
		return err
	}
	return nil
}

// build makes what the service holds once the store and the hash secret are
// known: the business cache, the webhook metrics and the gRPC server.
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

// GRPCAddr returns the bound gRPC address, or "" before Listen.
func (s *Server) GRPCAddr() string {
	if s.grpcLis == nil {
		return ""
	}
	return s.grpcLis.Addr().String()
}

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
	opts = append(opts, grpc.ForceServerCodecV2(newLenientCodec()),
		// Handlers run on long-lived goroutines whose stacks have already grown to
		// what a check needs, instead of a new goroutine per call that grows its
		// stack (copying it) several times: that was an eighth of CheckSend's CPU.
		// As many as one connection may have calls at once (beyond that, gRPC starts
		// a goroutine per call as before).
		grpc.NumStreamWorkers(s.cfg.MaxConcurrentStreams))
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

// Run serves what Listen bound until ctx ends, then stops: health goes
// NOT_SERVING, streams get ShutdownGrace to drain (then are cut). The store is
// left open, for its owner to close.
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

// Close stops the service's background work and its gRPC server with the
// handler goroutines it keeps, at once: for in-process use (Run stops a
// listening server gracefully).
func (s *Server) Close() {
	s.stopBackground()
	s.grpc.Stop()
}

// stopBackground ends the business refresh, the store probe and the disk watch.
func (s *Server) stopBackground() { s.closeOnce.Do(func() { close(s.done) }) }

func (s *Server) stop() {
	s.log.Info("sendguard stopping", "grace", s.cfg.ShutdownGrace)
	s.stopBackground()
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
	s.log.Info("sendguard stopped")
}

// Defaults returns the deployment's default policy.
func (s *Server) Defaults() validator.Policy { return s.cfg.Defaults }
