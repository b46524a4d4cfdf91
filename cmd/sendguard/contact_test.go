package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestContactGolden: what `sendguard contact` prints about a number: state, facts,
// sends, events and the decision per category with reasons.
func TestContactGolden(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	seedHistory(t, s)
	var out strings.Builder
	for _, args := range [][]string{
		{"+5511987650004", "--business", "acme"},
		{"5511987650002", "--business", "acme"},
		{"+55 11 98765-0005", "--business", "acme"},
		{"+5511987650099", "--business", "acme"},
	} {
		stdout, stderr, err := runCmd(t, contactCmd(), append(args, "--addr", s.addr, "--time-zone", goldenZone)...)
		if err != nil || stderr != "" {
			t.Fatalf("contact %v: %v\n%s", args, err, stderr)
		}
		out.WriteString("$ sendguard contact " + shellJoin(args) + "\n" + stdout + "\n")
	}
	golden(t, "contact.golden", []byte(out.String()))
}

// TestReportInboundForget: the other client commands against a server, end to end.
func TestReportInboundForget(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	conn := []string{"--addr", s.addr, "--time-zone", goldenZone}
	run := func(mk func() *cobra.Command, args ...string) string {
		t.Helper()
		stdout, stderr, err := runCmd(t, mk(), append(args, conn...)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr)
		}
		return stdout
	}
	report := []string{"--business", "acme", "--phone", "5511987650001", "--message-id", "wamid.1", "--status", "failed",
		"--error-code", "131049", "--category", "marketing", "--template", "promo", "--at", "2026-11-27T09:00:00Z"}
	if got := run(reportCmd, report...); got != "recorded: failed 131049 for +5511987650001\n" {
		t.Errorf("report: %q", got)
	}
	if got := run(reportCmd, report...); got != "already recorded: failed 131049 for +5511987650001; nothing changed\n" {
		t.Errorf("report again: %q", got)
	}
	got := run(inboundCmd, "--business", "acme", "--phone", "+55 11 98765-0001", "--message-id", "in.1", "--text", "PARAR", "--at", "2026-11-27T09:30:00Z")
	want := "recorded: message from +5511987650001\n" +
		"  window:  the customer service window is open until Sat 2026-11-28 06:30:00 -03\n" +
		"  opt-out: the text is an opt-out keyword: the user is opted out of your marketing\n"
	if got != want {
		t.Errorf("inbound:\n%s\nwant:\n%s", got, want)
	}
	if got := run(inboundCmd, "--business", "acme", "--phone", "+5511987650001", "--message-id", "in.2", "--call", "--at", "2026-11-27T09:40:00Z", "--json"); !strings.Contains(got, `"serviceWindowUntil"`) || !strings.Contains(got, `"phoneE164": "+5511987650001"`) {
		t.Errorf("inbound --call --json: %s", got)
	}
	// forget says what it erased and what it kept, the second time too.
	var out strings.Builder
	forget := func(args ...string) {
		out.WriteString("$ sendguard forget " + shellJoin(args) + "\n" + run(forgetCmd, args...))
	}
	forget("+5511987650001", "--business", "acme")
	if got := run(checkCmd, "+5511987650001", "--business", "acme"); !strings.HasPrefix(got, "DENY") || !strings.Contains(got, "suppression") {
		t.Errorf("check after forget: %s", got)
	}
	forget("+5511987650001", "--business", "acme")
	forget("+5511987650001", "--business", "acme", "--forget-opt-out")
	if got := run(checkCmd, "+5511987650001", "--business", "acme"); strings.Contains(got, "OPTED_OUT") {
		t.Errorf("check after forget --forget-opt-out: %s", got)
	}
	forget("+5511987650001", "--business", "acme")
	ctx := context.Background()
	if _, err := s.c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: "+5511987650002", MessageId: "w.2",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED}); err != nil {
		t.Fatal(err)
	}
	forget("+55 11 98765-0002", "--business", "acme")
	// Consent and a user ID link; an opt-out forgotten with --forget-opt-out.
	if _, err := s.c.Inbound(ctx, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: "+5511987650003", UserId: "BR.1502576394655843", MessageId: "in.3",
		Text: "hello", Timestamp: timestamppb.New(goldenT0.Add(-time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: "+5511987650003", Reason: "web form"}); err != nil {
		t.Fatal(err)
	}
	forget("+5511987650003", "--business", "acme")
	if _, err := s.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: "+5511987650004", OptedOut: true, Reason: "support ticket 9"}); err != nil {
		t.Fatal(err)
	}
	forget("+5511987650004", "--business", "acme", "--forget-opt-out")
	golden(t, "forget.golden", []byte(out.String()))
	for _, bad := range [][]string{
		{"--business", "acme", "--phone", "1", "--status", "failed", "--message-id", "w"},
		{"--business", "acme", "--phone", "1", "--status", "sent"},
		{"--business", "acme", "--status", "sent", "--message-id", "w"},
		{"--business", "acme", "--phone", "1", "--status", "bounced", "--message-id", "w"},
	} {
		if _, _, err := runCmd(t, reportCmd(), append(bad, conn...)...); err == nil {
			t.Errorf("report %v: no error", bad)
		}
	}
	if _, _, err := runCmd(t, contactCmd(), append([]string{"--business", "acme"}, conn...)...); err == nil {
		t.Error("contact without a recipient: no error")
	}
}
