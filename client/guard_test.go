package client_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// flaky is a fake SendGuard server: each call pops the next error of its script
// (nil: answer), then answers for good.
type flaky struct {
	sgv1.UnimplementedSendGuardServer
	mu       sync.Mutex
	script   []error
	calls    int
	requests []*sgv1.CheckSendRequest
	reports  []*sgv1.ReportResultRequest
	block    bool // never answer (until the attempt's deadline)
}

func (f *flaky) next(ctx context.Context) error {
	f.mu.Lock()
	f.calls++
	block := f.block
	var err error
	if len(f.script) > 0 {
		err, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	return err
}

func (f *flaky) CheckSend(ctx context.Context, req *sgv1.CheckSendRequest) (*sgv1.CheckSendResponse, error) {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	if err := f.next(ctx); err != nil {
		return nil, err
	}
	return &sgv1.CheckSendResponse{Verdict: sgv1.Verdict_VERDICT_ALLOW, PhoneE164: "+5511987654321"}, nil
}

func (f *flaky) ReportResult(ctx context.Context, req *sgv1.ReportResultRequest) (*sgv1.ReportResultResponse, error) {
	f.mu.Lock()
	f.reports = append(f.reports, req)
	f.mu.Unlock()
	if err := f.next(ctx); err != nil {
		return nil, err
	}
	return &sgv1.ReportResultResponse{PhoneE164: "+5511987654321"}, nil
}

func (f *flaky) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// startFake serves f over bufconn and returns a client on one connection that
// counts how often it was dialled.
func startFake(t *testing.T, f *flaky) (*client.Client, *int) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	sgv1.RegisterSendGuardServer(g, f)
	go func() { _ = g.Serve(lis) }()
	var mu sync.Mutex
	dials := 0
	conn, err := grpc.NewClient("passthrough:///fake",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			mu.Lock()
			dials++
			mu.Unlock()
			return lis.DialContext(ctx)
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(conn, time.Second)
	t.Cleanup(func() {
		c.Close()
		g.Stop()
	})
	return c, &dials
}

var fast = client.GuardOptions{InitialBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, AttemptTimeout: time.Second}

// TestGuardRetriesUnavailable: UNAVAILABLE twice, then an answer: the Guard
// returns the answer after three attempts, on one connection.
func TestGuardRetriesUnavailable(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "restarting")
	f := &flaky{script: []error{unavailable, unavailable}}
	c, dials := startFake(t, f)
	g := client.NewGuard(c, "acme", fast)
	resp, err := g.Check(context.Background(), "+55 11 98765-4321", sgv1.Category_CATEGORY_MARKETING, "promo")
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW || f.callCount() != 3 {
		t.Fatalf("verdict %v after %d calls; want ALLOW after 3", resp.GetVerdict(), f.callCount())
	}
	for _, req := range f.requests {
		if req.GetBusinessId() != "acme" || req.GetReserve() || req.GetCategory() != sgv1.Category_CATEGORY_MARKETING {
			t.Fatalf("request %v", req)
		}
	}
	// Reserve and Report retry the same way, on the same connection.
	f.script = []error{unavailable, unavailable}
	if _, err := g.Reserve(context.Background(), "+5511987654321", sgv1.Category_CATEGORY_MARKETING, "promo", "job-1"); err != nil {
		t.Fatal(err)
	}
	last := f.requests[len(f.requests)-1]
	if !last.GetReserve() || last.GetMessageRef() != "job-1" || f.callCount() != 6 {
		t.Fatalf("reserve: %v after %d calls", last, f.callCount())
	}
	f.script = []error{status.Error(codes.Aborted, "conflict")}
	report := &sgv1.ReportResultRequest{Phone: "+5511987654321", MessageRef: "job-1", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT}
	if _, err := g.Report(context.Background(), report); err != nil {
		t.Fatal(err)
	}
	if f.callCount() != 8 || len(f.reports) != 2 || f.reports[1].GetBusinessId() != "acme" || report.GetBusinessId() != "" {
		t.Fatalf("report: %d calls, %v; the caller's request %v", f.callCount(), f.reports, report)
	}
	if *dials != 1 {
		t.Fatalf("%d connections; want one, reused", *dials)
	}
}

// TestGuardDoesNotRetry: errors that would come back the same are returned at once.
func TestGuardDoesNotRetry(t *testing.T) {
	for _, code := range []codes.Code{codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.ResourceExhausted, codes.Internal} {
		f := &flaky{script: []error{status.Error(code, "no"), nil}}
		c, _ := startFake(t, f)
		g := client.NewGuard(c, "acme", fast)
		_, err := g.Check(context.Background(), "+5511987654321", sgv1.Category_CATEGORY_UTILITY, "")
		if status.Code(err) != code || f.callCount() != 1 {
			t.Errorf("%v: err %v after %d calls; want it at once", code, err, f.callCount())
		}
	}
	// RESOURCE_EXHAUSTED is retried when asked.
	f := &flaky{script: []error{status.Error(codes.ResourceExhausted, "quota")}}
	c, _ := startFake(t, f)
	opts := fast
	opts.RetryResourceExhausted = true
	if _, err := client.NewGuard(c, "acme", opts).Check(context.Background(), "+5511987654321", sgv1.Category_CATEGORY_UTILITY, ""); err != nil || f.callCount() != 2 {
		t.Fatalf("RetryResourceExhausted: %v after %d calls", err, f.callCount())
	}
	// A reservation without a message_ref could not be retried safely.
	if _, err := client.NewGuard(c, "acme", fast).Reserve(context.Background(), "+5511987654321", sgv1.Category_CATEGORY_MARKETING, "p", ""); !errors.Is(err, client.ErrNoMessageRef) {
		t.Fatalf("Reserve without a ref: %v", err)
	}
}

// TestGuardBoundedByContext: a server that stays unavailable costs at most
// MaxAttempts attempts, and never more than the caller's deadline.
func TestGuardBoundedByContext(t *testing.T) {
	always := make([]error, 100)
	for i := range always {
		always[i] = status.Error(codes.Unavailable, "down")
	}
	f := &flaky{script: always}
	c, _ := startFake(t, f)
	opts := fast
	opts.MaxAttempts = 5
	_, err := client.NewGuard(c, "acme", opts).Check(context.Background(), "+5511987654321", sgv1.Category_CATEGORY_UTILITY, "")
	if status.Code(err) != codes.Unavailable || f.callCount() != 5 {
		t.Fatalf("err %v after %d calls; want UNAVAILABLE after 5", err, f.callCount())
	}

	// Long backoffs: the caller's 150ms deadline ends the call, not the attempts.
	f = &flaky{script: always}
	c, _ = startFake(t, f)
	slow := client.GuardOptions{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxAttempts: 50}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = client.NewGuard(c, "acme", slow).Check(ctx, "+5511987654321", sgv1.Category_CATEGORY_UTILITY, "")
	if err == nil || time.Since(start) > 2*time.Second || f.callCount() > 3 {
		t.Fatalf("err %v after %v and %d calls", err, time.Since(start), f.callCount())
	}

	// A server that does not answer: each attempt has its own deadline, and the
	// attempts are retried (DEADLINE_EXCEEDED of an attempt), within MaxAttempts.
	f = &flaky{block: true}
	c, _ = startFake(t, f)
	opts = fast
	opts.AttemptTimeout, opts.MaxAttempts = 20*time.Millisecond, 3
	_, err = client.NewGuard(c, "acme", opts).Check(context.Background(), "+5511987654321", sgv1.Category_CATEGORY_UTILITY, "")
	if status.Code(err) != codes.DeadlineExceeded || f.callCount() != 3 {
		t.Fatalf("blocking server: %v after %d calls", err, f.callCount())
	}
}

// TestGuardRegion: the Guard's Region goes with every check, reservation and
// report; a report's own region wins.
func TestGuardRegion(t *testing.T) {
	f := &flaky{}
	c, _ := startFake(t, f)
	g := client.NewGuard(c, "acme", client.GuardOptions{Region: "BR"})
	ctx := context.Background()
	if _, err := g.Check(ctx, "(31) 99551-1909", sgv1.Category_CATEGORY_MARKETING, "promo"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Reserve(ctx, "(31) 99551-1909", sgv1.Category_CATEGORY_MARKETING, "promo", "m1"); err != nil {
		t.Fatal(err)
	}
	own := &sgv1.ReportResultRequest{BusinessId: "acme", Phone: "55 1234-5678", Region: "MX", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT}
	for _, r := range []*sgv1.ReportResultRequest{{BusinessId: "acme", Phone: "(31) 99551-1909", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT}, own} {
		if _, err := g.Report(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.requests {
		if r.GetRegion() != "BR" {
			t.Errorf("check %v: region %q, want BR", r, r.GetRegion())
		}
	}
	if len(f.reports) != 2 || f.reports[0].GetRegion() != "BR" || f.reports[1].GetRegion() != "MX" {
		t.Errorf("reports %v: want regions BR, then the report's own MX", f.reports)
	}
	if own.GetRegion() != "MX" || own.GetBusinessId() != "acme" {
		t.Errorf("the caller's report was changed: %v", own)
	}
}
