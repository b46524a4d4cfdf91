package server

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator"
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
func senderContact(t *testing.T, h *harness, business, phone, sender string) *sgv1.Contact {
	t.Helper()
	resp, err := h.api.GetContact(t.Context(), &sgv1.GetContactRequest{BusinessId: business, Phone: phone, Sender: sender})
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
	if !proto.Equal(a, b) || a.GetVerdict() != allow {
		t.Fatalf("webhook %v\nreport  %v", a, b)
	}
	ca, cb := senderContact(t, hw, pnid, phone, pnid), senderContact(t, hr, pnid, phone, pnid)
	want := wrote.Add(time.Hour + 72*time.Hour)
	if !ca.GetFreeEntryWindowUntil().AsTime().Equal(want) || !proto.Equal(ca.GetFreeEntryWindowUntil(), cb.GetFreeEntryWindowUntil()) {
		t.Fatalf("free entry window until: webhook %v, report %v, want %v", ca.GetFreeEntryWindowUntil(), cb.GetFreeEntryWindowUntil(), want)
	}
	if ca.GetServiceWindowUntil() != nil {
		t.Fatalf("service window still open: %v", ca.GetServiceWindowUntil())
	}
	// Another sender of the business has no free entry point.
	other := proto.Clone(req).(*sgv1.CheckSendRequest)
	other.Sender = "301234567890123"
	if got := hw.check(t, other); got.GetVerdict() != deferV || rules(got)[0] != sgv1.Rule_RULE_EXPERIMENT {
		t.Fatalf("from another sender: %v %v", got.GetVerdict(), rules(got))
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
		if got.GetVerdict() != deny || got.GetReasons()[0].GetMetaErrorCode() != c.code {
			t.Fatalf("from %q after the other sender's resume: %v", c.sender, got)
		}
	}
	pref(pnid, "resume", t0.Add(-time.Hour))
	if got := check(other); got.GetVerdict() != allow {
		t.Fatalf("after the sender's own resume: %v", got)
	}
}

// TestUndeliverablePerBusiness: a 131026 restricts only the business whose
// send taught it unless share_number_signals is on, for both reading and
// contributing; it never applies while the window with the checking sender is
// open; and a 131026 of a send made inside the window is not counted.
func TestUndeliverablePerBusiness(t *testing.T) {
	utility := func(business, sender string) *sgv1.CheckSendRequest {
		return &sgv1.CheckSendRequest{BusinessId: business, Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY, Sender: sender}
	}
	undeliverable := func(r *sgv1.CheckSendResponse) bool {
		return r.GetVerdict() == deferV && rules(r)[0] == sgv1.Rule_RULE_UNDELIVERABLE
	}
	setShare := func(t *testing.T, h *harness, business string, on bool) {
		t.Helper()
		if _, err := h.c.SetPolicy(t.Context(), &sgv1.SetPolicyRequest{BusinessId: business,
			Policy: &sgv1.Policy{ShareNumberSignals: proto.Bool(on)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"share_number_signals"}}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name                 string
		acmeShares, gxShares bool
		globexDeferred       bool
	}{
		{"neither shares", false, false, false},
		{"only the teacher shares (the other does not read)", true, false, false},
		{"only the reader shares (the teacher does not contribute)", false, true, false},
		{"both share", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			setShare(t, h, "acme", tc.acmeShares)
			setShare(t, h, "globex", tc.gxShares)
			h.report(t, failed(brPhone, 131026, t0.Add(-time.Hour)))
			if r := h.check(t, utility("acme", "")); !undeliverable(r) || !r.GetRetryAt().AsTime().Equal(t0.Add(23*time.Hour)) {
				t.Fatalf("the teaching business: %v", r)
			}
			if r := h.check(t, utility("globex", "")); undeliverable(r) != tc.globexDeferred {
				t.Fatalf("another business: %v, want deferred %v", r, tc.globexDeferred)
			}
		})
	}
	t.Run("not while the window is open", func(t *testing.T) {
		h := newHarness(t)
		setShare(t, h, "acme", false)
		h.report(t, failed(brPhone, 131026, t0.Add(-2*time.Hour)))
		// A call (which opens the window without ending the streak) to sender A.
		h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "wacid.1",
			Kind: sgv1.InboundKind_INBOUND_KIND_CALL, Sender: pnid, Timestamp: timestamppb.New(t0.Add(-time.Hour))})
		if r := h.check(t, utility("acme", pnid)); r.GetVerdict() != allow {
			t.Fatalf("from A, whose window is open: %v", r)
		}
		if r := h.check(t, utility("acme", "301234567890123")); !undeliverable(r) {
			t.Fatalf("from B, whose window is closed: %v", r)
		}
	})
	t.Run("a send made inside the window is not counted", func(t *testing.T) {
		h := newHarness(t)
		setShare(t, h, "acme", false)
		h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "wamid.in", Text: "hi",
			Sender: pnid, Timestamp: timestamppb.New(t0.Add(-3 * time.Hour))})
		for _, st := range []sgv1.MessageStatus{sgv1.MessageStatus_MESSAGE_STATUS_SENT, sgv1.MessageStatus_MESSAGE_STATUS_FAILED} {
			at := t0.Add(-2 * time.Hour)
			if st == sgv1.MessageStatus_MESSAGE_STATUS_FAILED {
				at = t0.Add(-time.Hour)
			}
			h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: brPhone, MessageId: "wamid.inside", Status: st,
				ErrorCode: map[bool]int32{true: 131026}[st == sgv1.MessageStatus_MESSAGE_STATUS_FAILED],
				Category:  sgv1.Category_CATEGORY_SERVICE, Sender: pnid, Timestamp: timestamppb.New(at)})
		}
		c := senderContact(t, h, "acme", brPhone, "")
		if c.GetNumber().GetUndeliverableStreak() != 0 {
			t.Fatalf("counted: %v", c.GetNumber())
		}
	})
}

// TestMergeRelationshipPerSender: a history kept under a bare user ID folds
// into the number's per sender (the implicit sender's into the implicit
// sender's), idempotently.
func TestMergeRelationshipPerSender(t *testing.T) {
	p := validator.Defaults()
	var dst, src validator.Relationship
	dst.State(pnid).LastInboundAt = t0.Add(-2 * time.Hour)
	src.State(pnid).LastInboundAt = t0.Add(-time.Hour)
	src.State("301234567890123").MetaStopAt = t0.Add(-3 * time.Hour)
	src.MetaStopAt = t0.Add(-4 * time.Hour)
	src.Sends = []validator.Send{{At: t0.Add(-time.Hour), MessageID: "wamid.b", Sender: "301234567890123"}}
	validator.MergeRelationship(&dst, &src, &p)
	once := dst
	once.Senders = slices.Clone(dst.Senders)
	once.Sends = slices.Clone(dst.Sends)
	validator.MergeRelationship(&dst, &src, &p)
	if !reflect.DeepEqual(dst.Senders, once.Senders) || !reflect.DeepEqual(dst.Sends, once.Sends) {
		t.Fatalf("folding twice changed the result:\n%+v\n%+v", once.Senders, dst.Senders)
	}
	want := []validator.SenderState{
		{Sender: pnid, LastInboundAt: t0.Add(-time.Hour)},
		{Sender: "301234567890123", MetaStopAt: t0.Add(-3 * time.Hour)},
	}
	if !reflect.DeepEqual(dst.Senders, want) || !dst.MetaStopAt.Equal(t0.Add(-4*time.Hour)) || dst.Sends[0].Sender != "301234567890123" {
		t.Fatalf("merged: %+v implicit stop %v sends %+v", dst.Senders, dst.MetaStopAt, dst.Sends)
	}
}
