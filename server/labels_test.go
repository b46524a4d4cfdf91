package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/sendguard/sendguard/internal/buildinfo"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/webhook"
)

// TestLabelSetsAreClosed: after traffic that names ever new businesses, numbers,
// templates, webhook fields and statuses, bad rows and refused calls, every label
// value of every metric comes from a closed set, so no client can add series. A
// label this test does not know fails it: a new one must say what its set is.
func TestLabelSetsAreClosed(t *testing.T) {
	h, hd := webhookHarness(t)
	ctx := context.Background()
	for i := range 50 {
		req := marketing(fmt.Sprintf("+55119%08d", i))
		req.BusinessId, req.Template, req.CampaignId = fmt.Sprintf("tenant-%d", i), fmt.Sprintf("tpl-%d", i), fmt.Sprintf("c-%d", i)
		rep := failed(req.GetPhone(), []int32{131049, 131026, 130472, int32(130000 + i)}[i%4], t0)
		rep.BusinessId = req.GetBusinessId()
		h.report(t, rep)
		limit := failed(req.GetPhone(), []int32{131048, 130429, 131031, 368, 131042}[i%5], t0)
		limit.BusinessId, limit.Sender, limit.MessageId = req.GetBusinessId(), fmt.Sprintf("pn-%d", i), fmt.Sprintf("wamid.limit.%d", i)
		h.report(t, limit)
		h.check(t, req)
		_, _ = h.c.API().CheckSend(ctx, &sgv1.CheckSendRequest{BusinessId: req.GetBusinessId(), Phone: req.GetPhone(), Category: sgv1.Category(40 + i)})
		postSigned(t, hd, []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"made_up_%d","value":{}},{"field":"messages","value":{"metadata":{"phone_number_id":"p%d"},"statuses":[{"id":"w%d","status":"status_%d","timestamp":"1","recipient_id":"5511987654321"}]}}]}]}`, i, i, i, i)))
		postSigned(t, hd, []byte(fmt.Sprintf(`{"object":"object_%d"}`, i)))
		post(t, hd, []byte("{}"), fmt.Sprintf("sha256=%064d", i))
	}
	st, err := h.c.CheckStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Send(&sgv1.CheckSendRequest{BusinessId: "x"})
	_ = st.CloseSend()
	_, _ = st.Recv()

	closed := map[string][]string{
		"verdict": {"allow", "defer", "deny", "unspecified"},
		"shadow":  {"true", "false"},
		"source":  {"api", "webhook"},
		"type": {"sent", "delivered", "read", "played", "failed", "inbound_message", "inbound_call",
			"user_preference_stop", "user_preference_resume", "account_restriction", "account_ban",
			"user_changed_number", "user_changed_user_id",
			"template_status", "template_category", "capability", "quality"},
		"meta_error_code": {"130429", "131048", "131031", "368", "131042", "130497"},
		"event": {"started", "escalated", "lifted", "cleared", "paused", "disabled", "approved", "marked_marketing",
			"cleared_marketing", "flagged", "unflagged", "upgrade", "downgrade", "onboarding", "throughput_upgrade", "other"},
		"outcome": {"applied", "duplicate"},
		"method":  {"GET", "POST"},
		"reason": append(webhook.Reasons(), "invalid_event", "unmapped_phone_number_id", "preference_category",
			"unknown_kind", "unmapped_waba_id", "account_restriction_type", "account_ban_state", "template_event",
			"category_update_impending"),
	}
	for r := range sgv1.Rule_name {
		closed["rule"] = append(closed["rule"], ruleLabel(sgv1.Rule(r)))
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		closed["code"] = append(closed["code"], c.String())
		closed["grpc_code"] = append(closed["grpc_code"], c.String())
	}
	for _, c := range []int{200, 400, 401, 403, 404, 405, 408, 413, 503} {
		closed["code"] = append(closed["code"], fmt.Sprint(c))
	}
	closed["grpc_type"] = []string{"unary", "client_stream", "server_stream", "bidi_stream"}
	for svc, info := range h.srv.GRPCServer().GetServiceInfo() {
		closed["grpc_service"] = append(closed["grpc_service"], svc)
		for _, m := range info.Methods {
			closed["grpc_method"] = append(closed["grpc_method"], m.Name)
		}
	}
	// The Go and process collectors' labels are the runtime's own.
	closed["version"], closed["le"], closed["quantile"] = nil, nil, nil
	// sendguard_build_info's are the build's.
	build := buildinfo.Get()
	closed["revision"], closed["goversion"] = []string{build.Revision}, []string{build.GoVersion}

	families, err := h.srv.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "go_") || strings.HasPrefix(f.GetName(), "process_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				seen[l.GetName()] = true
				set, known := closed[l.GetName()]
				switch {
				case !known:
					t.Errorf("%s: label %q has no closed set in this test", f.GetName(), l.GetName())
				case set != nil && !slices.Contains(set, l.GetValue()):
					t.Errorf("%s{%s=%q}: not in the label's closed set", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	// The traffic above reached every label that takes values from requests.
	for _, name := range []string{"verdict", "rule", "source", "type", "outcome", "method", "reason", "code", "grpc_method"} {
		if !seen[name] {
			t.Errorf("no series has a %q label: the traffic did not reach it", name)
		}
	}
}

// TestEnumLabels: the label functions keep their spellings (the dashboards and
// alerts name them), and spelling a label allocates nothing: every decision
// and report is labelled with them.
func TestEnumLabels(t *testing.T) {
	tests := []struct{ got, want string }{
		{verdictLabel(sgv1.Verdict_VERDICT_ALLOW), "allow"},
		{verdictLabel(sgv1.Verdict_VERDICT_DEFER), "defer"},
		{verdictLabel(sgv1.Verdict_VERDICT_DENY), "deny"},
		{verdictLabel(sgv1.Verdict_VERDICT_UNSPECIFIED), "unspecified"},
		{verdictLabel(sgv1.Verdict(99)), "unspecified"},
		{ruleLabel(sgv1.Rule_RULE_QUIET_HOURS), "QUIET_HOURS"},
		{ruleLabel(sgv1.Rule_RULE_UNSPECIFIED), "UNSPECIFIED"},
		{ruleLabel(sgv1.Rule(999)), "999"},
		{statusLabel(sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED), "delivered"},
		{statusLabel(sgv1.MessageStatus_MESSAGE_STATUS_FAILED), "failed"},
		{inboundLabel(sgv1.InboundKind_INBOUND_KIND_CALL), "inbound_call"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("label %q, want %q", tt.got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		labelSink[0] = verdictLabel(sgv1.Verdict_VERDICT_DENY)
		labelSink[1] = verdictLabel(sgv1.Verdict(99))
		labelSink[2] = ruleLabel(sgv1.Rule_RULE_QUIET_HOURS)
		labelSink[3] = statusLabel(sgv1.MessageStatus_MESSAGE_STATUS_READ)
		labelSink[4] = inboundLabel(sgv1.InboundKind_INBOUND_KIND_MESSAGE)
	}); n != 0 {
		t.Errorf("%v allocations per set of labels, want 0", n)
	}
}

// labelSink keeps TestEnumLabels's calls from being optimized away.
var labelSink [5]string
