package validator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// t0 is Thursday 2026-11-26 10:00 UTC; tests place every event relative to it.
var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const (
	mkt  = sgv1.Category_CATEGORY_MARKETING
	util = sgv1.Category_CATEGORY_UTILITY
	auth = sgv1.Category_CATEGORY_AUTHENTICATION
	svc  = sgv1.Category_CATEGORY_SERVICE

	sent      = sgv1.MessageStatus_MESSAGE_STATUS_SENT
	delivered = sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED
	read      = sgv1.MessageStatus_MESSAGE_STATUS_READ
	failedS   = sgv1.MessageStatus_MESSAGE_STATUS_FAILED

	allow   = sgv1.Verdict_VERDICT_ALLOW
	deferVT = sgv1.Verdict_VERDICT_DEFER
	denyVT  = sgv1.Verdict_VERDICT_DENY

	hour = time.Hour
	min1 = time.Minute
	sec  = time.Second
)

var allCategories = []sgv1.Category{mkt, util, auth, svc}

// fixture is one business's view of one recipient: state, policy and the check.
type fixture struct {
	pol   Policy
	rel   Relationship
	facts NumberFacts
	biz   Business
	chk   Check
}

// newFixture is a fresh Brazilian contact under the default policy.
func newFixture() *fixture {
	return &fixture{pol: Defaults(), chk: Check{Category: mkt, SendAt: t0, HasNumber: true, Region: "BR"}}
}

func (f *fixture) input(cat sgv1.Category, when time.Time) *Input {
	c := f.chk
	c.Category, c.SendAt = cat, when
	return &Input{Check: c, Rel: &f.rel, Facts: &f.facts, Business: &f.biz, Policy: &f.pol}
}

func (f *fixture) decide(cat sgv1.Category, when time.Time) Decision {
	return Decide(f.input(cat, when))
}

func (f *fixture) result(r Result) {
	ApplyTemplate(&f.biz, ApplyResult(&f.rel, &f.facts, &f.pol, r))
}

// fail reports a FAILED send of category cat with an error code at `when`.
func (f *fixture) fail(cat sgv1.Category, code int32, when time.Time) {
	f.result(Result{Status: failedS, ErrorCode: code, Category: cat, MessageID: fmt.Sprintf("wamid.f%d", when.UnixNano()), At: when})
}

// deliver reports a DELIVERED send of category cat at `when`.
func (f *fixture) deliver(cat sgv1.Category, when time.Time) {
	f.result(Result{Status: delivered, Category: cat, MessageID: fmt.Sprintf("wamid.d%d", when.UnixNano()), At: when})
}

// sentDelivered reports a send of category cat from sender: SENT at sentAt, then
// DELIVERED at deliveredAt.
func (f *fixture) sentDelivered(sender string, cat sgv1.Category, id string, sentAt, deliveredAt time.Time) {
	f.result(Result{Status: sent, Category: cat, MessageID: id, At: sentAt, Sender: sender})
	f.result(Result{Status: delivered, Category: cat, MessageID: id, At: deliveredAt, Sender: sender})
}

// noCaps turns the frequency caps off, for tests whose reported deliveries would
// otherwise count as sends.
func noCaps(f *fixture) { f.pol.FrequencyCaps = nil }

func (f *fixture) inbound(when time.Time) {
	ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Kind: sgv1.InboundKind_INBOUND_KIND_MESSAGE, At: when, Text: "hi"})
}

func (f *fixture) reserve(cat sgv1.Category, tmpl string, when time.Time, ref string) bool {
	return Reserve(&f.rel, &f.biz, &f.pol, Send{At: when, Ref: ref, Category: cat, Template: tmpl})
}

// checkAndReserve reserves only when the check allows, as the server does.
func (f *fixture) checkAndReserve(t *testing.T, cat sgv1.Category, tmpl string, when time.Time, ref string) {
	t.Helper()
	in := f.input(cat, when)
	in.Check.Template = tmpl
	if d := Decide(in); d.Verdict != allow {
		t.Fatalf("check %s at %s: %s", cat, fmtT(when), summary(d))
	}
	f.reserve(cat, tmpl, when, ref)
}

func fmtT(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func shortRule(r sgv1.Rule) string { return strings.TrimPrefix(r.String(), "RULE_") }

func shortVerdict(v sgv1.Verdict) string { return strings.TrimPrefix(v.String(), "VERDICT_") }

// summary renders a decision for exact comparison:
// "DEFER retry=2026-11-27 10:00:00 [DEFER ECOSYSTEM_LIMIT 131049 2026-11-27 10:00:00]".
func summary(d Decision) string {
	var b strings.Builder
	b.WriteString(shortVerdict(d.Verdict))
	if !d.RetryAt.IsZero() {
		b.WriteString(" retry=" + fmtT(d.RetryAt))
	}
	if d.Shadow {
		b.WriteString(" shadow")
	}
	for _, r := range d.Reasons {
		b.WriteString(" [" + reasonString(r) + "]")
	}
	return b.String()
}

func reasonString(r Reason) string {
	s := shortVerdict(r.Verdict) + " " + shortRule(r.Rule)
	if r.MetaErrorCode != 0 {
		s += fmt.Sprintf(" %d", r.MetaErrorCode)
	}
	s += " " + fmtT(r.Until)
	if r.Shadow {
		s += " shadow"
	}
	return s
}

// want is an expected decision: verdict, retry_at and reasons as summary renders them.
type want struct {
	verdict sgv1.Verdict
	retry   time.Time
	reasons []string
}

func (w want) String() string {
	d := Decision{Verdict: w.verdict, RetryAt: w.retry}
	s := summary(d)
	for _, r := range w.reasons {
		s += " [" + r + "]"
	}
	return s
}

func checkDecision(t *testing.T, got Decision, w want) {
	t.Helper()
	g := Decision{Verdict: got.Verdict, RetryAt: got.RetryAt, Reasons: got.Reasons}
	if summary(g) != w.String() {
		t.Errorf("decision\n got: %s\nwant: %s", summary(g), w)
	}
	for _, r := range got.Reasons {
		if r.Detail == "" || !strings.HasSuffix(r.Detail, ".") {
			t.Errorf("reason %s: detail %q is not a sentence", shortRule(r.Rule), r.Detail)
		}
	}
}

func allowed() want { return want{verdict: allow} }

func deferred(retry time.Time, reasons ...string) want {
	return want{verdict: deferVT, retry: retry, reasons: reasons}
}

func denied(reasons ...string) want { return want{verdict: denyVT, reasons: reasons} }
