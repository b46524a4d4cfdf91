package server

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// t0 is the tests' starting time: a Friday, 10:00 UTC.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

type harness struct {
	lis   *bufconn.Listener
	srv   *Server
	clock *fakeClock
	c     *client.Client
	api   sgv1.SendGuardClient
}

// testHashSecret is the hash secret of the tests' servers.
var testHashSecret = []byte("sendguard-test-secret")

// newHarness starts a server on an in-memory Badger store over bufconn.
// sharing turns share_number_signals on for the deployment (off by default).
func sharing(c *Config) { c.Defaults.ShareNumberSignals = true }

func newHarness(t testing.TB, mutate ...func(*Config)) *harness {
	t.Helper()
	return newHarnessOn(t, nil, mutate...)
}

// newHarnessOn is newHarness with the in-memory store passed through wrap (nil
// for none), which sees the config after mutate: for a test's decorator of the
// store, or a store of its own.
func newHarnessOn(t testing.TB, wrap func(st storage.Store, c Config) storage.Store, mutate ...func(*Config)) *harness {
	t.Helper()
	st, err := badger.Open(badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: t0}
	cfg := DefaultConfig()
	cfg.HashSecret = testHashSecret
	cfg.Now = clock.Now
	cfg.Logger = discardLogger()
	for _, m := range mutate {
		m(&cfg)
	}
	var served storage.Store = st
	if wrap != nil {
		served = wrap(st, cfg)
	}
	srv, err := New(served, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.GRPCServer().Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(conn, 10*time.Second)
	t.Cleanup(func() {
		c.Close()
		srv.GRPCServer().Stop()
		srv.Close()
		st.Close()
	})
	return &harness{lis: lis, srv: srv, clock: clock, c: c, api: c.API()}
}

// withDefaultsChecked fills in c's defaults and validates it, as New does.
func (c *Config) withDefaultsChecked() error {
	*c = c.withDefaults()
	return c.validate()
}

// newServer builds a server from cfg on an in-memory Badger store, closed when
// the test ends, as the runner (internal/serve) does on the store it opens.
func newServer(t testing.TB, cfg Config) (*Server, error) {
	t.Helper()
	st, err := badger.Open(badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, cfg)
}

// dialKey opens another connection to the harness's server that sends an API key.
func (h *harness) dialKey(t testing.TB, key string) *client.Client {
	t.Helper()
	opts := []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return h.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}
	if key != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerCreds(key)))
	}
	conn, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(conn, 10*time.Second)
	t.Cleanup(func() { c.Close() })
	return c
}

type bearerCreds string

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerCreds) RequireTransportSecurity() bool { return false }

func (h *harness) check(t testing.TB, req *sgv1.CheckSendRequest) *sgv1.CheckSendResponse {
	t.Helper()
	resp, err := h.c.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("CheckSend(%v): %v", req, err)
	}
	return resp
}

func (h *harness) report(t testing.TB, req *sgv1.ReportResultRequest) *sgv1.ReportResultResponse {
	t.Helper()
	resp, err := h.c.Report(context.Background(), req)
	if err != nil {
		t.Fatalf("ReportResult(%v): %v", req, err)
	}
	return resp
}

func (h *harness) inbound(t testing.TB, req *sgv1.ReportInboundRequest) *sgv1.ReportInboundResponse {
	t.Helper()
	resp, err := h.c.Inbound(context.Background(), req)
	if err != nil {
		t.Fatalf("ReportInbound(%v): %v", req, err)
	}
	return resp
}

func marketing(phone string) *sgv1.CheckSendRequest {
	return &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING, Template: "promo"}
}

func failed(phone string, code int32, at time.Time) *sgv1.ReportResultRequest {
	return &sgv1.ReportResultRequest{
		BusinessId: "acme", Phone: phone, MessageId: "wamid." + phone + at.String(),
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: code,
		Category: sgv1.Category_CATEGORY_MARKETING, Template: "promo", Timestamp: timestamppb.New(at),
	}
}

func rules(resp *sgv1.CheckSendResponse) []sgv1.Rule {
	var out []sgv1.Rule
	for _, r := range resp.GetReasons() {
		out = append(out, r.GetRule())
	}
	return out
}
