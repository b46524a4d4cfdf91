package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// seedHistory gives the golden tests' numbers a history, as of goldenT0.
func seedHistory(t *testing.T, s *inproc) {
	t.Helper()
	ctx := context.Background()
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(goldenT0.Add(d)) }
	marketing := sgv1.Category_CATEGORY_MARKETING
	reports := []*sgv1.ReportResultRequest{
		// 131049: the per-user marketing limit.
		{BusinessId: "acme", Phone: "5511987650001", MessageId: "wamid.1", Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED,
			ErrorCode: 131049, Category: marketing, Template: "black_friday", Timestamp: at(-time.Hour)},
		// 131050: Meta's opt-out record.
		{BusinessId: "acme", Phone: "5511987650003", MessageId: "wamid.3", Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED,
			ErrorCode: 131050, Category: marketing, Template: "black_friday", Timestamp: at(-2 * time.Hour)},
		// 130472 (experiment), after a delivered marketing message.
		{BusinessId: "acme", Phone: "5511987650004", MessageId: "wamid.4a", Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED,
			Category: marketing, Template: "welcome", Timestamp: at(-3 * time.Hour)},
		{BusinessId: "acme", Phone: "5511987650004", MessageId: "wamid.4b", Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED,
			ErrorCode: 130472, Category: marketing, Template: "black_friday", Timestamp: at(-90 * time.Minute)},
	}
	for _, r := range reports {
		if _, err := s.c.Report(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: "+5511987650002", OptedOut: true, Reason: "support ticket 42"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: "+5511987650005", OptedOut: false, Reason: "web form"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Inbound(ctx, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: "5511987650005", MessageId: "wamid.in5", Text: "hi, where is my order?", Timestamp: at(-30 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	// A marketing send reserved three hours ago: the frequency cap (1 per 24 h).
	for _, phone := range []string{"+5511987650004", "+5511987650006"} {
		if _, err := s.c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: marketing, Template: "welcome",
			Reserve: true, MessageRef: "ref-" + phone[len(phone)-4:], CampaignId: "autumn", SendAt: at(-3 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	// Business "beta" runs the frequency cap in shadow mode.
	if _, err := s.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "beta", Policy: &sgv1.Policy{ShadowRules: []sgv1.Rule{sgv1.Rule_RULE_FREQUENCY_CAP}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"shadow_rules"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "beta", Phone: "+5511987650007", Category: marketing, Template: "welcome",
		Reserve: true, MessageRef: "beta-1", SendAt: at(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
}

// TestCheckGolden: what `sendguard check` prints for a person, one scenario per
// rule family, in the São Paulo time zone.
func TestCheckGolden(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	seedHistory(t, s)
	// Business "gamma" blocks Argentina itself: its own rule, not Meta's.
	if _, err := s.c.SetPolicy(context.Background(), &sgv1.SetPolicyRequest{BusinessId: "gamma", Policy: &sgv1.Policy{BlockedRegions: []string{"US", "AR"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"blocked_regions"}}}); err != nil {
		t.Fatal(err)
	}
	// Template "order_update" (pt_BR) went out as utility and Meta billed it
	// as marketing: a utility check of it is judged as marketing.
	for _, r := range []*sgv1.ReportResultRequest{
		{BusinessId: "acme", Phone: "5511987650011", MessageId: "wamid.11", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT,
			Category: sgv1.Category_CATEGORY_UTILITY, Template: "order_update", TemplateLanguage: "pt_BR", Timestamp: timestamppb.New(goldenT0.Add(-2 * time.Hour))},
		{BusinessId: "acme", Phone: "5511987650011", MessageId: "wamid.11", Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED,
			PricingCategory: "marketing", Timestamp: timestamppb.New(goldenT0.Add(-2*time.Hour + time.Minute))},
	} {
		if _, err := s.c.Report(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	common := []string{"--addr", s.addr, "--time-zone", goldenZone, "--send-at", "2026-11-27T10:00:00Z"}
	var out strings.Builder
	for _, args := range [][]string{
		{"--business", "acme", "--phone", "+55 11 98765-0009", "--category", "utility", "--template", "order_shipped"},
		{"--business", "acme", "--phone", "5511987650001", "--template", "cyber_monday"},
		{"--business", "acme", "--phone", "+5511987650002", "--template", "cyber_monday"},
		{"--business", "acme", "--phone", "+5511987650003", "--template", "cyber_monday"},
		{"--business", "acme", "--phone", "+5511987650004", "--template", "cyber_monday"},
		{"--business", "acme", "--phone", "+1 201 555 0123", "--template", "cyber_monday"},
		{"--business", "acme", "--phone", "12345", "--template", "cyber_monday"},
		{"--business", "acme", "--phone", "+5511987650009", "--category", "service"},
		{"--business", "acme", "--phone", "+5511987650005", "--category", "service"},
		{"--business", "acme", "--phone", "+5511987650010", "--template", "cyber_monday", "--reserve", "--message-ref", "cm-10"},
		{"--business", "acme", "--phone", "+5511987650010", "--template", "cyber_monday", "--reserve", "--message-ref", "cm-10"},
		{"--business", "acme", "--phone", "+5511987650001", "--template", "cyber_monday", "--reserve", "--message-ref", "cm-1"},
		{"--business", "beta", "--phone", "+5511987650007", "--template", "welcome"},
		{"--business", "acme", "--user-id", "BR.1502576394655843", "--template", "cyber_monday"},
		{"+5511987650003", "--business", "acme", "--template", "cyber_monday"},
		{"+54 9 11 2345-6789", "--business", "gamma", "--template", "cyber_monday"},
		{"+1 201 555 0123", "--business", "gamma", "--template", "cyber_monday"},
		{"--business", "acme", "--phone", "+1 201 555 0123", "--category", "utility", "--template", "order_update", "--template-language", "pt_BR"},
	} {
		stdout, stderr, err := runCmd(t, checkCmd(), append(args, common...)...)
		if err != nil || stderr != "" {
			t.Fatalf("check %v: %v\n%s", args, err, stderr)
		}
		out.WriteString("$ sendguard check " + shellJoin(args) + "\n" + stdout + "\n")
	}
	golden(t, "check.golden", []byte(out.String()))
}

// TestCheckJSON: --json prints the response as the HTTP API will: protojson's
// names (lowerCamelCase), enum names, unset fields left out, indented by two
// spaces and nothing else (protojson's own spacing varies on purpose).
func TestCheckJSON(t *testing.T) {
	s := startInProcess(t, goldenT0)
	seedHistory(t, s)
	stdout, _, err := runCmd(t, checkCmd(), "5511987650001", "--addr", s.addr, "--business", "acme", "--json")
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "verdict": "VERDICT_DEFER",
  "reasons": [
    {
      "rule": "RULE_ECOSYSTEM_LIMIT",
      "detail": "Meta refused marketing to this number with 131049 (per-user marketing limit) on 2026-11-27 09:00 UTC; cooldown 24h ends 2026-11-28 09:00 UTC.",
      "metaErrorCode": 131049,
      "until": "2026-11-28T09:00:00Z",
      "verdict": "VERDICT_DEFER"
    }
  ],
  "retryAt": "2026-11-28T09:00:00Z",
  "phoneE164": "+5511987650001",
  "effectiveCategory": "CATEGORY_MARKETING"
}
`
	if stdout != want {
		t.Errorf("--json:\n%s\nwant:\n%s", stdout, want)
	}
}

// TestCheckFlags: mistakes are caught before any call.
func TestCheckFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--phone", "+5511987650001"},
		{"--business", "acme"},
		{"--business", "acme", "--phone", "1", "--category", "promo"},
		{"--business", "acme", "--phone", "1", "--reserve"},
		{"--business", "acme", "--phone", "1", "--message-ref", "x"},
		{"--business", "acme", "--phone", "1", "--send-at", "tomorrow"},
		{"--business", "acme", "--phone", "1", "--addr", "nohostport"},
		{"+5511987650001", "--business", "acme", "--phone", "+5511987650002"},
		{"+5511987650001", "+5511987650002", "--business", "acme"},
	} {
		if _, _, err := runCmd(t, checkCmd(), args...); err == nil {
			t.Errorf("check %v: no error", args)
		}
	}
}
