package server

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
	"github.com/sendguard/sendguard/storage/faulty"
)

// TestStorageFault: a full disk gives UNAVAILABLE with a clear message on every
// path, health goes NOT_SERVING, and service resumes when the fault clears.
func TestStorageFault(t *testing.T) {
	st, err := badger.Open(badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs := faulty.Wrap(st)
	h := newHarnessOn(t, func(storage.Store, Config) storage.Store { return fs }, func(c *Config) { c.WebhookSecret = testSecret })
	ctx := context.Background()
	health := healthpb.NewHealthClient(h.c.Conn())
	serving := func() healthpb.HealthCheckResponse_ServingStatus {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: serviceName})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	h.check(t, marketing(brPhone)) // loads the business while the store works

	fs.Fail(syscall.ENOSPC)
	_, err = h.c.Check(ctx, marketing(brPhone))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("CheckSend on a full disk: %v", err)
	}
	if _, err := h.c.Report(ctx, failed(brPhone, 131049, t0)); status.Code(err) != codes.Unavailable {
		t.Fatalf("ReportResult on a full disk: %v", err)
	}
	st2, err := h.c.CheckStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st2.Send(marketing(brPhone)); err != nil {
		t.Fatal(err)
	}
	row, err := st2.Recv()
	if err != nil || codes.Code(row.GetError().GetCode()) != codes.Unavailable {
		t.Fatalf("stream row on a full disk: %v %v", row, err)
	}
	st2.CloseSend()
	if code := postSigned(t, h.srv.HTTPHandler(), body(t, pnid, statuses(newStatus("w", "failed", t0, "5511987654321", 131050)))); code != 503 {
		t.Fatalf("webhook on a full disk: %d, want 503 so that Meta retries", code)
	}
	if got := serving(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health with a failing store: %v", got)
	}

	fs.Fail(nil)
	deadline := time.Now().Add(10 * time.Second) // the probe runs every second
	for serving() != healthpb.HealthCheckResponse_SERVING {
		if time.Now().After(deadline) {
			t.Fatal("health did not come back within 10s of the fault clearing")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
		t.Fatalf("after recovery: %v", resp)
	}
}
