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

// buttonMessage is one messages[] item of a realistic inbound webhook: a tap
// on a template's quick-reply button ("button") or on an interactive reply
// button ("interactive"), as Meta's messages webhook reference shows them.
func buttonMessage(kind, id, from string, at time.Time, text, payload string) map[string]any {
	m := map[string]any{"from": from, "id": id, "timestamp": fmt.Sprint(at.Unix()), "type": kind}
	switch kind {
	case "button":
		m["context"] = map[string]string{"from": "15550783881", "id": "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjVCNUE4QkE3N0YyNjIzQzY4QQA="}
		m["button"] = map[string]string{"text": text, "payload": payload}
	case "interactive":
		m["interactive"] = map[string]any{"type": "button_reply", "button_reply": map[string]string{"id": payload, "title": text}}
	}
	return map[string]any{
		"contacts": []any{map[string]any{"profile": map[string]string{"name": "Sheena Nelson"}, "wa_id": from}},
		"messages": []any{m},
	}
}

// TestButtonRepliesAreKeywords: a tap on Meta's marketing opt-out button (its
// label in the template's language), or on any button whose label or payload
// is a keyword, opts the user out or back in, by webhook and by ReportInbound
// alike (each webhook body proven equal in effect to the API call); what
// matched is the opt-out's reason.
func TestButtonRepliesAreKeywords(t *testing.T) {
	const from = "5511987654321"
	for _, tc := range []struct {
		name, kind, text, payload string
		optedOut                  bool
		reason                    string
	}{
		{"marketing opt-out button, English", "button", "Stop promotions", "Stop promotions", true, `button "Stop promotions"`},
		{"marketing opt-out button, Portuguese", "button", "Parar promoções", "Parar promoções", true, `button "Parar promoções"`},
		{"marketing opt-out button, Spanish", "button", "Detener promociones", "Detener promociones", true, `button "Detener promociones"`},
		{"a button whose payload is a keyword", "button", "No more offers", "STOP", true, `button payload "STOP"`},
		{"an interactive reply whose title is a keyword", "interactive", "Unsubscribe", "menu-unsub-1", true, `button "Unsubscribe"`},
		{"an interactive reply whose id is a keyword", "interactive", "Sair da lista", "sair", true, `button payload "sair"`},
		{"a navigation button is nothing", "interactive", "Voltar", "menu-back", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hw, hd := webhookHarness(t)
			hr := newHarness(t)
			at := t0.Add(-time.Hour)
			if c := postSigned(t, hd, body(t, pnid, buttonMessage(tc.kind, "wamid.tap", from, at, tc.text, tc.payload))); c != 200 {
				t.Fatal(c)
			}
			resp := hr.inbound(t, &sgv1.ReportInboundRequest{BusinessId: pnid, Phone: from, MessageId: "wamid.tap",
				Text: tc.text, ButtonPayload: tc.payload, Timestamp: timestamppb.New(at), Sender: pnid})
			if resp.GetOptedOut() != tc.optedOut {
				t.Errorf("ReportInbound: opted_out %v, want %v", resp.GetOptedOut(), tc.optedOut)
			}
			req := &sgv1.CheckSendRequest{BusinessId: pnid, Phone: "+" + from, Category: sgv1.Category_CATEGORY_MARKETING}
			hw.clock.Advance(25 * time.Hour) // past the window the tap opened
			hr.clock.Advance(25 * time.Hour)
			a, b := hw.check(t, req), hr.check(t, req)
			if !proto.Equal(a, b) {
				t.Fatalf("webhook %v\nreport  %v", a, b)
			}
			if got := a.GetVerdict() == deny; got != tc.optedOut {
				t.Fatalf("verdict %v %v, want opted out %v", a.GetVerdict(), rules(a), tc.optedOut)
			}
			for _, h := range []*harness{hw, hr} {
				c, err := h.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: pnid, Phone: "+" + from})
				if err != nil {
					t.Fatal(err)
				}
				if c.GetOptOutReason() != tc.reason {
					t.Errorf("opt-out reason %q, want %q", c.GetOptOutReason(), tc.reason)
				}
			}
		})
	}
}

// TestKeywordOptInIsConsent: an opt-in keyword lifts the business's own
// opt-out and records consent (NO_CONSENT under require_opt_in) only with
// keyword_opt_in_is_consent; SetOptOut(false) always records consent with its
// time and reason; GetContact shows consent apart from the lift.
func TestKeywordOptInIsConsent(t *testing.T) {
	ctx := context.Background()
	for _, isConsent := range []bool{false, true} {
		t.Run(fmt.Sprint("keyword_opt_in_is_consent=", isConsent), func(t *testing.T) {
			h := newHarness(t)
			if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme",
				Policy:     &sgv1.Policy{RequireOptIn: proto.Bool(true), KeywordOptInIsConsent: proto.Bool(isConsent)},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"require_opt_in", "keyword_opt_in_is_consent"}}}); err != nil {
				t.Fatal(err)
			}
			for i, text := range []string{"STOP", "Start"} {
				h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: fmt.Sprint("m", i), Text: text,
					Timestamp: timestamppb.New(t0.Add(time.Duration(i-48) * time.Hour))})
			}
			resp := h.check(t, marketing(brPhone))
			if isConsent {
				if resp.GetVerdict() != allow {
					t.Fatalf("START as consent: %v %v", resp.GetVerdict(), rules(resp))
				}
			} else if resp.GetVerdict() != deny || len(rules(resp)) != 1 || rules(resp)[0] != sgv1.Rule_RULE_NO_CONSENT {
				t.Fatalf("START without consent: %v %v, want DENY NO_CONSENT alone (the opt-out is lifted)", resp.GetVerdict(), rules(resp))
			}
			c, err := h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: brPhone})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.GetConsentAt() != nil; got != isConsent {
				t.Fatalf("consent shown %v, want %v: %v", got, isConsent, c)
			}
			// The operator's opt-in is consent whatever the policy.
			h.clock.Advance(time.Minute)
			if _, err := h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: brPhone, OptedOut: false, Reason: "double opt-in form"}); err != nil {
				t.Fatal(err)
			}
			c, err = h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: brPhone})
			if err != nil {
				t.Fatal(err)
			}
			if got := c; !got.GetConsentAt().AsTime().Equal(h.clock.Now()) || got.GetConsentReason() != "double opt-in form" {
				t.Fatalf("after SetOptOut(false): consent %v %q", got.GetConsentAt().AsTime(), got.GetConsentReason())
			}
			if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != allow {
				t.Fatalf("after SetOptOut(false): %v %v", resp.GetVerdict(), rules(resp))
			}
		})
	}
}

// TestStopAndLiftOfTheSameTime: a stop and a lift with the same timestamp,
// the stop wins, in either order and by either path (RPC or webhook).
func TestStopAndLiftOfTheSameTime(t *testing.T) {
	const from = "5511987654321"
	at := t0.Add(-30 * time.Hour)
	for _, order := range [][2]string{{"STOP", "START"}, {"START", "STOP"}} {
		t.Run(order[0]+" then "+order[1], func(t *testing.T) {
			hw, hd := webhookHarness(t)
			hr := newHarness(t)
			for i, text := range order {
				msg := map[string]any{
					"contacts": []any{map[string]any{"profile": map[string]string{"name": "Sheena Nelson"}, "wa_id": from}},
					"messages": []any{map[string]any{"from": from, "id": fmt.Sprint("wamid.", i), "timestamp": fmt.Sprint(at.Unix()),
						"type": "text", "text": map[string]string{"body": text}}},
				}
				if c := postSigned(t, hd, body(t, pnid, msg)); c != 200 {
					t.Fatal(c)
				}
				hr.inbound(t, &sgv1.ReportInboundRequest{BusinessId: pnid, Phone: from, MessageId: fmt.Sprint("wamid.", i),
					Text: text, Timestamp: timestamppb.New(at), Sender: pnid})
			}
			// Meta's record too: a resume and a stop of the same time.
			for _, value := range []string{"resume", "stop"} {
				if order[0] == "START" { // the other order for the other run
					value = map[string]string{"resume": "stop", "stop": "resume"}[value]
				}
				pref := map[string]any{"user_preferences": []any{map[string]any{"wa_id": from, "detail": "User requested " + value,
					"category": "marketing_messages", "value": value, "timestamp": at.Unix()}}}
				if c := postSigned(t, hd, body(t, pnid, pref)); c != 200 {
					t.Fatal(c)
				}
			}
			req := &sgv1.CheckSendRequest{BusinessId: pnid, Phone: "+" + from, Category: sgv1.Category_CATEGORY_MARKETING}
			if resp := hr.check(t, req); resp.GetVerdict() != deny || rules(resp)[0] != sgv1.Rule_RULE_OPTED_OUT {
				t.Fatalf("RPC: %v %v", resp.GetVerdict(), rules(resp))
			}
			resp := hw.check(t, req)
			if resp.GetVerdict() != deny || rules(resp)[0] != sgv1.Rule_RULE_OPTED_OUT || resp.GetReasons()[0].GetMetaErrorCode() != 131050 {
				t.Fatalf("webhook: %v %v", resp.GetVerdict(), resp.GetReasons())
			}
		})
	}
}
