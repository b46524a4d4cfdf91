package server

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// referralMessage is an inbound text from a click-to-WhatsApp ad, shaped as
// Meta's messages webhook sends it (webhook/testdata/message_referral.json).
func referralMessage(from, id string, at time.Time) map[string]any {
	return map[string]any{
		"contacts": []any{map[string]any{"wa_id": from, "profile": map[string]string{"name": "Ana"}}},
		"messages": []any{map[string]any{
			"from": from, "id": id, "timestamp": fmt.Sprint(at.Unix()), "type": "text",
			"text": map[string]string{"body": "Oi! A promoção ainda vale?"},
			"referral": map[string]string{
				"source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120226305854810726", "source_type": "ad",
				"headline": "Fale conosco", "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ",
			},
		}},
	}
}

// senderContact is GetContact of phone as seen by sender.
func senderContact(t *testing.T, h *harness, phone, sender string) *sgv1.Contact {
	t.Helper()
	resp, err := h.api.GetContact(t.Context(), &sgv1.GetContactRequest{BusinessId: pnid, Phone: phone, Sender: sender})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetContact()
}

// TestReferralWebhookEqualsReportInbound: an inbound webhook message with
// Meta's referral opens, once answered, the same free entry point window as
// ReportInbound with ad_referral and the same sender; and that window lifts
// EXPERIMENT after the service window has closed.
func TestReferralWebhookEqualsReportInbound(t *testing.T) {
	const phone = "+5511987654321"
	hw, hd := webhookHarness(t)
	hr := newHarness(t)
	for _, h := range []*harness{hw, hr} {
		// Flagged by Meta's experiment 40 h ago, from this sender.
		h.report(t, &sgv1.ReportResultRequest{BusinessId: pnid, Phone: phone, MessageId: "wamid.exp",
			Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 130472, Category: sgv1.Category_CATEGORY_MARKETING,
			Timestamp: timestamppb.New(t0.Add(-40 * time.Hour)), Sender: pnid})
	}
	wrote := t0.Add(-30 * time.Hour) // the service window closed at -6 h
	if c := postSigned(t, hd, body(t, pnid, referralMessage("5511987654321", "wamid.ref", wrote))); c != 200 {
		t.Fatalf("POST: %d", c)
	}
	hr.inbound(t, &sgv1.ReportInboundRequest{BusinessId: pnid, Phone: phone, MessageId: "wamid.ref",
		Text: "Oi! A promoção ainda vale?", Timestamp: timestamppb.New(wrote), Sender: pnid, AdReferral: true})
	for _, h := range []*harness{hw, hr} {
		// The business's answer, 1 h after the referral.
		h.report(t, &sgv1.ReportResultRequest{BusinessId: pnid, Phone: phone, MessageId: "wamid.answer",
			Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT, Category: sgv1.Category_CATEGORY_UTILITY,
			Timestamp: timestamppb.New(wrote.Add(time.Hour)), Sender: pnid})
	}
	req := &sgv1.CheckSendRequest{BusinessId: pnid, Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING, Sender: pnid}
	a, b := hw.check(t, req), hr.check(t, req)
	if !proto.Equal(a, b) || a.Verdict != allow {
		t.Fatalf("webhook %v\nreport  %v", a, b)
	}
	ca, cb := senderContact(t, hw, phone, pnid), senderContact(t, hr, phone, pnid)
	want := wrote.Add(time.Hour + 72*time.Hour)
	if !ca.FreeEntryWindowUntil.AsTime().Equal(want) || !proto.Equal(ca.FreeEntryWindowUntil, cb.FreeEntryWindowUntil) {
		t.Fatalf("free entry window until: webhook %v, report %v, want %v", ca.FreeEntryWindowUntil, cb.FreeEntryWindowUntil, want)
	}
	if ca.ServiceWindowUntil != nil {
		t.Fatalf("service window still open: %v", ca.ServiceWindowUntil)
	}
	// Another sender of the business has no free entry point.
	other := proto.Clone(req).(*sgv1.CheckSendRequest)
	other.Sender = "301234567890123"
	if got := hw.check(t, other); got.Verdict != deferV || rules(got)[0] != sgv1.Rule_RULE_EXPERIMENT {
		t.Fatalf("from another sender: %v %v", got.Verdict, rules(got))
	}
}

// TestPreferenceWebhookPerSender: a user_preferences stop names its sender
// (metadata.phone_number_id); another sender's resume does not lift it, the
// same sender's does.
func TestPreferenceWebhookPerSender(t *testing.T) {
	const other = "301234567890123"
	h, hd := webhookHarness(t, func(c *Config) { c.PhoneNumberIDs = map[string]string{pnid: "acme", other: "acme"} })
	pref := func(sender, value string, at time.Time) {
		t.Helper()
		b := body(t, sender, map[string]any{"user_preferences": []any{map[string]any{
			"wa_id": "5511987654321", "detail": "User requested to " + value + " marketing messages",
			"category": "marketing_messages", "value": value, "timestamp": at.Unix(),
		}}})
		if c := postSigned(t, hd, b); c != 200 {
			t.Fatalf("POST: %d", c)
		}
	}
	check := func(sender string) *sgv1.CheckSendResponse {
		return h.check(t, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+5511987654321",
			Category: sgv1.Category_CATEGORY_MARKETING, Sender: sender})
	}
	pref(pnid, "stop", t0.Add(-3*time.Hour))
	pref(other, "resume", t0.Add(-2*time.Hour))
	for _, c := range []struct {
		sender string
		code   int32
	}{{pnid, 131050}, {other, 0}, {"", 131050}} {
		got := check(c.sender)
		if got.Verdict != deny || got.Reasons[0].MetaErrorCode != c.code {
			t.Fatalf("from %q after the other sender's resume: %v", c.sender, got)
		}
	}
	pref(pnid, "resume", t0.Add(-time.Hour))
	if got := check(other); got.Verdict != allow {
		t.Fatalf("after the sender's own resume: %v", got)
	}
}
