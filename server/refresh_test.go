package server

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator"
)

// TestBusinessRefreshSeesOtherWriters: with BusinessRefresh set, a policy and a
// template pause written to the store by someone else (another replica) reach
// this server's cached business.
func TestBusinessRefreshSeesOtherWriters(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BusinessRefresh = 10 * time.Millisecond })
	const phone = "+5511987654321"
	if r := h.check(t, marketing(phone)); r.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
		t.Fatalf("before: %v", r)
	}
	// Another replica blocks Brazil and pauses a template, straight in the store.
	raw, err := proto.Marshal(&sgv1.Policy{BlockedRegions: []string{"BR"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.store.PutPolicy(t.Context(), "acme", raw); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.store.UpdateBusiness(t.Context(), "acme", func(b *validator.Business) error {
		b.Templates = map[string][]validator.TemplateState{"promo": {{PausedAt: t0, Pauses: 1}}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := h.srv.biz.get(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		snap := b.snap.Load()
		r := h.check(t, marketing(phone))
		if r.GetVerdict() == sgv1.Verdict_VERDICT_DENY && rules(r)[0] == sgv1.Rule_RULE_REGION_BLOCKED &&
			len(snap.state.Templates["promo"]) == 1 && snap.state.Templates["promo"][0].Pauses == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after another writer's changes: %v %v, templates %v", r.GetVerdict(), rules(r), snap.state.Templates)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
