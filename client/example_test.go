package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage/badger"
)

// exampleServer starts an in-process sendguard on an in-memory store whose clock
// stands still at Friday 2026-11-27 10:00 UTC, so that the examples' output is
// always the same. A real worker dials a running server instead (see
// ExampleNewGuard).
func exampleServer() (*client.Client, func()) {
	st, err := badger.Open(badger.Options{InMemory: true})
	if err != nil {
		log.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.HashSecret = []byte("example-hash-secret")
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Now = func() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) }
	srv, err := server.New(st, cfg)
	if err != nil {
		log.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.GRPCServer().Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///sendguard",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	c := client.New(conn, 0)
	return c, func() {
		c.Close()
		srv.GRPCServer().Stop()
		st.Close()
	}
}

// A sending worker claims each send before it goes (Reserve), reports what Meta
// answered (Report), and asks before the next one (Check).
func ExampleGuard() {
	c, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	g := client.NewGuard(c, "acme", client.GuardOptions{})
	marketing := sgv1.Category_CATEGORY_MARKETING

	// Before the send: claim it with your id for it, so that no other worker
	// (and no retry of this job) sends it too.
	resp, err := g.Reserve(ctx, "+55 11 98765-4321", marketing, "black_friday", "outbox-1")
	if err != nil {
		log.Fatal(err) //nolint:gocritic // exitAfterDefer: a program's way out; stop only tidies the example's server
	}
	fmt.Println("reserve:", resp.GetVerdict(), "duplicate:", resp.GetDuplicate(), resp.GetPhoneE164())

	// The same job again (a retry after a crash): nothing is counted twice.
	resp, _ = g.Reserve(ctx, "+5511987654321", marketing, "black_friday", "outbox-1")
	fmt.Println("again:  ", resp.GetVerdict(), "duplicate:", resp.GetDuplicate())

	// After the send: Meta refused it with 131049 (per-user marketing limit).
	_, err = g.Report(ctx, &sgv1.ReportResultRequest{
		Phone: "5511987654321", MessageId: "wamid.HBgL001", MessageRef: "outbox-1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131049,
		Category: marketing, Template: "black_friday",
	})
	if err != nil {
		log.Fatal(err)
	}

	// The next campaign waits for the cooldown; a utility message does not.
	resp, _ = g.Check(ctx, "+5511987654321", marketing, "cyber_monday")
	fmt.Println("next marketing:", resp.GetVerdict(), "retry at", resp.GetRetryAt().AsTime().Format(time.RFC3339))
	for _, r := range resp.GetReasons() {
		fmt.Println("  because", r.GetRule(), "predicts", r.GetMetaErrorCode())
	}
	resp, _ = g.Check(ctx, "+5511987654321", sgv1.Category_CATEGORY_UTILITY, "order_shipped")
	fmt.Println("utility:", resp.GetVerdict())
	// Output:
	// reserve: VERDICT_ALLOW duplicate: false +5511987654321
	// again:   VERDICT_ALLOW duplicate: true
	// next marketing: VERDICT_DEFER retry at 2026-11-28T10:00:00Z
	//   because RULE_ECOSYSTEM_LIMIT predicts 131049
	// utility: VERDICT_ALLOW
}

// Guard.Check answers ALLOW, DEFER (with the time to try again) or DENY, with the
// rules that decided.
func ExampleGuard_Check() {
	c, stop := exampleServer()
	defer stop()
	g := client.NewGuard(c, "acme", client.GuardOptions{})
	// Meta does not deliver marketing templates to US numbers.
	resp, err := g.Check(context.Background(), "+1 201 555 0123", sgv1.Category_CATEGORY_MARKETING, "promo")
	if err != nil {
		log.Fatal(err) //nolint:gocritic // exitAfterDefer: a program's way out; stop only tidies the example's server
	}
	fmt.Println(resp.GetVerdict())
	for _, r := range resp.GetReasons() {
		fmt.Println(r.GetRule(), r.GetDetail())
	}
	// Output:
	// VERDICT_DENY
	// RULE_REGION_BLOCKED Meta does not deliver marketing templates to numbers of region US (they fail with 131049).
}

// A worker dials once, with TLS and its API key when the server has them, and
// shares one Guard between its goroutines: one connection for every call.
func ExampleNewGuard() {
	c, err := client.Dial("127.0.0.1:50051", client.Options{
		Insecure: true, // a server on loopback; otherwise TLS: &tls.Config{...}
		APIKey:   os.Getenv("SENDGUARD_API_KEY"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	g := client.NewGuard(c, "acme", client.GuardOptions{AttemptTimeout: time.Second, CampaignID: "black-friday-2026"})

	send := func(ctx context.Context, phone, outboxID string) error {
		resp, err := g.Reserve(ctx, phone, sgv1.Category_CATEGORY_MARKETING, "black_friday", outboxID)
		switch {
		case err != nil:
			return err // sendguard unreachable after the retries: try the job later
		case resp.GetDuplicate():
			return nil // already claimed: another worker (or an earlier run) has it
		case resp.GetVerdict() == sgv1.Verdict_VERDICT_DEFER:
			return fmt.Errorf("deferred until %v", resp.GetRetryAt().AsTime()) // requeue for then
		case resp.GetVerdict() == sgv1.Verdict_VERDICT_DENY:
			return nil // drop it: opted out, not a number, blocked region…
		}
		// ... send through the WhatsApp API with biz_opaque_callback_data = outboxID,
		// then report Meta's answer:
		_, err = g.Report(ctx, &sgv1.ReportResultRequest{
			Phone: phone, MessageRef: outboxID, MessageId: "wamid.from-the-send-api",
			Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT,
		})
		return err
	}
	_ = send
}
