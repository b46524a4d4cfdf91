package chaos

import (
	"context"
	"testing"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestHarness starts the binary, answers one check and stops it: the harness
// itself works.
func TestHarness(t *testing.T) {
	s := start(t, t.TempDir(), nil)
	c := s.dial(t)
	resp, err := c.Check(context.Background(), &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+5511987654321",
		Category: sgv1.Category_CATEGORY_UTILITY})
	if err != nil || resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
		t.Fatalf("check: %v %v", resp, err)
	}
	if code, _ := s.get(t, "/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	figure(t, "rss after one check", mib(s.rss()), "none")
	s.stop(t)
}
