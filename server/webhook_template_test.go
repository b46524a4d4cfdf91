package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

const testWABA = "102290129340398"

// wabaBody is a webhook body of one change of field for WABA testWABA,
// triggered at `at` (entry[].time), as Meta sends template, capability and
// quality updates.
func wabaBody(t testing.TB, at time.Time, field string, value map[string]any) []byte {
	t.Helper()
	entry := map[string]any{"id": testWABA, "changes": []any{map[string]any{"field": field, "value": value}}}
	if !at.IsZero() {
		entry["time"] = at.Unix()
	}
	b, err := json.Marshal(map[string]any{"object": "whatsapp_business_account", "entry": []any{entry}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// templateStatus is a message_template_status_update value as Meta documents it.
func templateStatus(event, name, lang, title string) map[string]any {
	v := map[string]any{
		"event": event, "message_template_id": 1689556908129832, "message_template_name": name,
		"message_template_language": lang, "reason": "NONE", "message_template_category": "MARKETING",
	}
	if title != "" {
		v["other_info"] = map[string]any{"title": title, "description": "Your WhatsApp message template has been " + event}
	}
	return v
}

func templateCheck(name, lang string, cat sgv1.Category) *sgv1.CheckSendRequest {
	return &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone, Category: cat, Template: name, TemplateLanguage: lang}
}

func wabaHarness(t testing.TB) (*harness, http.Handler) {
	return webhookHarness(t, func(c *Config) {
		c.WABAIDs = map[string]string{testWABA: "acme"}
		c.PhoneNumberIDs = map[string]string{pnid: "acme"}
	})
}

func mustPost(t testing.TB, hd http.Handler, body []byte) {
	t.Helper()
	if code := postSigned(t, hd, body); code != http.StatusOK {
		t.Fatalf("webhook: %d for %s", code, body)
	}
}

// TestTemplateStatusWebhook: Meta's PAUSED and DISABLED webhooks have the
// effect of a 132015 and a 132016 report of the template in that language
// (proven by the same checks against a server fed the reports);
// APPROVED/REINSTATED lift at once (no API call says that: ClearRestriction
// is for account and sender facts); equal times apply in arrival order.
func TestTemplateStatusWebhook(t *testing.T) {
	hook, hd := wabaHarness(t)
	api := newHarness(t)
	report := func(code int32, at time.Time) {
		api.report(t, &sgv1.ReportResultRequest{
			BusinessId: "acme", Phone: brPhone, MessageId: "wamid." + at.String(), Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED,
			ErrorCode: code, Template: "spring_sale", TemplateLanguage: "pt_BR", Category: sgv1.Category_CATEGORY_UTILITY,
			Timestamp: timestamppb.New(at),
		})
	}
	paused := wabaBody(t, t0, "message_template_status_update", templateStatus("PAUSED", "spring_sale", "pt_BR", "FIRST_PAUSE"))
	mustPost(t, hd, paused)
	mustPost(t, hd, paused) // a redelivery changes nothing
	report(132015, t0)

	checks := []struct {
		lang string
		want string
	}{
		{"pt_BR", "DEFER TEMPLATE_PAUSED 132015 retry=3h0m0s"},
		{"en_US", "ALLOW"},
		{"", "DEFER TEMPLATE_PAUSED 132015 retry=3h0m0s"},
	}
	for _, c := range checks {
		req := templateCheck("spring_sale", c.lang, sgv1.Category_CATEGORY_UTILITY)
		got, same := verdictOf(hook.check(t, req)), verdictOf(api.check(t, req))
		if got != c.want || same != got {
			t.Errorf("language %q: webhook %s, report %s; want %s", c.lang, got, same, c.want)
		}
	}
	if a, d := counterValue(t, hook.srv.metrics.events.WithLabelValues("webhook", "template_status", "applied")),
		counterValue(t, hook.srv.metrics.events.WithLabelValues("webhook", "template_status", "duplicate")); a != 1 || d != 1 {
		t.Errorf("applied %v, duplicate %v; want 1, 1", a, d)
	}

	// An unpause arrives as APPROVED (other_info UNPAUSE): lifted at once.
	hook.clock.Advance(time.Hour)
	mustPost(t, hd, wabaBody(t, t0.Add(time.Hour), "message_template_status_update", templateStatus("APPROVED", "spring_sale", "pt_BR", "UNPAUSE")))
	if got := verdictOf(hook.check(t, templateCheck("spring_sale", "pt_BR", sgv1.Category_CATEGORY_UTILITY))); got != "ALLOW" {
		t.Errorf("after APPROVED: %s", got)
	}

	// DISABLED is a 132016: DENY until REINSTATED.
	hook.clock.Advance(time.Hour)
	api.clock.Advance(2 * time.Hour)
	mustPost(t, hd, wabaBody(t, t0.Add(2*time.Hour), "message_template_status_update", templateStatus("DISABLED", "spring_sale", "pt_BR", "")))
	report(132016, t0.Add(2*time.Hour))
	req := templateCheck("spring_sale", "pt_BR", sgv1.Category_CATEGORY_UTILITY)
	if got, same := verdictOf(hook.check(t, req)), verdictOf(api.check(t, req)); got != "DENY TEMPLATE_PAUSED 132016" || same != got {
		t.Errorf("after DISABLED: webhook %s, report %s", got, same)
	}
	// REINSTATED then PAUSED of the same second: the pause came last and stands
	// (the second pause: 6 h, as its title says).
	at := t0.Add(3 * time.Hour)
	hook.clock.Advance(time.Hour)
	mustPost(t, hd, wabaBody(t, at, "message_template_status_update", templateStatus("REINSTATED", "spring_sale", "pt_BR", "")))
	mustPost(t, hd, wabaBody(t, at, "message_template_status_update", templateStatus("PAUSED", "spring_sale", "pt_BR", "SECOND_PAUSE")))
	if got := verdictOf(hook.check(t, req)); got != "DEFER TEMPLATE_PAUSED 132015 retry=9h0m0s" {
		t.Errorf("REINSTATED then PAUSED of one time: %s", got)
	}
	// Events Meta sends that change nothing are counted, not applied.
	mustPost(t, hd, wabaBody(t, at, "message_template_status_update", templateStatus("REJECTED", "other", "en_US", "")))
	if n := counterValue(t, hook.srv.webhook.skipped.WithLabelValues("template_event:rejected")); n != 1 {
		t.Errorf("REJECTED skipped %v times, want 1", n)
	}
	// Without entry[].time the event is dated by its receipt.
	hook.clock.Advance(time.Minute)
	mustPost(t, hd, wabaBody(t, time.Time{}, "message_template_status_update", templateStatus("APPROVED", "spring_sale", "pt_BR", "UNPAUSE")))
	if got := verdictOf(hook.check(t, req)); got != "ALLOW" {
		t.Errorf("APPROVED without a time: %s", got)
	}
}

// TestTemplateCategoryWebhook: a template Meta recategorised as marketing is
// judged as marketing whatever category the caller names (a US number: Meta
// delivers no marketing there), from once for the completed form and from
// category_update_timestamp for the impending one; only a completed update to
// another category clears it.
func TestTemplateCategoryWebhook(t *testing.T) {
	h, hd := wabaHarness(t)
	us := func(name string, sendAt time.Time) *sgv1.CheckSendRequest {
		r := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+16505551234", Category: sgv1.Category_CATEGORY_UTILITY,
			Template: name, TemplateLanguage: "en_US"}
		if !sendAt.IsZero() {
			r.SendAt = timestamppb.New(sendAt)
		}
		return r
	}
	if r := h.check(t, us("order_update", time.Time{})); verdictOf(r) != "ALLOW" || r.GetEffectiveCategory() != sgv1.Category_CATEGORY_UTILITY {
		t.Fatalf("before: %s %v", verdictOf(r), r.GetEffectiveCategory())
	}
	mustPost(t, hd, wabaBody(t, t0, "template_category_update", map[string]any{
		"message_template_id": 1689556908129834, "message_template_name": "order_update", "message_template_language": "en_US",
		"previous_category": "UTILITY", "new_category": "MARKETING"}))
	r := h.check(t, us("order_update", time.Time{}))
	if verdictOf(r) != "DENY REGION_BLOCKED 131049" || r.GetEffectiveCategory() != sgv1.Category_CATEGORY_MARKETING {
		t.Errorf("after the completed update: %s %v", verdictOf(r), r.GetEffectiveCategory())
	} else if d := r.GetReasons()[0].GetDetail(); !containsAll(d, "Judged as marketing, not utility", `"order_update" (en_US)`) {
		t.Errorf("detail %q does not say why it was judged as marketing", d)
	}

	// Impending: from its timestamp on.
	mustPost(t, hd, wabaBody(t, t0, "template_category_update", map[string]any{
		"message_template_id": 1689556908129835, "message_template_name": "shipping", "message_template_language": "en_US",
		"correct_category": "MARKETING", "new_category": "UTILITY", "category_update_timestamp": t0.Add(2 * time.Hour).Unix()}))
	if got := verdictOf(h.check(t, us("shipping", time.Time{}))); got != "ALLOW" {
		t.Errorf("before the impending update's time: %s", got)
	}
	if got := verdictOf(h.check(t, us("shipping", t0.Add(2*time.Hour)))); got != "DENY REGION_BLOCKED 131049" {
		t.Errorf("from the impending update's time: %s", got)
	}

	// Back to utility, completed: cleared.
	mustPost(t, hd, wabaBody(t, t0.Add(time.Minute), "template_category_update", map[string]any{
		"message_template_id": 1689556908129834, "message_template_name": "order_update", "message_template_language": "en_US",
		"previous_category": "MARKETING", "new_category": "UTILITY"}))
	if got := verdictOf(h.check(t, us("order_update", time.Time{}))); got != "ALLOW" {
		t.Errorf("after the update back to utility: %s", got)
	}
}

// TestPricingCategoryWebhook: a status webhook's pricing.category marks the
// send's template (bound through biz_opaque_callback_data = message_ref) as
// marketing, with the effect of ReportResult's pricing_category.
func TestPricingCategoryWebhook(t *testing.T) {
	hook, hd := wabaHarness(t)
	api := newHarness(t)
	for _, h := range []*harness{hook, api} {
		r := h.check(t, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY,
			Template: "order_update", TemplateLanguage: "en_US", Reserve: true, MessageRef: "ref-1", Sender: pnid})
		if verdictOf(r) != "ALLOW" {
			t.Fatalf("reservation: %s", verdictOf(r))
		}
	}
	st := newStatus("wamid.1", "delivered", t0.Add(time.Second), "5511987654321", 0)
	st.Callback = "ref-1"
	mustPost(t, hd, body(t, pnid, map[string]any{"statuses": []any{st}}))
	api.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: brPhone, MessageId: "wamid.1", MessageRef: "ref-1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, PricingCategory: "marketing", Sender: pnid,
		Timestamp: timestamppb.New(t0.Add(time.Second))})

	for _, h := range []*harness{hook, api} {
		r := h.check(t, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+16505551234", Category: sgv1.Category_CATEGORY_UTILITY,
			Template: "order_update", TemplateLanguage: "en_US"})
		if verdictOf(r) != "DENY REGION_BLOCKED 131049" || r.GetEffectiveCategory() != sgv1.Category_CATEGORY_MARKETING {
			t.Errorf("after a marketing pricing.category: %s %v", verdictOf(r), r.GetEffectiveCategory())
		}
		// Another language of the template is not marked.
		r = h.check(t, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+16505551234", Category: sgv1.Category_CATEGORY_UTILITY,
			Template: "order_update", TemplateLanguage: "es_MX"})
		if verdictOf(r) != "ALLOW" {
			t.Errorf("another language: %s", verdictOf(r))
		}
	}
}

// TestCapabilityAndQualityWebhooks: business_capability_update's limit is the
// messaging limit while the policy sets none; phone_number_quality_update is
// counted by event.
func TestCapabilityAndQualityWebhooks(t *testing.T) {
	h, hd := wabaHarness(t)
	mustPost(t, hd, wabaBody(t, t0, "business_capability_update", map[string]any{
		"max_daily_conversation_per_phone": 250, "max_daily_conversations_per_business": 250,
		"max_phone_numbers_per_business": 2, "max_phone_numbers_per_waba": 2}))
	limit := func() int32 {
		p, err := h.api.GetPolicy(context.Background(), &sgv1.GetPolicyRequest{BusinessId: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		return p.GetEffective().GetMessagingLimit()
	}
	if got := limit(); got != 250 {
		t.Errorf("messaging limit after business_capability_update: %d, want 250", got)
	}
	mustPost(t, hd, wabaBody(t, t0.Add(time.Minute), "phone_number_quality_update", map[string]any{
		"display_phone_number": "15550783881", "event": "UPGRADE", "old_limit": "TIER_250", "current_limit": "TIER_2K",
		"max_daily_conversations_per_business": "TIER_2K"}))
	if got := limit(); got != 2000 {
		t.Errorf("messaging limit after the quality update's TIER_2K: %d, want 2000", got)
	}
	if n := counterValue(t, h.srv.metrics.qualityEvents.WithLabelValues("upgrade")); n != 1 {
		t.Errorf("quality events upgrade = %v, want 1", n)
	}
	// A policy that sets the limit wins, even to 0 (off).
	if _, err := h.api.SetPolicy(context.Background(), &sgv1.SetPolicyRequest{BusinessId: "acme",
		Policy: &sgv1.Policy{MessagingLimit: new(int32)}}); err != nil {
		t.Fatal(err)
	}
	if got := limit(); got != 0 {
		t.Errorf("messaging limit with the policy's 0: %d", got)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestCapabilityWebhookEqualsPolicyLimit: the tier business_capability_update
// teaches has the effect of SetPolicy's messaging_limit: the 251st new user in
// 24 h is deferred MESSAGING_LIMIT on both servers, at the same retry_at.
func TestCapabilityWebhookEqualsPolicyLimit(t *testing.T) {
	hook, hd := wabaHarness(t)
	mustPost(t, hd, wabaBody(t, t0, "business_capability_update", map[string]any{
		"max_daily_conversation_per_phone": 250, "max_daily_conversations_per_business": 250,
		"max_phone_numbers_per_business": 2, "max_phone_numbers_per_waba": 2}))
	api := newHarness(t)
	limit := int32(250)
	if _, err := api.api.SetPolicy(context.Background(), &sgv1.SetPolicyRequest{BusinessId: "acme",
		Policy: &sgv1.Policy{MessagingLimit: &limit}}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*harness{hook, api} {
		h.clock.Advance(time.Minute)
	}
	for i := range 251 {
		req := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: fmt.Sprintf("+55119876%05d", i), Category: sgv1.Category_CATEGORY_UTILITY,
			Template: "order_update", Reserve: true, MessageRef: fmt.Sprintf("r%d", i)}
		got, same := verdictOf(hook.check(t, req)), verdictOf(api.check(t, req))
		want := "ALLOW"
		if i == 250 {
			want = "DEFER MESSAGING_LIMIT 0 retry=24h2m0s" // the first reach's minute bucket ends, + 24 h
		}
		if got != want || same != got {
			t.Fatalf("user %d: webhook tier %s, policy limit %s; want %s", i, got, same, want)
		}
	}
}
