package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

const (
	brPhone = "+5511987654321"
	mxPhone = "+525512345678"
	usPhone = "+16505551234"
	caPhone = "+14165550123"
)

var (
	allow  = sgv1.Verdict_VERDICT_ALLOW
	deferV = sgv1.Verdict_VERDICT_DEFER
	deny   = sgv1.Verdict_VERDICT_DENY
)

func TestCheckSendInvalidArgument(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name  string
		req   *sgv1.CheckSendRequest
		field string
	}{
		{"no business", &sgv1.CheckSendRequest{Phone: brPhone, Category: sgv1.Category_CATEGORY_MARKETING}, "business_id"},
		{"no recipient", &sgv1.CheckSendRequest{BusinessId: "acme", Category: sgv1.Category_CATEGORY_MARKETING}, "phone or user_id"},
		{"no category", &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone}, "category"},
		{"unknown category", &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone, Category: 99}, "category"},
		{"long phone", &sgv1.CheckSendRequest{BusinessId: "acme", Phone: strings.Repeat("1", 65), Category: sgv1.Category_CATEGORY_MARKETING}, "phone"},
		{"long business", &sgv1.CheckSendRequest{BusinessId: strings.Repeat("b", 129), Phone: brPhone, Category: sgv1.Category_CATEGORY_MARKETING}, "business_id"},
		{"NUL in business", &sgv1.CheckSendRequest{BusinessId: "a\x00b", Phone: brPhone, Category: sgv1.Category_CATEGORY_MARKETING}, "business_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.c.Check(context.Background(), tc.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.field) {
				t.Fatalf("got %v, want InvalidArgument naming %q", err, tc.field)
			}
		})
	}
}

func TestUnparsablePhoneIsDenied(t *testing.T) {
	h := newHarness(t)
	for _, cat := range []sgv1.Category{sgv1.Category_CATEGORY_MARKETING, sgv1.Category_CATEGORY_AUTHENTICATION} {
		resp := h.check(t, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "not a phone", Category: cat})
		if resp.GetVerdict() != deny || !slices.Equal(rules(resp), []sgv1.Rule{sgv1.Rule_RULE_INVALID_NUMBER}) {
			t.Fatalf("%v: got %v %v, want DENY INVALID_NUMBER", cat, resp.GetVerdict(), rules(resp))
		}
	}
}

// TestSeedErrors plays the four errors of the seed document through ReportResult and
// checks the verdict each one causes.
func TestSeedErrors(t *testing.T) {
	h := newHarness(t)
	phones := map[int32]string{131049: "+5511987650001", 131050: "+5511987650002", 130472: "+5511987650003", 131026: "+5511987650004"}
	for code, phone := range phones {
		h.report(t, failed(phone, code, t0))
	}
	h.clock.Advance(time.Hour)
	cases := []struct {
		code    int32
		verdict sgv1.Verdict
		rule    sgv1.Rule
		retry   time.Time
	}{
		{131049, deferV, sgv1.Rule_RULE_ECOSYSTEM_LIMIT, t0.Add(24 * time.Hour)},
		{131050, deny, sgv1.Rule_RULE_OPTED_OUT, time.Time{}},
		{130472, deferV, sgv1.Rule_RULE_EXPERIMENT, t0.Add(30 * 24 * time.Hour)},
		{131026, deferV, sgv1.Rule_RULE_UNDELIVERABLE, t0.Add(24 * time.Hour)},
	}
	for _, tc := range cases {
		resp := h.check(t, marketing(phones[tc.code]))
		if resp.GetVerdict() != tc.verdict || rules(resp)[0] != tc.rule {
			t.Errorf("%d: got %v %v, want %v %v", tc.code, resp.GetVerdict(), rules(resp), tc.verdict, tc.rule)
		}
		if resp.GetReasons()[0].GetMetaErrorCode() != tc.code {
			t.Errorf("%d: reason predicts %d", tc.code, resp.GetReasons()[0].GetMetaErrorCode())
		}
		if !tc.retry.IsZero() && !resp.GetRetryAt().AsTime().Equal(tc.retry) {
			t.Errorf("%d: retry_at %v, want %v", tc.code, resp.GetRetryAt().AsTime(), tc.retry)
		}
	}
	// A utility template is not stopped by the marketing-only rules, but 131026 is
	// about the number: it defers every category.
	util := func(p string) *sgv1.CheckSendRequest {
		return &sgv1.CheckSendRequest{BusinessId: "acme", Phone: p, Category: sgv1.Category_CATEGORY_UTILITY}
	}
	for _, code := range []int32{131049, 131050, 130472} {
		if resp := h.check(t, util(phones[code])); resp.GetVerdict() != allow {
			t.Errorf("utility after %d: got %v %v, want ALLOW", code, resp.GetVerdict(), rules(resp))
		}
	}
	if resp := h.check(t, util(phones[131026])); resp.GetVerdict() != deferV {
		t.Errorf("utility after 131026: got %v, want DEFER", resp.GetVerdict())
	}
}

// TestConcurrentReserves: 40 concurrent reserving checks on a fresh number give
// exactly one ALLOW (the 1-per-24h frequency cap).
func TestConcurrentReserves(t *testing.T) {
	h := newHarness(t)
	var allowed, deferred atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := marketing(brPhone)
			req.Reserve, req.MessageRef = true, fmt.Sprintf("ref-%d", i)
			resp, err := h.c.Check(context.Background(), req)
			if err != nil {
				t.Error(err)
				return
			}
			switch resp.GetVerdict() {
			case allow:
				allowed.Add(1)
			case deferV:
				deferred.Add(1)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 1 || deferred.Load() != 39 {
		t.Fatalf("allowed %d, deferred %d; want 1 and 39", allowed.Load(), deferred.Load())
	}
}

func TestReserveIsIdempotentAndFailedStopsCounting(t *testing.T) {
	h := newHarness(t)
	req := marketing(brPhone)
	req.Reserve, req.MessageRef = true, "send-1"
	if resp := h.check(t, req); resp.GetVerdict() != allow || resp.GetDuplicate() {
		t.Fatalf("first reserve: %v dup=%v", resp.GetVerdict(), resp.GetDuplicate())
	}
	if resp := h.check(t, req); resp.GetVerdict() != allow || !resp.GetDuplicate() {
		t.Fatalf("same ref again: %v dup=%v, want ALLOW duplicate", resp.GetVerdict(), resp.GetDuplicate())
	}
	req2 := proto.Clone(req).(*sgv1.CheckSendRequest)
	req2.MessageRef = "send-2"
	resp := h.check(t, req2)
	if resp.GetVerdict() != deferV || rules(resp)[0] != sgv1.Rule_RULE_FREQUENCY_CAP {
		t.Fatalf("second send: %v %v, want DEFER FREQUENCY_CAP", resp.GetVerdict(), rules(resp))
	}
	if !resp.GetRetryAt().AsTime().Equal(t0.Add(24 * time.Hour)) {
		t.Fatalf("retry_at %v, want %v", resp.GetRetryAt().AsTime(), t0.Add(24*time.Hour))
	}
	// The send API refused the first send: it stops counting toward the cap.
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: brPhone, MessageRef: "send-1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131000, Timestamp: timestamppb.New(t0)})
	h.clock.Advance(10 * time.Second) // past the pair interval
	if resp := h.check(t, req2); resp.GetVerdict() != allow {
		t.Fatalf("after FAILED: %v %v, want ALLOW", resp.GetVerdict(), rules(resp))
	}
}

func TestReportsAreIdempotent(t *testing.T) {
	h := newHarness(t)
	rep := failed(brPhone, 131049, t0)
	if h.report(t, rep).GetDuplicate() {
		t.Fatal("first report marked duplicate")
	}
	if !h.report(t, rep).GetDuplicate() {
		t.Fatal("second report not marked duplicate")
	}
	in := &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "wamid.in1", Text: "hi", Timestamp: timestamppb.New(t0)}
	if h.inbound(t, in).GetDuplicate() || !h.inbound(t, in).GetDuplicate() {
		t.Fatal("inbound duplicate detection")
	}
	c, err := h.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: "acme", Phone: brPhone})
	if err != nil {
		t.Fatal(err)
	}
	if c.GetNumber().GetEcosystemStreak() != 1 {
		t.Fatalf("streak %d after a duplicated 131049, want 1", c.GetNumber().GetEcosystemStreak())
	}
}

func TestInboundOpensWindow(t *testing.T) {
	for _, kind := range []sgv1.InboundKind{sgv1.InboundKind_INBOUND_KIND_MESSAGE, sgv1.InboundKind_INBOUND_KIND_CALL} {
		t.Run(kind.String(), func(t *testing.T) {
			h := newHarness(t)
			svc := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone, Category: sgv1.Category_CATEGORY_SERVICE}
			if resp := h.check(t, svc); resp.GetVerdict() != deny || rules(resp)[0] != sgv1.Rule_RULE_SERVICE_WINDOW {
				t.Fatalf("before inbound: %v %v", resp.GetVerdict(), rules(resp))
			}
			h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "in-1", Kind: kind})
			resp := h.check(t, svc)
			if resp.GetVerdict() != allow || !resp.GetServiceWindowUntil().AsTime().Equal(t0.Add(24*time.Hour)) {
				t.Fatalf("after inbound: %v %v window %v", resp.GetVerdict(), rules(resp), resp.GetServiceWindowUntil())
			}
			h.clock.Advance(24 * time.Hour)
			if resp := h.check(t, svc); resp.GetVerdict() != deny {
				t.Fatalf("after 24h: %v", resp.GetVerdict())
			}
		})
	}
}

func TestOpenWindowLiftsEcosystemLimit(t *testing.T) {
	h := newHarness(t)
	h.report(t, failed(brPhone, 131049, t0))
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != deferV {
		t.Fatalf("got %v", resp.GetVerdict())
	}
	h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "in-1", Text: "hello"})
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != allow {
		t.Fatalf("window open: got %v %v", resp.GetVerdict(), rules(resp))
	}
}

func TestKeywordsOptOutAndIn(t *testing.T) {
	h := newHarness(t)
	for i, text := range []string{"Please stop sending me these", "STOP"} {
		resp := h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: fmt.Sprint("m", i), Text: text,
			Timestamp: timestamppb.New(t0.Add(time.Duration(i) * time.Minute))})
		if resp.GetOptedOut() != (text == "STOP") {
			t.Fatalf("%q: opted_out=%v", text, resp.GetOptedOut())
		}
	}
	h.clock.Advance(48 * time.Hour)
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != deny || rules(resp)[0] != sgv1.Rule_RULE_OPTED_OUT {
		t.Fatalf("after STOP: %v %v", resp.GetVerdict(), rules(resp))
	}
	// A chatbot's "back" button is not an opt-in (issue 14).
	if resp := h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "m9", Text: "Voltar"}); resp.GetOptedIn() {
		t.Fatalf("Voltar: opted_in")
	}
	h.clock.Advance(48 * time.Hour)
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != deny || rules(resp)[0] != sgv1.Rule_RULE_OPTED_OUT {
		t.Fatalf("after VOLTAR: %v %v", resp.GetVerdict(), rules(resp))
	}
	h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "m10", Text: "start"})
	h.clock.Advance(48 * time.Hour)
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != allow {
		t.Fatalf("after START: %v %v", resp.GetVerdict(), rules(resp))
	}
}

func TestRegionBlocked(t *testing.T) {
	h := newHarness(t)
	if resp := h.check(t, marketing(usPhone)); resp.GetVerdict() != deny || rules(resp)[0] != sgv1.Rule_RULE_REGION_BLOCKED {
		t.Fatalf("US marketing: %v %v", resp.GetVerdict(), rules(resp))
	}
	if resp := h.check(t, marketing(caPhone)); resp.GetVerdict() != allow {
		t.Fatalf("CA marketing: %v %v", resp.GetVerdict(), rules(resp))
	}
	util := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: usPhone, Category: sgv1.Category_CATEGORY_UTILITY}
	if resp := h.check(t, util); resp.GetVerdict() != allow {
		t.Fatalf("US utility: %v %v", resp.GetVerdict(), rules(resp))
	}
}

// TestIdentitySpellings: every spelling of a number lands on one history.
func TestIdentitySpellings(t *testing.T) {
	h := newHarness(t)
	// Meta names the Mexican recipient by its WhatsApp ID with a 1 after 52.
	h.report(t, failed("5215512345678", 131050, t0))
	for _, p := range []string{mxPhone, "525512345678", "+52 55 1234 5678", "5215512345678"} {
		resp := h.check(t, marketing(p))
		if resp.GetVerdict() != deny || resp.GetPhoneE164() != mxPhone {
			t.Fatalf("%q: %v e164=%q", p, resp.GetVerdict(), resp.GetPhoneE164())
		}
		if resp.GetWaId() != "5215512345678" {
			t.Fatalf("%q: wa_id %q, want the learned WhatsApp ID", p, resp.GetWaId())
		}
	}
	// A Brazilian mobile kept in its old 8-digit form.
	h.report(t, failed("551187654321", 131050, t0))
	if resp := h.check(t, marketing("+55 11 98765-4321")); resp.GetVerdict() != deny {
		t.Fatalf("BR 9-digit after 8-digit report: %v", resp.GetVerdict())
	}
}

func TestUserIDOnly(t *testing.T) {
	h := newHarness(t)
	// A user known only by a BSUID writes STOP (a day ago: the window, which
	// lifts UNDELIVERABLE while open, is closed when the number is checked).
	h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", UserId: "BR.1502576394655843", MessageId: "m1", Text: "stop",
		Timestamp: timestamppb.New(t0.Add(-26 * time.Hour))})
	req := &sgv1.CheckSendRequest{BusinessId: "acme", UserId: "BR.1502576394655843", Category: sgv1.Category_CATEGORY_MARKETING}
	if resp := h.check(t, req); resp.GetVerdict() != deny {
		t.Fatalf("by user_id: %v %v", resp.GetVerdict(), rules(resp))
	}
	// A later event links the BSUID to a number: the history follows, and the
	// number-wide facts of that number are read for checks by user_id alone.
	h.report(t, failed("+5511987650009", 131026, t0))
	h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", UserId: "BR.1502576394655843", Phone: "+5511987650009", MessageId: "m2", Text: "hi",
		// Older than the window, which would lift UNDELIVERABLE while open.
		Timestamp: timestamppb.New(t0.Add(-25 * time.Hour))})
	resp := h.check(t, req)
	if resp.GetPhoneE164() != "+5511987650009" || !slices.Contains(rules(resp), sgv1.Rule_RULE_OPTED_OUT) || !slices.Contains(rules(resp), sgv1.Rule_RULE_UNDELIVERABLE) {
		t.Fatalf("after link: %v %v e164=%q", resp.GetVerdict(), rules(resp), resp.GetPhoneE164())
	}
	if resp := h.check(t, marketing("+5511987650009")); resp.GetVerdict() != deny || resp.GetUserId() != "BR.1502576394655843" {
		t.Fatalf("by phone after link: %v user_id=%q", resp.GetVerdict(), resp.GetUserId())
	}
}

func TestNumberFactsSharedAcrossBusinesses(t *testing.T) {
	h := newHarness(t, sharing)
	h.report(t, failed(brPhone, 131049, t0))
	other := marketing(brPhone)
	other.BusinessId = "globex"
	if resp := h.check(t, other); resp.GetVerdict() != deferV || rules(resp)[0] != sgv1.Rule_RULE_ECOSYSTEM_LIMIT {
		t.Fatalf("other business: %v %v", resp.GetVerdict(), rules(resp))
	}
	// A business that does not share neither reads nor contributes.
	_, err := h.c.SetPolicy(context.Background(), &sgv1.SetPolicyRequest{BusinessId: "initech",
		Policy: &sgv1.Policy{ShareNumberSignals: proto.Bool(false)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"share_number_signals"}}})
	if err != nil {
		t.Fatal(err)
	}
	private := marketing(brPhone)
	private.BusinessId = "initech"
	if resp := h.check(t, private); resp.GetVerdict() != allow {
		t.Fatalf("non-sharing business: %v %v", resp.GetVerdict(), rules(resp))
	}
}

func TestPolicyConsentAndShadow(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	set, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme",
		Policy: &sgv1.Policy{RequireOptIn: proto.Bool(true), PairBurst: proto.Int32(3)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"require_opt_in"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !set.GetEffective().GetRequireOptIn() || set.GetEffective().GetPairBurst() != 45 || set.Overrides.PairBurst != nil {
		t.Fatalf("mask not respected: %v", set)
	}
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != deny || rules(resp)[0] != sgv1.Rule_RULE_NO_CONSENT {
		t.Fatalf("no consent: %v %v", resp.GetVerdict(), rules(resp))
	}
	if _, err := h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: brPhone, OptedOut: false, Reason: "web form"}); err != nil {
		t.Fatal(err)
	}
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != allow {
		t.Fatalf("with consent: %v %v", resp.GetVerdict(), rules(resp))
	}
	// Shadow the frequency cap: the reason is reported, the verdict stays ALLOW.
	if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme",
		Policy: &sgv1.Policy{ShadowRules: []sgv1.Rule{sgv1.Rule_RULE_FREQUENCY_CAP, sgv1.Rule_RULE_PAIR_RATE}}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"shadow_rules"}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		req := marketing(brPhone)
		req.Reserve, req.MessageRef = true, fmt.Sprint("s", i)
		resp := h.check(t, req)
		if resp.GetVerdict() != allow || (i == 1) != resp.GetShadow() {
			t.Fatalf("send %d: %v shadow=%v %v", i, resp.GetVerdict(), resp.GetShadow(), rules(resp))
		}
	}
	// Opt-outs are never shadowed, even with the whole business in shadow mode.
	if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: &sgv1.Policy{Shadow: proto.Bool(true)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"shadow"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: brPhone, OptedOut: true}); err != nil {
		t.Fatal(err)
	}
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != deny {
		t.Fatalf("opt-out in shadow mode: %v", resp.GetVerdict())
	}
	got, err := h.c.Policy(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !got.GetOverrides().GetShadow() || !got.GetOverrides().GetRequireOptIn() || len(got.GetOverrides().GetShadowRules()) != 2 {
		t.Fatalf("overrides: %v", got.GetOverrides())
	}
	// Bad policies name the field.
	_, err = h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: &sgv1.Policy{QuietHours: &sgv1.QuietHours{Start: "25:00", End: "08:00"}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "quiet_hours.start") {
		t.Fatalf("bad quiet hours: %v", err)
	}
	_, err = h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: &sgv1.Policy{}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"nope"}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad mask: %v", err)
	}
	_, err = h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{{Count: 2, Window: durationpb.New(-time.Hour)}}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad cap: %v", err)
	}
}

func TestForgetContact(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.report(t, failed(brPhone, 131050, t0))
	resp, err := h.c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: brPhone})
	if err != nil || !resp.GetFound() || !resp.GetSuppressed() {
		t.Fatalf("forget: %v %v", resp, err)
	}
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != deny || rules(resp)[0] != sgv1.Rule_RULE_OPTED_OUT {
		t.Fatalf("after forget: %v %v (the opt-out must survive as a suppression)", resp.GetVerdict(), rules(resp))
	}
	if _, err := h.c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: brPhone, ForgetOptOut: true}); err != nil {
		t.Fatal(err)
	}
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != allow {
		t.Fatalf("after forget_opt_out: %v %v", resp.GetVerdict(), rules(resp))
	}
}

func TestGetContact(t *testing.T) {
	h := newHarness(t)
	h.report(t, failed(brPhone, 131049, t0))
	h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "in", Text: "hi", Timestamp: timestamppb.New(t0.Add(-48 * time.Hour))})
	c, err := h.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: "acme", Phone: brPhone})
	if err != nil {
		t.Fatal(err)
	}
	if c.GetPhoneE164() != brPhone || len(c.GetEvents()) != 2 || len(c.GetDecisions()) != 4 {
		t.Fatalf("contact: %v", c)
	}
	if !c.GetNumber().GetEcosystemUntil().AsTime().Equal(t0.Add(24 * time.Hour)) {
		t.Fatalf("ecosystem_until %v", c.GetNumber().GetEcosystemUntil())
	}
	for _, d := range c.GetDecisions() {
		want := allow
		switch d.GetCategory() {
		case sgv1.Category_CATEGORY_MARKETING:
			want = deferV
		case sgv1.Category_CATEGORY_SERVICE:
			want = deny
		}
		if d.GetDecision().GetVerdict() != want {
			t.Errorf("%v: %v, want %v", d.GetCategory(), d.GetDecision().GetVerdict(), want)
		}
	}
}

func TestCheckSendStream(t *testing.T) {
	h := newHarness(t)
	h.report(t, failed(brPhone, 131050, t0))
	stream, err := h.c.CheckStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reqs := []*sgv1.CheckSendRequest{
		{RequestId: "1", BusinessId: "acme", Phone: brPhone, Category: sgv1.Category_CATEGORY_MARKETING},
		{RequestId: "2", BusinessId: "acme", Phone: "garbage", Category: sgv1.Category_CATEGORY_MARKETING},
		{RequestId: "3", BusinessId: "acme", Phone: caPhone},
		{RequestId: "4", BusinessId: "", Phone: caPhone, Category: sgv1.Category_CATEGORY_MARKETING},
		{RequestId: "5", BusinessId: "acme", Phone: caPhone, Category: sgv1.Category_CATEGORY_MARKETING},
	}
	want := []struct {
		verdict sgv1.Verdict
		code    codes.Code
	}{{deny, codes.OK}, {deny, codes.OK}, {0, codes.InvalidArgument}, {0, codes.InvalidArgument}, {allow, codes.OK}}
	go func() {
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				return
			}
		}
		stream.CloseSend()
	}()
	for i := range reqs {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if resp.GetRequestId() != reqs[i].GetRequestId() || resp.GetVerdict() != want[i].verdict || codes.Code(resp.GetError().GetCode()) != want[i].code {
			t.Fatalf("row %d: %v", i, resp)
		}
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
}
