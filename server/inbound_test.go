package server

import (
	"testing"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestInboundEchoesTheCanonicalNumber: ReportInbound answers the number it
// recorded in E.164, the first time and as a duplicate, as ReportResult does.
func TestInboundEchoesTheCanonicalNumber(t *testing.T) {
	h := newHarness(t)
	req := &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: "+55 11 98765-4321", MessageId: "in.1", Text: "hi"}
	for _, dup := range []bool{false, true} {
		resp := h.inbound(t, req)
		if resp.GetPhoneE164() != brPhone || resp.GetDuplicate() != dup {
			t.Errorf("duplicate=%v: %v, want phone_e164 %s", dup, resp, brPhone)
		}
	}
	if resp := h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", UserId: "BR.1", MessageId: "in.2", Text: "hi"}); resp.GetPhoneE164() != "" {
		t.Errorf("by user ID alone: %v, want no phone_e164", resp)
	}
}
