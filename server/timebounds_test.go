package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestEventTimeBound: an event dated more than max_event_skew after the server's
// clock is refused, naming timestamp and the bound, and nothing is recorded; one
// within the skew is taken as given (a later check sees it).
func TestEventTimeBound(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	far := timestamppb.New(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	cases := []struct {
		name string
		call func() error
	}{
		{"ReportInbound", func() error {
			_, err := h.c.Inbound(ctx, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "wamid.in9999", Text: "hi", Timestamp: far})
			return err
		}},
		{"ReportResult", func() error {
			r := failed(brPhone, 131049, t0)
			r.Timestamp = far
			_, err := h.c.Report(ctx, r)
			return err
		}},
		{"ReportResult just past the skew", func() error {
			r := failed(brPhone, 131049, t0)
			r.Timestamp = timestamppb.New(t0.Add(DefaultMaxEventSkew + time.Second))
			_, err := h.c.Report(ctx, r)
			return err
		}},
	}
	for _, c := range cases {
		err := c.call()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "timestamp") || !strings.Contains(err.Error(), "max_event_skew") {
			t.Errorf("%s: %v; want INVALID_ARGUMENT naming timestamp and max_event_skew", c.name, err)
		}
	}
	// Nothing was recorded: no window, no cooldown.
	resp := h.check(t, marketing(brPhone))
	if resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW || resp.GetServiceWindowUntil() != nil {
		t.Fatalf("after refused events: %v", resp)
	}

	// Within the skew: taken as given.
	r := failed(brPhone, 131049, t0.Add(DefaultMaxEventSkew))
	h.report(t, r)
	resp = h.check(t, marketing(brPhone))
	if resp.GetVerdict() != sgv1.Verdict_VERDICT_DEFER || resp.GetRetryAt().AsTime() != t0.Add(DefaultMaxEventSkew+24*time.Hour) {
		t.Fatalf("131049 dated at the skew's edge: %v", resp)
	}
}

// TestSendAtBound: send_at at most max_plan_ahead ahead, on unary checks and as a
// row error in a stream (the stream goes on).
func TestSendAtBound(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxPlanAhead = 30 * 24 * time.Hour })
	req := marketing(brPhone)
	req.SendAt = timestamppb.New(t0.Add(30 * 24 * time.Hour))
	if resp := h.check(t, req); resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
		t.Fatalf("send_at at the bound: %v", resp)
	}
	req.SendAt = timestamppb.New(t0.Add(30*24*time.Hour + time.Second))
	_, err := h.c.Check(context.Background(), req)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "send_at") || !strings.Contains(err.Error(), "30d (max_plan_ahead)") {
		t.Fatalf("send_at past the bound: %v", err)
	}

	stream, err := h.c.CheckStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	far := marketing(brPhone)
	far.RequestId, far.SendAt = "far", timestamppb.New(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	next := marketing(brPhone)
	next.RequestId = "next"
	for _, r := range []*sgv1.CheckSendRequest{far, next} {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	_ = stream.CloseSend()
	a, err := stream.Recv()
	if err != nil || a.GetRequestId() != "far" || codes.Code(a.GetError().GetCode()) != codes.InvalidArgument {
		t.Fatalf("far row: %v %v", a, err)
	}
	b, err := stream.Recv()
	if err != nil || b.GetRequestId() != "next" || b.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
		t.Fatalf("row after it: %v %v", b, err)
	}
}
