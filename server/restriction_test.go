package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// checkFrom is a utility template to brPhone2 from sender, now.
func checkFrom(sender string, cat sgv1.Category) *sgv1.CheckSendRequest {
	return &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone2, Category: cat, Template: "otp", Sender: sender}
}

// verdictOf renders a decision as "DEFER SENDER_LIMITED 131048 retry=…".
func verdictOf(r *sgv1.CheckSendResponse) string {
	s := strings.TrimPrefix(r.GetVerdict().String(), "VERDICT_")
	for _, x := range r.GetReasons() {
		s += fmt.Sprintf(" %s %d", strings.TrimPrefix(x.GetRule().String(), "RULE_"), x.GetMetaErrorCode())
	}
	if r.GetRetryAt() != nil {
		s += " retry=" + r.GetRetryAt().AsTime().Sub(t0).String()
	}
	return s
}

// TestChecksJudgeSenderAndAccount: a 131048 of sender A defers A's templates
// (and a check naming no sender) until its backoff ends, while sender B is
// allowed; a 131031 denies every sender of the account.
func TestChecksJudgeSenderAndAccount(t *testing.T) {
	h := newHarness(t)
	h.report(t, statusReport("w1", "pn-a", stFailed, 131048, t0))
	for _, tc := range []struct {
		sender string
		cat    sgv1.Category
		want   string
	}{
		{"pn-a", sgv1.Category_CATEGORY_UTILITY, "DEFER SENDER_LIMITED 131048 retry=1h0m0s"},
		{"", sgv1.Category_CATEGORY_UTILITY, "DEFER SENDER_LIMITED 131048 retry=1h0m0s"},
		{"pn-b", sgv1.Category_CATEGORY_UTILITY, "ALLOW"},
	} {
		r := h.check(t, checkFrom(tc.sender, tc.cat))
		if got := verdictOf(r); got != tc.want {
			t.Errorf("after 131048, check from %q: %s, want %s", tc.sender, got, tc.want)
		}
		if r.GetEffectiveCategory() != tc.cat {
			t.Errorf("effective_category %v, want %v", r.GetEffectiveCategory(), tc.cat)
		}
	}
	h.clock.Advance(time.Hour)
	if got := verdictOf(h.check(t, checkFrom("pn-a", sgv1.Category_CATEGORY_UTILITY))); got != "ALLOW" {
		t.Errorf("once the backoff ended: %s", got)
	}

	h.report(t, statusReport("w2", "pn-b", stFailed, 131031, t0.Add(time.Hour)))
	for _, sender := range []string{"pn-a", "pn-b", "pn-c", ""} {
		r := h.check(t, checkFrom(sender, sgv1.Category_CATEGORY_AUTHENTICATION))
		if got := verdictOf(r); got != "DENY ACCOUNT_RESTRICTED 131031" {
			t.Errorf("after 131031, check from %q: %s", sender, got)
		}
		if d := r.GetReasons()[0].GetDetail(); !strings.Contains(d, "locked the business account (131031)") {
			t.Errorf("detail %q", d)
		}
	}
}

// TestClearRestriction: validation, what each request clears, and that a
// failure dated before the clear does not bring the restriction back.
func TestClearRestriction(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PhoneNumberIDs = map[string]string{"pn-globex": "globex"} })
	ctx := context.Background()
	api := h.c.API()
	for _, tc := range []struct {
		req  *sgv1.ClearRestrictionRequest
		code codes.Code
		msg  string
	}{
		{&sgv1.ClearRestrictionRequest{}, codes.InvalidArgument, "business_id"},
		{&sgv1.ClearRestrictionRequest{BusinessId: "acme", Sender: "pn-a", Rule: sgv1.Rule_RULE_ACCOUNT_RESTRICTED}, codes.InvalidArgument, "sender"},
		{&sgv1.ClearRestrictionRequest{BusinessId: "acme", Rule: sgv1.Rule_RULE_OPTED_OUT}, codes.InvalidArgument, "rule"},
		{&sgv1.ClearRestrictionRequest{BusinessId: "acme", Region: "BR"}, codes.InvalidArgument, "region"},
		{&sgv1.ClearRestrictionRequest{BusinessId: "acme", Rule: sgv1.Rule_RULE_REGION_BLOCKED, Region: "XX"}, codes.InvalidArgument, "region"},
		{&sgv1.ClearRestrictionRequest{BusinessId: "acme", Sender: "pn-globex"}, codes.PermissionDenied, "sender"},
		{&sgv1.ClearRestrictionRequest{BusinessId: "acme", Sender: strings.Repeat("1", 129)}, codes.InvalidArgument, "sender"},
	} {
		_, err := api.ClearRestriction(ctx, tc.req)
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
			t.Errorf("ClearRestriction(%v) = %v, want %v naming %s", tc.req, err, tc.code, tc.msg)
		}
	}

	h.report(t, statusReport("w1", "pn-a", stFailed, 131048, t0))
	h.report(t, statusReport("w2", "pn-b", stFailed, 131048, t0))
	h.report(t, statusReport("w3", "pn-b", stFailed, 131042, t0))
	clearRestriction := func(req *sgv1.ClearRestrictionRequest) []string {
		t.Helper()
		req.BusinessId = "acme"
		resp, err := api.ClearRestriction(ctx, req)
		if err != nil {
			t.Fatalf("ClearRestriction(%v): %v", req, err)
		}
		var out []string
		for _, r := range resp.GetCleared() {
			out = append(out, fmt.Sprintf("%s/%s/%d", strings.TrimPrefix(r.GetRule().String(), "RULE_"), r.GetSender(), r.GetMetaErrorCode()))
		}
		return out
	}
	if got := clearRestriction(&sgv1.ClearRestrictionRequest{Rule: sgv1.Rule_RULE_REGION_BLOCKED, Region: "br"}); got != nil {
		t.Errorf("a learned 130497 cleared %v; none is learned", got)
	}
	if got := fmt.Sprint(clearRestriction(&sgv1.ClearRestrictionRequest{Sender: "pn-a"})); got != "[SENDER_LIMITED/pn-a/131048]" {
		t.Errorf("clearing pn-a: %s", got)
	}
	if got := verdictOf(h.check(t, checkFrom("pn-a", sgv1.Category_CATEGORY_UTILITY))); got != "DEFER ACCOUNT_RESTRICTED 131042 retry=1h0m0s" {
		t.Errorf("pn-a after its clear: %s (the account's 131042 stays)", got)
	}
	if got := fmt.Sprint(clearRestriction(&sgv1.ClearRestrictionRequest{Rule: sgv1.Rule_RULE_ACCOUNT_RESTRICTED})); got != "[ACCOUNT_RESTRICTED//131042]" {
		t.Errorf("clearing the account: %s", got)
	}
	if got := verdictOf(h.check(t, checkFrom("pn-a", sgv1.Category_CATEGORY_UTILITY))); got != "ALLOW" {
		t.Errorf("pn-a after both clears: %s", got)
	}
	// A 131048 of a message in flight, dated before the clear, arrives late.
	h.clock.Advance(time.Minute)
	h.report(t, statusReport("w4", "pn-a", stFailed, 131048, t0.Add(-time.Second)))
	if got := verdictOf(h.check(t, checkFrom("pn-a", sgv1.Category_CATEGORY_UTILITY))); got != "ALLOW" {
		t.Errorf("a failure dated before the clear restarted the limit: %s", got)
	}
	if got := fmt.Sprint(clearRestriction(&sgv1.ClearRestrictionRequest{})); got != "[SENDER_LIMITED/pn-b/131048]" {
		t.Errorf("clearing everything: %s", got)
	}
	if got := clearRestriction(&sgv1.ClearRestrictionRequest{}); got != nil {
		t.Errorf("clearing again: %v", got)
	}
	if _, err := api.ClearRestriction(ctx, &sgv1.ClearRestrictionRequest{BusinessId: "nobody"}); err != nil {
		t.Fatal(err)
	}
	for _, b := range h.srv.biz.cached() {
		if b.id == "nobody" {
			t.Error("clearing an unknown business gave it a stored record")
		}
	}
}

// TestRestrictionsShown: GetPolicy lists the restrictions in force; GetContact
// those that concern its sender (every sender without one), and judges its
// decisions as that sender.
func TestRestrictionsShown(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.report(t, statusReport("w1", "pn-a", stFailed, 131048, t0))
	h.report(t, statusReport("w2", "pn-a", stFailed, 368, t0))
	pol, err := h.c.Policy(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range pol.GetRestrictions() {
		got = append(got, fmt.Sprintf("%s %s %d since=%s until=%s %s", r.GetRule(), r.GetSender(), r.GetMetaErrorCode(),
			r.GetSince().AsTime().Sub(t0), r.GetUntil().AsTime().Sub(t0), r.GetVerdict()))
		if r.GetDetail() == "" {
			t.Errorf("restriction %v has no detail", r)
		}
	}
	want := []string{
		"RULE_SENDER_LIMITED pn-a 131048 since=0s until=1h0m0s VERDICT_DEFER",
		"RULE_ACCOUNT_RESTRICTED  368 since=0s until=24h0m0s VERDICT_DEFER",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("GetPolicy restrictions\n got %q\nwant %q", got, want)
	}
	for sender, n := range map[string]int{"": 2, "pn-a": 2, "pn-b": 1} {
		c, err := h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: brPhone2, Sender: sender})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.GetRestrictions()) != n {
			t.Errorf("GetContact(sender %q): %d restrictions, want %d", sender, len(c.GetRestrictions()), n)
		}
		for _, d := range c.GetDecisions() {
			if d.GetCategory() != sgv1.Category_CATEGORY_UTILITY {
				continue
			}
			limited := false
			for _, r := range d.GetDecision().GetReasons() {
				limited = limited || r.GetRule() == sgv1.Rule_RULE_SENDER_LIMITED
			}
			if limited != (sender != "pn-b") {
				t.Errorf("GetContact(sender %q) utility decision: %v", sender, verdictOf(d.GetDecision()))
			}
		}
	}
}

// TestRestrictionMetrics: restrictions in force and their events are counted,
// every series present at zero from the start.
func TestRestrictionMetrics(t *testing.T) {
	h := newHarness(t)
	m := h.srv.metrics
	inForce := func(rule, code string) float64 {
		t.Helper()
		fams, err := m.registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != "sendguard_restrictions_in_force" {
				continue
			}
			for _, s := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range s.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["rule"] == rule && labels["meta_error_code"] == code {
					return s.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no sendguard_restrictions_in_force{rule=%q,meta_error_code=%q}", rule, code)
		return 0
	}
	event := func(code, ev string) float64 {
		rule := "SENDER_LIMITED"
		if code == "131031" {
			rule = "ACCOUNT_RESTRICTED"
		}
		return counterValue(t, m.restrictionEvents.WithLabelValues(rule, code, ev))
	}
	if inForce("SENDER_LIMITED", "131048") != 0 || inForce("ACCOUNT_RESTRICTED", "131042") != 0 {
		t.Fatal("restrictions in force before any")
	}
	h.report(t, statusReport("w1", "pn-a", stFailed, 131048, t0))
	h.report(t, statusReport("w2", "pn-b", stFailed, 131048, t0))
	h.report(t, statusReport("w3", "pn-b", stFailed, 131031, t0))
	if inForce("SENDER_LIMITED", "131048") != 2 || inForce("ACCOUNT_RESTRICTED", "131031") != 1 || event("131048", "started") != 2 {
		t.Fatal("three restrictions started: not counted")
	}
	h.clock.Advance(2 * time.Hour)
	if inForce("SENDER_LIMITED", "131048") != 0 {
		t.Fatal("ended backoffs still counted in force")
	}
	h.report(t, statusReport("w4", "pn-a", stFailed, 131048, t0.Add(2*time.Hour)))
	h.report(t, statusReport("w5", "pn-b", stSent, 0, t0.Add(2*time.Hour)))
	if _, err := h.c.API().ClearRestriction(context.Background(), &sgv1.ClearRestrictionRequest{BusinessId: "acme", Sender: "pn-a"}); err != nil {
		t.Fatal(err)
	}
	if event("131048", "escalated") != 1 || event("131048", "lifted") != 1 || event("131031", "lifted") != 1 || event("131048", "cleared") != 1 {
		t.Fatalf("escalated %v, lifted %v/%v, cleared %v", event("131048", "escalated"), event("131048", "lifted"),
			event("131031", "lifted"), event("131048", "cleared"))
	}
}

// accountBody is an account_update webhook body for WABA waba.
func accountBody(t testing.TB, waba string, at time.Time, value map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{
		"id": waba, "time": at.Unix(), "changes": []any{map[string]any{"field": "account_update", "value": value}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAccountWebhooks: Meta's account_update restriction defers templates (not
// replies) until its expiration, a ban denies every send until REINSTATE, a
// redelivery changes nothing, and an unmapped WABA is skipped where the
// deployment skips unmapped ids.
func TestAccountWebhooks(t *testing.T) {
	const waba = "102290129340398"
	h, hd := webhookHarness(t, func(c *Config) { c.WABAIDs = map[string]string{waba: "acme"} })
	restriction := accountBody(t, waba, t0, map[string]any{"event": "ACCOUNT_RESTRICTION", "restriction_info": []any{
		map[string]any{"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": t0.Add(48 * time.Hour).Unix()},
		map[string]any{"restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION", "expiration": t0.Add(48 * time.Hour).Unix()},
	}})
	for range 2 {
		if code := postSigned(t, hd, restriction); code != http.StatusOK {
			t.Fatalf("account_update: %d", code)
		}
	}
	if got := verdictOf(h.check(t, checkFrom("pn-a", sgv1.Category_CATEGORY_MARKETING))); got != "DEFER ACCOUNT_RESTRICTED 368 retry=48h0m0s" {
		t.Errorf("template after RESTRICTED_BIZ_INITIATED_MESSAGING: %s", got)
	}
	h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone2, MessageId: "in1"})
	if got := verdictOf(h.check(t, checkFrom("pn-a", sgv1.Category_CATEGORY_SERVICE))); got != "ALLOW" {
		t.Errorf("a reply in the window: %s", got)
	}
	applied := counterValue(t, h.srv.metrics.events.WithLabelValues("webhook", "account_restriction", "applied"))
	dup := counterValue(t, h.srv.metrics.events.WithLabelValues("webhook", "account_restriction", "duplicate"))
	skipped := counterValue(t, h.srv.webhook.skipped.WithLabelValues("account_restriction_type"))
	if applied != 1 || dup != 1 || skipped != 2 {
		t.Errorf("applied %v, duplicate %v, skipped types %v; want 1, 1, 2", applied, dup, skipped)
	}

	ban := func(state string, at time.Time) {
		t.Helper()
		b := accountBody(t, waba, at, map[string]any{"event": "DISABLED_UPDATE", "ban_info": map[string]any{"waba_ban_state": state, "waba_ban_date": "November 27, 2026"}})
		if code := postSigned(t, hd, b); code != http.StatusOK {
			t.Fatalf("DISABLED_UPDATE %s: %d", state, code)
		}
	}
	ban("DISABLE", t0.Add(time.Minute))
	if got := verdictOf(h.check(t, checkFrom("pn-b", sgv1.Category_CATEGORY_SERVICE))); got != "DENY ACCOUNT_RESTRICTED 368" {
		t.Errorf("after DISABLE: %s", got)
	}
	ban("SCHEDULE_FOR_DISABLE", t0.Add(2*time.Minute))
	ban("REINSTATE", t0.Add(3*time.Minute))
	if got := verdictOf(h.check(t, checkFrom("pn-b", sgv1.Category_CATEGORY_SERVICE))); got != "ALLOW" {
		t.Errorf("after REINSTATE: %s", got)
	}
	// Meta's restriction announced as already expired: it ended.
	ended := accountBody(t, waba, t0.Add(4*time.Minute), map[string]any{"event": "ACCOUNT_RESTRICTION", "restriction_info": []any{
		map[string]any{"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": t0.Add(4 * time.Minute).Unix()}}})
	if code := postSigned(t, hd, ended); code != http.StatusOK {
		t.Fatalf("ended restriction: %d", code)
	}
	if got := verdictOf(h.check(t, checkFrom("pn-a", sgv1.Category_CATEGORY_MARKETING))); got != "ALLOW" {
		t.Errorf("after Meta said the restriction ended: %s", got)
	}

	h2, hd2 := webhookHarness(t, func(c *Config) { c.SkipUnmappedPhoneNumberIDs = true })
	ban2 := accountBody(t, "999", t0, map[string]any{"event": "DISABLED_UPDATE", "ban_info": map[string]any{"waba_ban_state": "DISABLE"}})
	if code := postSigned(t, hd2, ban2); code != http.StatusOK {
		t.Fatalf("unmapped WABA: %d", code)
	}
	if n := counterValue(t, h2.srv.webhook.skipped.WithLabelValues("unmapped_waba_id")); n != 1 {
		t.Errorf("unmapped WABA skipped %v times, want 1", n)
	}
	if got := restrictionsOf(t, h2, "999"); len(got) != 0 {
		t.Errorf("an unmapped WABA was applied: %+v", got)
	}
}

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
