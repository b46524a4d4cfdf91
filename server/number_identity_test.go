package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The Brazilian CRM of issue 13: a STOP recorded for the international
// spelling, and the CRM's national spelling of the same person.
const (
	crmE164     = "+5531995511909"
	crmIntl     = "+55 31 99551-1909"
	crmNational = "(31) 99551-1909"
)

func hasRule(resp *sgv1.CheckSendResponse, r sgv1.Rule) bool { return slices.Contains(rules(resp), r) }

// TestNationalSpellingOptOut is issue 13's scenario over gRPC: a STOP for
// +55 31 99551-1909, then a marketing check of (31) 99551-1909. With region BR
// (on the request, or as the business's default_region) it is the same person:
// DENY OPTED_OUT. Without a region it is INVALID_NUMBER, never ALLOW under the
// Netherlands' +31 995511909.
func TestNationalSpellingOptOut(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	in := h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: crmIntl, Text: "STOP", MessageId: "wamid.stop"})
	if !in.GetOptedOut() || in.GetPhoneE164() != crmE164 {
		t.Fatalf("ReportInbound(STOP) = %v; want opted_out and phone_e164 %s", in, crmE164)
	}

	withRegion := marketing(crmNational)
	withRegion.Region = "BR"
	resp := h.check(t, withRegion)
	if resp.GetVerdict() != deny || !hasRule(resp, sgv1.Rule_RULE_OPTED_OUT) || resp.GetPhoneE164() != crmE164 {
		t.Fatalf("with region BR: %v; want DENY OPTED_OUT for %s", resp, crmE164)
	}
	withRegion.Region = "br" // any case
	if resp := h.check(t, withRegion); !hasRule(resp, sgv1.Rule_RULE_OPTED_OUT) {
		t.Fatalf("with region br: %v", resp)
	}

	resp = h.check(t, marketing(crmNational))
	if resp.GetVerdict() != deny || !slices.Equal(rules(resp), []sgv1.Rule{sgv1.Rule_RULE_INVALID_NUMBER}) || resp.GetPhoneE164() != "" {
		t.Fatalf("without region: %v; want DENY INVALID_NUMBER and no number", resp)
	}
	if d := resp.GetReasons()[0].GetDetail(); !strings.Contains(d, "national format") || !strings.Contains(d, "set a region") {
		t.Fatalf("without region: detail %q does not name the fix", d)
	}
	// Every category: a national spelling without a region is nobody's number.
	for _, cat := range categories {
		req := marketing(crmNational)
		req.Category = cat
		if resp := h.check(t, req); resp.GetVerdict() != deny || !hasRule(resp, sgv1.Rule_RULE_INVALID_NUMBER) {
			t.Fatalf("%v without region: %v", cat, resp)
		}
	}

	// The business's default_region reads it when the request names none.
	if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme",
		Policy: &sgv1.Policy{DefaultRegion: proto.String("BR")}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"default_region"}}}); err != nil {
		t.Fatal(err)
	}
	resp = h.check(t, marketing(crmNational))
	if resp.GetVerdict() != deny || !hasRule(resp, sgv1.Rule_RULE_OPTED_OUT) || resp.GetPhoneE164() != crmE164 {
		t.Fatalf("with the policy's default_region BR: %v; want DENY OPTED_OUT", resp)
	}
	// The request's region wins over the policy's: read in the US, these
	// digits are not a number (and certainly not the Brazilian who stopped).
	us := marketing("(31) 99551-1909")
	us.Region = "US"
	if resp := h.check(t, us); hasRule(resp, sgv1.Rule_RULE_OPTED_OUT) || resp.GetPhoneE164() == crmE164 {
		t.Fatalf("with region US over the policy's BR: %v", resp)
	}
	// GetContact reads it the same way.
	c, err := h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: crmNational})
	if err != nil || !c.GetOptedOut() || c.GetPhoneE164() != crmE164 {
		t.Fatalf("GetContact(%q) = %v, %v", crmNational, c, err)
	}
}

// TestRegionOnEveryRequest: each request that names a phone reads a national
// spelling by its region, and without one (and no default) refuses it.
func TestRegionOnEveryRequest(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: crmNational, Region: "BR", OptedOut: true}); err != nil {
		t.Fatal(err)
	}
	c, err := h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: crmE164})
	if err != nil || !c.GetOptedOut() {
		t.Fatalf("SetOptOut with region BR did not reach %s: %v, %v", crmE164, c, err)
	}
	r := h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: "031 99551 1909", Region: "BR", MessageId: "wamid.d",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Category: sgv1.Category_CATEGORY_UTILITY})
	if r.GetPhoneE164() != crmE164 {
		t.Fatalf("ReportResult with region BR: %v", r)
	}
	f, err := h.c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: crmNational, Region: "BR"})
	if err != nil || !f.GetFound() {
		t.Fatalf("ForgetContact with region BR: %v, %v", f, err)
	}
	// Without a region there is nothing to record it against.
	calls := map[string]error{}
	_, calls["ReportResult"] = h.c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: crmNational, MessageId: "wamid.x",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED})
	_, calls["ReportInbound"] = h.c.Inbound(ctx, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: crmNational, Text: "STOP"})
	_, calls["GetContact"] = h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: crmNational})
	_, calls["SetOptOut"] = h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: crmNational, OptedOut: true})
	_, calls["ForgetContact"] = h.c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: crmNational})
	for name, err := range calls {
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "set a region") {
			t.Errorf("%s(%q) without region: %v; want INVALID_ARGUMENT naming the fix", name, crmNational, err)
		}
	}
}

// TestRegionIsValidated: a region that is not an ISO 3166 alpha-2 code is
// INVALID_ARGUMENT naming region on every RPC, and an error of its own row in a
// stream.
func TestRegionIsValidated(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, bad := range []string{"ZZ", "BRA", "B", "\x00\x00", " BR"} {
		calls := map[string]error{}
		req := marketing(crmNational)
		req.Region = bad
		_, calls["CheckSend"] = h.c.Check(ctx, req)
		_, calls["ReportResult"] = h.c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: crmIntl, Region: bad, MessageId: "wamid.x",
			Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED})
		_, calls["ReportInbound"] = h.c.Inbound(ctx, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: crmIntl, Region: bad})
		_, calls["GetContact"] = h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: crmIntl, Region: bad})
		_, calls["SetOptOut"] = h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: crmIntl, Region: bad, OptedOut: true})
		_, calls["ForgetContact"] = h.c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: crmIntl, Region: bad})
		for name, err := range calls {
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "region: ") {
				t.Errorf("%s with region %q: %v; want INVALID_ARGUMENT naming region", name, bad, err)
			}
		}
	}
	good, bad := marketing(crmNational), marketing(crmNational)
	good.RequestId, good.Region = "good", "BR"
	bad.RequestId, bad.Region = "bad", "XX"
	out := runStream(t, h, []*sgv1.CheckSendRequest{bad, good})
	if out[0].GetError() == nil || codes.Code(out[0].GetError().GetCode()) != codes.InvalidArgument || !strings.Contains(out[0].GetError().GetMessage(), "region") {
		t.Fatalf("stream row with region XX: %v", out[0])
	}
	if out[1].GetError() != nil || out[1].GetPhoneE164() != crmE164 {
		t.Fatalf("stream row with region BR: %v", out[1])
	}
}

// TestDeploymentDefaultRegion: the deployment's default_region reads national
// spellings for every business that sets none; a business's explicit "" turns
// it off; Meta's webhook numbers are never read by it.
func TestDeploymentDefaultRegion(t *testing.T) {
	h, hd := webhookHarness(t, func(c *Config) { c.DefaultRegion = "US" })
	ctx := context.Background()
	utility := func(business, phone string) *sgv1.CheckSendRequest {
		return &sgv1.CheckSendRequest{BusinessId: business, Phone: phone, Category: sgv1.Category_CATEGORY_UTILITY}
	}
	if resp := h.check(t, utility("acme", "(201) 555-0123")); resp.GetPhoneE164() != "+12015550123" || resp.GetVerdict() != allow {
		t.Fatalf("deployment default US: %v", resp)
	}
	pol, err := h.c.Policy(ctx, "acme")
	if err != nil || pol.GetEffective().GetDefaultRegion() != "US" || pol.Overrides.DefaultRegion != nil {
		t.Fatalf("effective policy %v, %v; want default_region US, not overridden", pol, err)
	}
	if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "nowhere", Policy: &sgv1.Policy{DefaultRegion: proto.String("")}}); err != nil {
		t.Fatal(err)
	}
	if resp := h.check(t, utility("nowhere", "(201) 555-0123")); !hasRule(resp, sgv1.Rule_RULE_INVALID_NUMBER) {
		t.Fatalf("business with default_region \"\": %v", resp)
	}

	// An Egyptian user's STOP through the webhook. Read in region US these
	// digits would be the US number +1 201 555 0123.
	const waID, egypt = "2015550123", "+2015550123"
	stop := body(t, pnid, map[string]any{"messages": []any{map[string]any{
		"from": waID, "id": "wamid.eg", "timestamp": fmt.Sprint(t0.Unix()), "type": "text", "text": map[string]string{"body": "STOP"},
	}}})
	if code := postSigned(t, hd, stop); code != 200 {
		t.Fatalf("webhook: %d", code)
	}
	for phone, want := range map[string]bool{egypt: true, "+12015550123": false} {
		c, err := h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: pnid, Phone: phone})
		if err != nil || c.GetOptedOut() != want {
			t.Fatalf("after the webhook STOP from %s: %s opted out = %v (%v); want %v", waID, phone, c.GetOptedOut(), err, want)
		}
	}
}

// TestNumberValidation: a possible number that is not valid (+11951373735: no
// NANP area code starts with 1) is INVALID_NUMBER by default; its reports and inbound
// events are still recorded, and a delivery or a message from it proves it
// real: then it is judged like any other. number_validation POSSIBLE takes it
// at once. A number that is not even possible stays INVALID_ARGUMENT in a
// report.
func TestNumberValidation(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	utility := func(phone string, reserve bool) *sgv1.CheckSendRequest {
		return &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_UTILITY,
			Reserve: reserve, MessageRef: "ref-" + phone}
	}
	const unassigned = "+11951373735"
	for _, reserve := range []bool{false, true} {
		resp := h.check(t, utility(unassigned, reserve))
		if resp.GetVerdict() != deny || !slices.Equal(rules(resp), []sgv1.Rule{sgv1.Rule_RULE_INVALID_NUMBER}) || resp.GetPhoneE164() != unassigned {
			t.Fatalf("reserve=%v before any delivery: %v; want DENY INVALID_NUMBER", reserve, resp)
		}
		if d := resp.GetReasons()[0].GetDetail(); !strings.Contains(d, "not valid") {
			t.Fatalf("detail %q", d)
		}
	}
	c, err := h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: unassigned})
	if err != nil || len(c.GetSends()) != 0 {
		t.Fatalf("a denied reservation recorded a send: %v, %v", c, err)
	}
	// Reports are recorded: a SENT does not prove the number real, a DELIVERED does.
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: unassigned, MessageId: "wamid.u1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT, Category: sgv1.Category_CATEGORY_UTILITY, Timestamp: timestamppb.New(t0.Add(-2 * time.Hour))})
	if resp := h.check(t, utility(unassigned, false)); !hasRule(resp, sgv1.Rule_RULE_INVALID_NUMBER) {
		t.Fatalf("after SENT: %v", resp)
	}
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: unassigned, MessageId: "wamid.u1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Timestamp: timestamppb.New(t0.Add(-time.Hour))})
	for _, reserve := range []bool{false, true} {
		if resp := h.check(t, utility(unassigned, reserve)); resp.GetVerdict() != allow {
			t.Fatalf("reserve=%v after DELIVERED: %v; want ALLOW", reserve, resp)
		}
	}
	// A message from the number proves it too, and GetContact judges it the same way.
	const other = "+16501234567" // exchange 1xx: possible, not valid
	c, err = h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: other})
	if err != nil || !hasRule(c.GetDecisions()[1].GetDecision(), sgv1.Rule_RULE_INVALID_NUMBER) {
		t.Fatalf("GetContact(%s) before: %v, %v", other, c, err)
	}
	if in := h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: other, Text: "hi"}); in.GetPhoneE164() != other {
		t.Fatalf("ReportInbound(%s) = %v", other, in)
	}
	if resp := h.check(t, utility(other, false)); resp.GetVerdict() != allow {
		t.Fatalf("after a message from it: %v", resp)
	}
	// POSSIBLE takes a possible number without proof.
	const third = "+16501234568"
	if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme",
		Policy: &sgv1.Policy{NumberValidation: sgv1.NumberValidation_NUMBER_VALIDATION_POSSIBLE}}); err != nil {
		t.Fatal(err)
	}
	if resp := h.check(t, utility(third, false)); resp.GetVerdict() != allow {
		t.Fatalf("POSSIBLE: %v", resp)
	}
	// Not even possible: INVALID_NUMBER in a check, INVALID_ARGUMENT in a report.
	if resp := h.check(t, utility("+1 555 1234", false)); !hasRule(resp, sgv1.Rule_RULE_INVALID_NUMBER) {
		t.Fatalf("POSSIBLE, impossible number: %v", resp)
	}
	_, err = h.c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: "+1 555 1234", MessageId: "wamid.i",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "phone") {
		t.Fatalf("report of an impossible number: %v", err)
	}
}

// TestConfigNumberIdentity: the config file's default_region and
// policy.number_validation are the deployment's defaults.
func TestConfigNumberIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sendguard.yaml")
	if err := os.WriteFile(path, []byte("default_region: br\npolicy: {number_validation: possible}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if cfg.Defaults.NumberValidation != sgv1.NumberValidation_NUMBER_VALIDATION_VALID {
		t.Fatalf("built-in number_validation %v, want VALID", cfg.Defaults.NumberValidation)
	}
	if err := LoadConfigFile(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.withDefaultsChecked(); err != nil {
		t.Fatal(err)
	}
	if cfg.Defaults.DefaultRegion != "BR" || cfg.Defaults.NumberValidation != sgv1.NumberValidation_NUMBER_VALIDATION_POSSIBLE {
		t.Fatalf("defaults: default_region %q, number_validation %v", cfg.Defaults.DefaultRegion, cfg.Defaults.NumberValidation)
	}
}

// TestNationalSpellingOptOutOverTCP is issue 13's scenario end to end over a
// real gRPC connection (a server on a loopback port, an on-disk store): one
// business records the opt-out with SetOptOut, another receives the user's
// STOP, both for +55 31 99551-1909. A marketing check of the CRM's
// (31) 99551-1909 with region BR is DENY OPTED_OUT for both, unary and
// streamed; without a region it is DENY INVALID_NUMBER in every category, never
// ALLOW nor anyone's opt-out, and the Netherlands' +31 995511909 has no opt-out
// recorded.
func TestNationalSpellingOptOutOverTCP(t *testing.T) {
	clock := &fakeClock{t: t0}
	srv := runServer(t, func(c *Config) { c.Now = clock.Now })
	c := dialServer(t, srv)
	ctx := context.Background()
	if _, err := c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "crm", Phone: crmIntl, OptedOut: true, Reason: "web form"}); err != nil {
		t.Fatal(err)
	}
	in, err := c.Inbound(ctx, &sgv1.ReportInboundRequest{BusinessId: "shop", Phone: crmIntl, Text: "STOP", MessageId: "wamid.stop"})
	if err != nil || !in.GetOptedOut() || in.GetPhoneE164() != crmE164 {
		t.Fatalf("ReportInbound(STOP) = %v, %v; want opted_out, %s", in, err, crmE164)
	}
	for _, business := range []string{"crm", "shop"} {
		check := func(region string, cat sgv1.Category) *sgv1.CheckSendRequest {
			return &sgv1.CheckSendRequest{RequestId: business + region + cat.String(), BusinessId: business,
				Phone: crmNational, Region: region, Category: cat, Template: "promo"}
		}
		rows := []*sgv1.CheckSendRequest{check("BR", sgv1.Category_CATEGORY_MARKETING)}
		for _, cat := range categories {
			rows = append(rows, check("", cat))
		}
		unary := make([]*sgv1.CheckSendResponse, len(rows))
		for i, req := range rows {
			if unary[i], err = c.Check(ctx, req); err != nil {
				t.Fatalf("%s: CheckSend(%v): %v", business, req, err)
			}
		}
		streamed := runStream(t, &harness{c: c}, rows)
		for i, req := range rows {
			for how, resp := range map[string]*sgv1.CheckSendResponse{"unary": unary[i], "stream": streamed[i]} {
				if req.GetRegion() == "BR" {
					if resp.GetVerdict() != deny || !hasRule(resp, sgv1.Rule_RULE_OPTED_OUT) || resp.GetPhoneE164() != crmE164 {
						t.Errorf("%s %s %v with region BR: %v; want DENY OPTED_OUT for %s", business, how, req.GetCategory(), resp, crmE164)
					}
					continue
				}
				if resp.GetVerdict() != deny || rules(resp)[0] != sgv1.Rule_RULE_INVALID_NUMBER || hasRule(resp, sgv1.Rule_RULE_OPTED_OUT) ||
					resp.GetPhoneE164() != "" || !strings.Contains(resp.GetReasons()[0].GetDetail(), "set a region") {
					t.Errorf("%s %s %v without region: %v; want DENY INVALID_NUMBER naming the fix", business, how, req.GetCategory(), resp)
				}
			}
		}
		nl, err := c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: business, Phone: "+31995511909"})
		if err != nil || nl.GetOptedOut() {
			t.Fatalf("%s: the Netherlands' +31 995511909: %v, %v; want no opt-out", business, nl, err)
		}
	}
}

// TestWebhookProvesNumberReal: Meta's statuses and messages for a possible
// number that is not valid are recorded, not skipped: a webhook "delivered" (or
// a message from the number) is what lifts INVALID_NUMBER under the default
// number_validation VALID.
func TestWebhookProvesNumberReal(t *testing.T) {
	h, hd := webhookHarness(t)
	utility := func(phone string) *sgv1.CheckSendRequest {
		return &sgv1.CheckSendRequest{BusinessId: pnid, Phone: phone, Category: sgv1.Category_CATEGORY_UTILITY}
	}
	const delivered, wrote = "+11951373735", "+16501234567" // neither valid for libphonenumber
	for _, phone := range []string{delivered, wrote} {
		if resp := h.check(t, utility(phone)); !hasRule(resp, sgv1.Rule_RULE_INVALID_NUMBER) {
			t.Fatalf("%s before any webhook: %v; want INVALID_NUMBER", phone, resp)
		}
	}
	delivery := body(t, pnid, statuses(newStatus("wamid.d", "delivered", t0.Add(-time.Hour), strings.TrimPrefix(delivered, "+"), 0)))
	message := body(t, pnid, map[string]any{"messages": []any{map[string]any{
		"from": strings.TrimPrefix(wrote, "+"), "id": "wamid.m", "timestamp": fmt.Sprint(t0.Add(-time.Hour).Unix()),
		"type": "text", "text": map[string]string{"body": "hi"},
	}}})
	for _, b := range [][]byte{delivery, message} {
		if code := postSigned(t, hd, b); code != 200 {
			t.Fatalf("webhook: %d", code)
		}
	}
	for _, phone := range []string{delivered, wrote} {
		if resp := h.check(t, utility(phone)); resp.GetVerdict() != allow {
			t.Fatalf("%s after the webhook: %v; want ALLOW", phone, resp)
		}
	}
}
