package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestMessagingLimitSlotGivenBack: the messaging limit counts users across
// every sender of the business, and a reservation whose send later FAILED
// (reported by ReportResult or by the status webhook, repeated, in any order)
// gives its slot back exactly once.
func TestMessagingLimitSlotGivenBack(t *testing.T) {
	ctx := context.Background()
	h, hd := webhookHarness(t)
	if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: pnid, Policy: &sgv1.Policy{MessagingLimit: proto.Int32(2)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"messaging_limit"}}}); err != nil {
		t.Fatal(err)
	}
	phone := func(i int) string { return fmt.Sprintf("+55119876540%02d", i) }
	reserve := func(i int, sender string) *sgv1.CheckSendResponse {
		t.Helper()
		return h.check(t, &sgv1.CheckSendRequest{BusinessId: pnid, Phone: phone(i), Category: sgv1.Category_CATEGORY_UTILITY,
			Template: "order_update", Reserve: true, MessageRef: fmt.Sprint("ref-", i), Sender: sender})
	}
	want := func(what string, r *sgv1.CheckSendResponse, v sgv1.Verdict) {
		t.Helper()
		if r.GetVerdict() != v || v == deferV && rules(r)[0] != sgv1.Rule_RULE_MESSAGING_LIMIT {
			t.Fatalf("%s: %v %v, want %v", what, r.GetVerdict(), rules(r), v)
		}
	}
	// Two users from two senders fill the business's limit of 2.
	want("user 1 from sender A", reserve(1, pnid), allow)
	want("user 2 from sender B", reserve(2, "301234567890123"), allow)
	want("user 3 from sender A", reserve(3, pnid), deferV)
	want("user 3 from sender B", reserve(3, "301234567890123"), deferV)

	// User 1's send: SENT binds its wamid, then the FAILED status arrives by
	// webhook (naming only the wamid), and by ReportResult, twice.
	h.report(t, &sgv1.ReportResultRequest{BusinessId: pnid, Phone: phone(1), MessageId: "wamid.one", MessageRef: "ref-1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT, Timestamp: timestamppb.New(t0), Sender: pnid})
	st := newStatus("wamid.one", "failed", t0.Add(time.Second), phone(1)[1:], 131026)
	st.Pricing = nil
	for range 2 {
		if c := postSigned(t, hd, body(t, pnid, statuses(st))); c != 200 {
			t.Fatal(c)
		}
		h.report(t, &sgv1.ReportResultRequest{BusinessId: pnid, Phone: phone(1), MessageRef: "ref-1",
			Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131026, Timestamp: timestamppb.New(t0.Add(time.Second)), Sender: pnid})
	}
	want("user 3 after user 1's send failed", reserve(3, pnid), allow)
	want("user 4: the slot was given back once", reserve(4, pnid), deferV)
	// A FAILED of a send that took no slot (user 3's check was ALLOWed, its
	// slot is held until it fails) gives nothing else back.
	h.report(t, &sgv1.ReportResultRequest{BusinessId: pnid, Phone: phone(9), MessageId: "wamid.nine",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131026, Timestamp: timestamppb.New(t0), Sender: pnid})
	want("user 4 after a failure of an unreserved send", reserve(4, pnid), deferV)
}
