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

// TestContactShowsRestrictions: `sendguard contact` lists the account and
// sender restrictions in force, and judges as --sender would be judged.
func TestContactShowsRestrictions(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	ctx := context.Background()
	for _, r := range []*sgv1.ReportResultRequest{
		{BusinessId: "acme", Phone: "5511987650001", MessageId: "wamid.s1", Sender: "106540352242922",
			Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131048, Timestamp: timestamppb.New(goldenT0.Add(-10 * time.Minute))},
		{BusinessId: "acme", Phone: "5511987650001", MessageId: "wamid.s2", Sender: "106540352242922",
			Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131031, Timestamp: timestamppb.New(goldenT0.Add(-5 * time.Minute))},
	} {
		if _, err := s.c.Report(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, err := runCmd(t, contactCmd(), "+5511987650099", "--business", "acme", "--sender", "206540352242922",
		"--addr", s.addr, "--time-zone", goldenZone)
	if err != nil || stderr != "" {
		t.Fatalf("contact: %v\n%s", err, stderr)
	}
	for _, want := range []string{
		"restrictions in force (the account and its sending numbers, for every recipient):\n" +
			"  ACCOUNT_RESTRICTED 131031 (the account, DENY; until lifted)\n" +
			"    Meta locked the business account (131031) on 2026-11-27 09:55 UTC;",
		"  marketing:      DENY: do not send\n    1. ACCOUNT_RESTRICTED (DENY; Meta would answer 131031)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("contact output lacks\n%s\n---\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "SENDER_LIMITED") {
		t.Errorf("another sender's limit shown for --sender 206540352242922:\n%s", stdout)
	}
	stdout, _, err = runCmd(t, contactCmd(), "+5511987650099", "--business", "acme", "--addr", s.addr, "--time-zone", goldenZone)
	if err != nil || !strings.Contains(stdout, "  SENDER_LIMITED 131048 (sender 106540352242922, DEFER; until Fri 2026-11-27 07:50:00 -03)") {
		t.Errorf("contact without --sender: %v\n%s", err, stdout)
	}
}

// TestSenderFlags: --sender on report, check and inbound reaches the server:
// a 131048 reported for one number defers checks from it, not from another.
func TestSenderFlags(t *testing.T) {
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
	run(reportCmd, "--business", "acme", "--phone", "5511987650001", "--message-id", "wamid.1", "--status", "failed",
		"--error-code", "131048", "--sender", "106540352242922", "--template", "promo", "--template-language", "pt_BR",
		"--at", "2026-11-27T09:50:00Z")
	check := func(sender string) string {
		return run(checkCmd, "--business", "acme", "--phone", "+5511987650002", "--category", "utility", "--template", "order",
			"--template-language", "pt_BR", "--sender", sender)
	}
	if got := check("106540352242922"); !strings.HasPrefix(got, "DEFER: do not send now; retry at Fri 2026-11-27 07:50:00 -03") ||
		!strings.Contains(got, "SENDER_LIMITED (DEFER; Meta would answer 131048;") {
		t.Errorf("check from the limited number:\n%s", got)
	}
	if got := check("206540352242922"); !strings.HasPrefix(got, "ALLOW") {
		t.Errorf("check from another number:\n%s", got)
	}
	if got := run(inboundCmd, "--business", "acme", "--phone", "+5511987650002", "--message-id", "in.1", "--text", "hi",
		"--sender", "206540352242922"); !strings.HasPrefix(got, "recorded: message from +5511987650002") {
		t.Errorf("inbound with --sender: %q", got)
	}
}
