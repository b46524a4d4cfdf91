package server

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

const brPhone2 = "+5511987654321"

// TestSenderFieldsValidated: the enforcement-level fields are checked like every
// other field: INVALID_ARGUMENT naming the field when too long or malformed.
func TestSenderFieldsValidated(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	long := func(n int) string { return strings.Repeat("9", n) }
	check := func(mut func(*sgv1.CheckSendRequest)) error {
		req := marketing(brPhone2)
		mut(req)
		_, err := h.c.Check(ctx, req)
		return err
	}
	report := func(mut func(*sgv1.ReportResultRequest)) error {
		req := &sgv1.ReportResultRequest{BusinessId: "acme", Phone: brPhone2, MessageId: "wamid.1", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT}
		mut(req)
		_, err := h.c.Report(ctx, req)
		return err
	}
	inbound := func(mut func(*sgv1.ReportInboundRequest)) error {
		req := &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone2, MessageId: "wamid.in"}
		mut(req)
		_, err := h.c.Inbound(ctx, req)
		return err
	}
	for _, tc := range []struct {
		name  string
		field string // "" = accepted
		call  func() error
	}{
		{"check sender at the limit", "", func() error { return check(func(r *sgv1.CheckSendRequest) { r.Sender = long(128) }) }},
		{"check sender too long", "sender", func() error { return check(func(r *sgv1.CheckSendRequest) { r.Sender = long(129) }) }},
		{"check sender with a NUL", "sender", func() error { return check(func(r *sgv1.CheckSendRequest) { r.Sender = "1\x002" }) }},
		{"check language", "", func() error { return check(func(r *sgv1.CheckSendRequest) { r.TemplateLanguage = "pt_BR" }) }},
		{"check language too long", "template_language", func() error {
			return check(func(r *sgv1.CheckSendRequest) { r.TemplateLanguage = long(65) })
		}},
		{"report sender too long", "sender", func() error { return report(func(r *sgv1.ReportResultRequest) { r.Sender = long(129) }) }},
		{"report language with a tab", "template_language", func() error {
			return report(func(r *sgv1.ReportResultRequest) { r.TemplateLanguage = "pt\tBR" })
		}},
		{"report pricing category", "", func() error {
			return report(func(r *sgv1.ReportResultRequest) { r.PricingCategory = "marketing_lite" })
		}},
		{"report pricing category too long", "pricing_category", func() error {
			return report(func(r *sgv1.ReportResultRequest) { r.PricingCategory = long(65) })
		}},
		{"inbound sender with a newline", "sender", func() error { return inbound(func(r *sgv1.ReportInboundRequest) { r.Sender = "1\n" }) }},
		{"inbound button payload", "", func() error {
			return inbound(func(r *sgv1.ReportInboundRequest) { r.ButtonPayload = "STOP_PROMOS"; r.AdReferral = true })
		}},
		{"inbound button payload too long", "button_payload", func() error {
			return inbound(func(r *sgv1.ReportInboundRequest) { r.ButtonPayload = long(1025) })
		}},
		{"contact sender too long", "sender", func() error {
			_, err := h.api.GetContact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: brPhone2, Sender: long(129)})
			return err
		}},
	} {
		err := tc.call()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v, want accepted", tc.name, err)
		case tc.field != "" && (status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.field)):
			t.Errorf("%s: %v, want INVALID_ARGUMENT naming %s", tc.name, err, tc.field)
		}
	}
}

// TestSenderOfAnotherBusiness: a sender that phone_number_ids maps to another
// business is PERMISSION_DENIED on every RPC that takes one (a stream row gets
// it as its error); an unmapped sender and the business's own are accepted.
func TestSenderOfAnotherBusiness(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.PhoneNumberIDs = map[string]string{"pn-acme": "acme", "pn-globex": "globex"}
	})
	ctx := context.Background()
	for _, sender := range []string{"pn-acme", "pn-unmapped"} {
		req := marketing(brPhone2)
		req.Sender = sender
		if _, err := h.c.Check(ctx, req); err != nil {
			t.Errorf("check from %s: %v", sender, err)
		}
	}
	denied := map[string]error{}
	req := marketing(brPhone2)
	req.Sender = "pn-globex"
	_, denied["CheckSend"] = h.c.Check(ctx, req)
	_, denied["ReportResult"] = h.c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: brPhone2,
		MessageId: "wamid.1", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT, Sender: "pn-globex"})
	_, denied["ReportInbound"] = h.c.Inbound(ctx, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone2,
		MessageId: "wamid.2", Sender: "pn-globex"})
	_, denied["GetContact"] = h.api.GetContact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: brPhone2, Sender: "pn-globex"})
	for rpc, err := range denied {
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s with another business's sender: %v, want PERMISSION_DENIED", rpc, err)
		}
	}

	stream, err := h.api.CheckSendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req.RequestId = "row-1"
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	row, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if row.GetError().GetCode() != int32(codes.PermissionDenied) || row.GetVerdict() != sgv1.Verdict_VERDICT_UNSPECIFIED {
		t.Fatalf("stream row with another business's sender: %v, want its error PERMISSION_DENIED", row)
	}
}
