package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestLearnedRegionRestriction: a 130497 for a Brazilian number restricts the
// account in BR (every category, every sender), shows in GetPolicy with the
// region in its detail, is lifted by ClearRestriction naming BR, and again
// learned, by a DELIVERED to BR of a message sent after it (not one sent
// before).
func TestLearnedRegionRestriction(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const other = "+5521987654321"
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: brPhone, MessageId: "wamid.r1", Sender: "pn-a",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 130497, Category: sgv1.Category_CATEGORY_UTILITY,
		Timestamp: timestamppb.New(t0)})
	utility := func(phone, sender string) *sgv1.CheckSendRequest {
		return &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_UTILITY, Sender: sender}
	}
	if got := verdictOf(h.check(t, utility(other, "pn-b"))); got != "DENY REGION_BLOCKED 130497" {
		t.Errorf("another BR number from another sender: %s", got)
	}
	if got := verdictOf(h.check(t, utility("+5491123456789", "pn-a"))); got != "ALLOW" {
		t.Errorf("an AR number: %s", got)
	}
	p, err := h.api.GetPolicy(ctx, &sgv1.GetPolicyRequest{BusinessId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if rs := p.GetRestrictions(); len(rs) != 1 || rs[0].GetRule() != sgv1.Rule_RULE_REGION_BLOCKED ||
		rs[0].GetMetaErrorCode() != 130497 || rs[0].GetSender() != "" || !strings.Contains(rs[0].GetDetail(), "region BR") {
		t.Fatalf("GetPolicy restrictions: %v", rs)
	}
	if _, err := h.api.ClearRestriction(ctx, &sgv1.ClearRestrictionRequest{BusinessId: "acme", Rule: sgv1.Rule_RULE_ACCOUNT_RESTRICTED}); err != nil {
		t.Fatal(err)
	}
	if got := verdictOf(h.check(t, utility(other, ""))); got != "DENY REGION_BLOCKED 130497" {
		t.Errorf("a clear of ACCOUNT_RESTRICTED lifted the region: %s", got)
	}
	c, err := h.api.ClearRestriction(ctx, &sgv1.ClearRestrictionRequest{BusinessId: "acme", Rule: sgv1.Rule_RULE_REGION_BLOCKED, Region: "br"})
	if err != nil || len(c.GetCleared()) != 1 {
		t.Fatalf("ClearRestriction BR: %v, %v", c, err)
	}
	if got := verdictOf(h.check(t, utility(other, ""))); got != "ALLOW" {
		t.Errorf("after ClearRestriction BR: %s", got)
	}

	// Learned again; a message reserved before it is delivered after it: no
	// lift; one reserved after it and delivered: lifted.
	h.clock.Advance(time.Minute)
	h.check(t, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: other, Category: sgv1.Category_CATEGORY_UTILITY, Reserve: true, MessageRef: "before"})
	h.clock.Advance(time.Minute)
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: brPhone, MessageId: "wamid.r2",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 130497, Timestamp: timestamppb.New(h.clock.Now())})
	h.clock.Advance(time.Minute)
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: other, MessageRef: "before", MessageId: "wamid.b",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Timestamp: timestamppb.New(h.clock.Now())})
	if got := verdictOf(h.check(t, utility(other, ""))); got != "DENY REGION_BLOCKED 130497" {
		t.Fatalf("a delivery of a message sent before the 130497 lifted it: %s", got)
	}
	// Sent after it (reported SENT: the send time is known), then delivered.
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: other, MessageId: "wamid.a",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT, Category: sgv1.Category_CATEGORY_UTILITY, Timestamp: timestamppb.New(h.clock.Now())})
	if got := verdictOf(h.check(t, utility(other, ""))); got != "DENY REGION_BLOCKED 130497" {
		t.Fatalf("a SENT lifted it: %s", got)
	}
	h.clock.Advance(time.Minute)
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: other, MessageId: "wamid.a",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Timestamp: timestamppb.New(h.clock.Now())})
	if got := verdictOf(h.check(t, utility(other, ""))); got != "ALLOW" {
		t.Errorf("after a DELIVERED to BR of a message sent after it: %s", got)
	}
}
