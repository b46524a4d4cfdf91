package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/internal/redistest"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/redis"
)

// identityBackends are the stores the identity-change tests run on: the
// embedded Badger and a Redis server (skipped without redis-server, as the
// storage tests are).
var identityBackends = []struct {
	name  string
	store func(t *testing.T) func(storage.Store, Config) storage.Store // nil: the harness's Badger
}{
	{"badger", func(*testing.T) func(storage.Store, Config) storage.Store { return nil }},
	{"redis", func(t *testing.T) func(storage.Store, Config) storage.Store {
		srv := redistest.StartServer(t)
		s, err := redis.Open(t.Context(), redis.Options{Addrs: []string{srv.Addr()}, Mode: redis.ModeSingle})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return func(storage.Store, Config) storage.Store { return s }
	}},
}

// systemMessage is Meta's system message webhook value (its reference: no
// contacts array; from is the old number, system.wa_id the new).
func systemMessage(id string, at time.Time, from string, system map[string]string) map[string]any {
	m := map[string]any{"id": id, "timestamp": fmt.Sprint(at.Unix()), "type": "system", "system": system}
	if from != "" {
		m["from"] = from
	}
	return map[string]any{"messages": []any{m}}
}

// TestUserChangedNumber: Meta's user_changed_number moves the business's own
// opt-out and Meta's per-sender opt-out record from the old number to the new,
// and drops consent on the old number (it may be recycled); a repeated
// delivery of the webhook changes nothing. On both backends.
func TestUserChangedNumber(t *testing.T) {
	const oldWa, newWa = "5511987654321", "5511987650077"
	for _, be := range identityBackends {
		t.Run(be.name, func(t *testing.T) {
			h, hd := webhookHarnessOn(t, be.store(t))
			ctx := context.Background()
			if _, err := h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: pnid, Phone: "+" + oldWa, OptedOut: false, Reason: "web form"}); err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(2 * time.Hour)
			stopAt := t0.Add(time.Hour)
			msg := map[string]any{
				"contacts": []any{map[string]any{"profile": map[string]string{"name": "Sheena Nelson"}, "wa_id": oldWa}},
				"messages": []any{map[string]any{"from": oldWa, "id": "wamid.stop", "timestamp": fmt.Sprint(stopAt.Unix()),
					"type": "text", "text": map[string]string{"body": "STOP"}}},
			}
			pref := map[string]any{"user_preferences": []any{map[string]any{"wa_id": oldWa, "detail": "User requested to stop marketing messages",
				"category": "marketing_messages", "value": "stop", "timestamp": stopAt.Unix()}}}
			change := body(t, pnid, systemMessage("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=", t0.Add(90*time.Minute), oldWa,
				map[string]string{"body": "User Sheena Nelson changed from " + oldWa + " to " + newWa, "wa_id": newWa, "type": "user_changed_number"}))
			for _, b := range [][]byte{body(t, pnid, msg), body(t, pnid, pref), change, change} {
				if c := postSigned(t, hd, b); c != 200 {
					t.Fatal(c)
				}
			}
			mkt := func(wa string) *sgv1.CheckSendRequest {
				return &sgv1.CheckSendRequest{BusinessId: pnid, Phone: "+" + wa, Sender: pnid, Category: sgv1.Category_CATEGORY_MARKETING}
			}
			if r := h.check(t, mkt(newWa)); r.GetVerdict() != deny || rules(r)[0] != sgv1.Rule_RULE_OPTED_OUT || r.GetReasons()[0].GetMetaErrorCode() != 131050 {
				t.Fatalf("new number: %v %v", r.GetVerdict(), r.GetReasons())
			}
			if r := h.check(t, mkt(oldWa)); r.GetVerdict() != allow {
				t.Fatalf("old number: %v %v", r.GetVerdict(), rules(r))
			}
			for wa, want := range map[string]bool{oldWa: false, newWa: true} {
				c, err := h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: pnid, Phone: "+" + wa})
				if err != nil {
					t.Fatal(err)
				}
				if c.GetOptedOut() != want || c.GetMetaOptedOut() != want || c.GetConsentAt() != nil {
					t.Errorf("%s: opted out %v, Meta's %v, consent %v; want opted out %v and no consent", wa, c.GetOptedOut(), c.GetMetaOptedOut(), c.GetConsentAt(), want)
				}
			}
			// Consent stayed behind and was dropped: require_opt_in denies both.
			if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: pnid, Policy: &sgv1.Policy{RequireOptIn: proto.Bool(true)},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"require_opt_in"}}}); err != nil {
				t.Fatal(err)
			}
			if r := h.check(t, mkt(oldWa)); r.GetVerdict() != deny || rules(r)[0] != sgv1.Rule_RULE_NO_CONSENT {
				t.Fatalf("old number with require_opt_in: %v %v", r.GetVerdict(), rules(r))
			}
		})
	}
}

// TestUserChangedUserID: a BSUID change moves what a user known only by
// BSUID holds to the new BSUID; for a user whose number is known, it links the
// new BSUID to the number, where the history stays. On both backends.
func TestUserChangedUserID(t *testing.T) {
	for _, be := range identityBackends {
		t.Run(be.name, func(t *testing.T) {
			h, hd := webhookHarnessOn(t, be.store(t))
			// A user known only by BSUID, and one whose number is known.
			h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: pnid, UserId: "BR.1111", MessageId: "m1", Text: "Parar", Sender: pnid,
				Timestamp: timestamppb.New(t0.Add(-48 * time.Hour))})
			h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: pnid, UserId: "BR.3333", Phone: "+5511987650088", MessageId: "m2", Text: "Parar",
				Sender: pnid, Timestamp: timestamppb.New(t0.Add(-48 * time.Hour))})
			for i, ids := range [][2]string{{"BR.1111", "BR.2222"}, {"BR.3333", "BR.4444"}} {
				b := body(t, pnid, systemMessage(fmt.Sprint("wamid.sys", i), t0.Add(-time.Hour), ids[0],
					map[string]string{"type": "user_changed_user_id", "previous_user_id": ids[0], "user_id": ids[1]}))
				if c := postSigned(t, hd, b); c != 200 {
					t.Fatal(c)
				}
			}
			byID := func(id string) *sgv1.CheckSendResponse {
				return h.check(t, &sgv1.CheckSendRequest{BusinessId: pnid, UserId: id, Category: sgv1.Category_CATEGORY_MARKETING})
			}
			for id, want := range map[string]sgv1.Verdict{"BR.1111": allow, "BR.2222": deny, "BR.3333": deny, "BR.4444": deny} {
				if r := byID(id); r.GetVerdict() != want {
					t.Errorf("%s: %v %v, want %v", id, r.GetVerdict(), rules(r), want)
				}
			}
			if r := byID("BR.4444"); r.GetPhoneE164() != "+5511987650088" {
				t.Errorf("the new BSUID is not linked to the number: %v", r)
			}
		})
	}
}
