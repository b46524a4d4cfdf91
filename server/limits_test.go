package server

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// runServer starts a real server on loopback ports with cfg's changes and stops
// it when the test ends.
func runServer(t *testing.T, mutate func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.APIAddr = "127.0.0.1:0", "", "127.0.0.1:0"
	cfg.HashSecret = testHashSecret
	cfg.Logger = discardLogger()
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := newServer(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return srv
}

func dialServer(t *testing.T, srv *Server) *client.Client {
	t.Helper()
	c, err := client.Dial(srv.GRPCAddr(), client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCallLimit: past max_concurrent_calls a call is refused UNAVAILABLE before
// it is read, the health check still answers, and every call that ends — done,
// canceled, past its deadline, refused — gives its place back.
func TestCallLimit(t *testing.T) {
	srv := runServer(t, func(c *Config) { c.MaxConcurrentCalls = 4 })
	c := dialServer(t, srv)
	ctx := context.Background()

	// Calls of every kind, then the count is back at zero.
	req := marketing(brPhone)
	for range 20 {
		if _, err := c.Check(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, _ = c.API().CheckSend(canceled, req)
	expired, cancel2 := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel2()
	_, _ = c.API().CheckSend(expired, req)
	if err := c.Conn().Invoke(ctx, "/sendguard.v1.SendGuard/NoSuchMethod", req, &sgv1.CheckSendResponse{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown method: %v", err)
	}
	waitFor(t, "calls in progress back to 0", func() bool { return srv.calls.n.Load() == 0 })

	// Four streams held open take every place.
	var streams []context.CancelFunc
	for range 4 {
		sctx, stop := context.WithCancel(ctx)
		streams = append(streams, stop)
		st, err := c.CheckStream(sctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.API().CheckSend(ctx, req)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "max_concurrent_calls") {
		t.Fatalf("a fifth call: %v; want UNAVAILABLE naming max_concurrent_calls", err)
	}
	if hr, err := healthpb.NewHealthClient(c.Conn()).Check(ctx, &healthpb.HealthCheckRequest{Service: serviceName}); err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check while the limit is reached: %v %v", hr, err)
	}
	if srv.calls.refused.Load() == 0 {
		t.Fatal("refused call not counted")
	}
	streams[0]()
	waitFor(t, "a place freed by an ended stream", func() bool {
		_, err := c.API().CheckSend(ctx, req)
		return err == nil
	})
	for _, stop := range streams[1:] {
		stop()
	}
	waitFor(t, "calls in progress back to 0", func() bool { return srv.calls.n.Load() == 0 })
}

// TestConnectionLimit: past max_connections a connection is closed at once, and
// a connection that closes gives its place back.
func TestConnectionLimit(t *testing.T) {
	srv := runServer(t, func(c *Config) { c.MaxConnections = 2 })
	dialRaw := func() net.Conn {
		conn, err := net.Dial("tcp", srv.GRPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	closedAtOnce := func(conn net.Conn) bool {
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 1<<10)
		for {
			_, err := conn.Read(buf) // the server's HTTP/2 preface, if it kept the connection
			switch {
			case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || err != nil && strings.Contains(err.Error(), "reset"):
				return true
			case err != nil:
				return false // timed out: kept open
			}
		}
	}
	a, b := dialRaw(), dialRaw()
	waitFor(t, "two connections open", func() bool { return srv.grpcLis.(*limitListener).open.Load() == 2 })
	if !closedAtOnce(dialRaw()) {
		t.Fatal("a third connection was kept open")
	}
	if closedAtOnce(b) {
		t.Fatal("an admitted connection was closed")
	}
	a.Close()
	waitFor(t, "the closed connection's place freed", func() bool { return srv.grpcLis.(*limitListener).open.Load() == 1 })
	if closedAtOnce(dialRaw()) {
		t.Fatal("a connection after one closed was refused")
	}
}

// TestStreamBudget: streams whose clients never read hold no more rows together
// than the budget (plus one row each), a fresh stream is still answered while
// they hold it, and everything is given back when they end.
func TestStreamBudget(t *testing.T) {
	const budget = 256 << 10
	srv := runServer(t, func(c *Config) { c.StreamBudget = budget })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Rows the server refuses at once (an unknown category): cheap to answer, so
	// that the never-reading clients are held within a second or two.
	req := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone, Category: 99, Template: strings.Repeat("t", 400)}
	const streams = 8
	// The business is loaded first, so that rows are decided in lanes (the first
	// row of a business the server has not loaded waits for every earlier one).
	if _, err := dialServer(t, srv).Check(ctx, marketing(brPhone)); err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for i := range streams {
		// A connection each, as separate workers would, with fixed windows so
		// that the client is held soon (a stock client's windows grow to 16 MiB
		// a stream first: make chaos runs that one).
		conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		st, err := sgv1.NewSendGuardClient(conn).CheckSendStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for n := 0; n < 50_000; n++ { // bounded: held by flow control long before
				if st.Send(req) != nil {
					return
				}
				sent.Add(1)
			}
			t.Errorf("stream %d was never held", i)
		})
	}
	// Wait until the senders stop moving.
	var last int64 = -1
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		n := sent.Load()
		if n == last {
			break
		}
		last = n
	}
	held := srv.rows.used.Load()
	oneRow := int64(len(req.GetTemplate())+64) + rowOverhead
	t.Logf("%d never-reading streams: %d rows sent, %d KiB held by the handlers (budget %d KiB)", streams, sent.Load(), held>>10, budget>>10)
	if held > budget+streams*oneRow {
		t.Fatalf("streams hold %d bytes; budget %d plus a row each", held, budget)
	}
	if held < budget/2 {
		t.Fatalf("streams hold only %d bytes: the test did not reach the budget", held)
	}

	// A fresh stream goes on, a row at a time.
	fresh, err := dialServer(t, srv).CheckStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := fresh.Send(marketing(brPhone)); err != nil {
			t.Fatal(err)
		}
		if resp, err := fresh.Recv(); err != nil || resp.GetVerdict() == sgv1.Verdict_VERDICT_UNSPECIFIED {
			t.Fatalf("fresh stream row %d: %v %v", i, resp, err)
		}
	}
	_ = fresh.CloseSend()

	cancel()
	wg.Wait()
	waitFor(t, "every stream's rows given back", func() bool { return srv.rows.used.Load() == 0 })
}

// TestOversizeRequest: a request over 1 MiB is RESOURCE_EXHAUSTED (gRPC refuses
// it before decoding it), on unary calls and for a stream, which it ends.
func TestOversizeRequest(t *testing.T) {
	h := newHarness(t)
	big := marketing(brPhone)
	big.Template = strings.Repeat("t", maxRecvMsgSize)
	if _, err := h.c.API().CheckSend(context.Background(), big); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("unary: %v; want RESOURCE_EXHAUSTED", err)
	}
	st, err := h.c.CheckStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Send(big)
	if _, err := st.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("stream: %v; want RESOURCE_EXHAUSTED", err)
	}
}
