package server

import (
	"context"
	"testing"

	"github.com/sendguard/sendguard/internal/buildinfo"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestBuildInfoMetric: /metrics carries sendguard_build_info{version,revision,
// goversion} 1, with this binary's build information.
func TestBuildInfoMetric(t *testing.T) {
	h := newHarness(t)
	mfs, err := h.srv.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := buildinfo.Get()
	for _, mf := range mfs {
		if mf.GetName() != "sendguard_build_info" {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%d series", len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if m.GetGauge().GetValue() != 1 || labels["version"] != want.Version || labels["revision"] != want.Revision ||
			labels["goversion"] != want.GoVersion || len(labels) != 3 {
			t.Fatalf("sendguard_build_info %v = %v, want %+v = 1", labels, m.GetGauge().GetValue(), want)
		}
		return
	}
	t.Fatal("no sendguard_build_info")
}

// TestContactPreviewsAreNotCounted: GetContact's decision per category is a
// preview, not a check: sendguard_decisions_total and
// sendguard_decision_reasons_total count only what CheckSend was asked.
func TestContactPreviewsAreNotCounted(t *testing.T) {
	h := newHarness(t)
	h.report(t, failed(brPhone, 131049, t0))
	h.check(t, marketing(brPhone)) // one DEFER, one ECOSYSTEM_LIMIT reason
	for range 3 {
		if _, err := h.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: "acme", Phone: brPhone}); err != nil {
			t.Fatal(err)
		}
	}
	decisions := testCounter(t, h, "sendguard_decisions_total", "defer") + testCounter(t, h, "sendguard_decisions_total", "allow") +
		testCounter(t, h, "sendguard_decisions_total", "deny")
	if decisions != 1 {
		t.Errorf("sendguard_decisions_total: %v, want 1 (the check; not the 12 previews)", decisions)
	}
	if n := testCounter(t, h, "sendguard_decision_reasons_total", "ECOSYSTEM_LIMIT"); n != 1 {
		t.Errorf("sendguard_decision_reasons_total{rule=ECOSYSTEM_LIMIT}: %v, want 1", n)
	}
}

// TestForgetTwiceSaysTheOptOutIsKept: a second forget finds nothing stored but
// still answers suppressed, since the first one's suppression entry stays;
// forget_opt_out drops it and says nothing is kept.
func TestForgetTwiceSaysTheOptOutIsKept(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: brPhone, OptedOut: true}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []*sgv1.ForgetContactResponse{{Found: true, Suppressed: true}, {Found: false, Suppressed: true}} {
		resp, err := h.c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: brPhone})
		if err != nil || resp.GetFound() != want.GetFound() || resp.GetSuppressed() != want.GetSuppressed() {
			t.Fatalf("forget %d: %v %v, want %v", i+1, resp, err, want)
		}
	}
	resp, err := h.c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: brPhone, ForgetOptOut: true})
	if err != nil || resp.GetFound() || resp.GetSuppressed() {
		t.Fatalf("forget --forget-opt-out: %v %v", resp, err)
	}
	resp, err = h.c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: "+5511987654000"})
	if err != nil || resp.GetFound() || resp.GetSuppressed() {
		t.Fatalf("forget of a stranger: %v %v", resp, err)
	}
}
