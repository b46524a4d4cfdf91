package server

import (
	"context"
	"testing"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestSetOptOutLearnsTheWhatsAppID: SetOptOut writes what it learned about the
// number as every other event does: named by its WhatsApp ID spelling, the
// spelling is remembered number-wide (with shared signals), so another
// business's check answers with it. (It used to write only the relationship
// and drop the number-wide spelling.)
func TestSetOptOutLearnsTheWhatsAppID(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Defaults.ShareNumberSignals = true })
	ctx := context.Background()
	if _, err := h.api.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: "5215512345678", OptedOut: true}); err != nil {
		t.Fatal(err)
	}
	req := marketing(mxPhone)
	req.BusinessId = "globex"
	if resp := h.check(t, req); resp.GetWaId() != "5215512345678" {
		t.Errorf("another business's check: wa_id %q, want the spelling SetOptOut learned", resp.GetWaId())
	}
}
