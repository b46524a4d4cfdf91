package validator

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func eventTexts(rel *Relationship) []string {
	var out []string
	for _, e := range rel.Events {
		out = append(out, e.Text)
	}
	return out
}

func TestApplyResultBindsReservation(t *testing.T) {
	f := newFixture()
	f.reserve(mkt, "promo", t0, "r1")
	eff := ApplyResult(&f.rel, &f.facts, &f.pol, Result{Status: sent, Ref: "r1", MessageID: "w1", At: at(sec)})
	if eff != (TemplateEffect{Template: "promo", Kind: TemplateOK, At: at(sec)}) {
		t.Errorf("effect %+v", eff)
	}
	// A status with only the message id finds the reservation and its category.
	ApplyResult(&f.rel, &f.facts, &f.pol, Result{Status: delivered, MessageID: "w1", At: at(5 * sec)})
	if len(f.rel.Sends) != 1 {
		t.Fatalf("sends %+v", f.rel.Sends)
	}
	s := f.rel.Sends[0]
	if s.Ref != "r1" || s.MessageID != "w1" || s.Category != mkt || s.Template != "promo" || s.Failed || !s.At.Equal(t0) {
		t.Errorf("send %+v", s)
	}
	if !f.facts.LastMarketingDeliveredAt.Equal(at(5*sec)) || !f.facts.LastDeliveredAt.Equal(at(5*sec)) {
		t.Errorf("facts %+v", f.facts)
	}
	if FindSend(&f.rel, "", "w1") != 0 || FindSend(&f.rel, "r1", "") != 0 || FindSend(&f.rel, "nope", "w1") != 0 || FindSend(&f.rel, "nope", "") != -1 {
		t.Error("FindSend")
	}
	want := []string{"reserved (marketing, template promo)", "sent (marketing, template promo)", "delivered (marketing, template promo)"}
	if got := eventTexts(&f.rel); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestApplyResultMergesSplitSend(t *testing.T) {
	f := newFixture()
	f.reserve(mkt, "promo", at(time.Minute), "r1")
	// The delivery arrives first and names only the message id: recorded apart.
	f.result(Result{Status: delivered, MessageID: "w1", Category: mkt, At: at(5 * sec)})
	if len(f.rel.Sends) != 2 {
		t.Fatalf("sends %+v", f.rel.Sends)
	}
	// The SENT that binds them merges the two, at the earliest time reported.
	f.result(Result{Status: sent, Ref: "r1", MessageID: "w1", At: at(sec)})
	want := []Send{{At: at(sec), Ref: "r1", MessageID: "w1", Category: mkt, Template: "promo", Reached: true, Delivered: true}}
	if !reflect.DeepEqual(f.rel.Sends, want) {
		t.Errorf("sends %+v\nwant %+v", f.rel.Sends, want)
	}
}

func TestApplyResultRecordsUnmatched(t *testing.T) {
	f := newFixture()
	f.result(Result{Status: sent, MessageID: "w1", Category: util, Template: "otp", CampaignID: "c", At: t0})
	f.result(Result{Status: failedS, ErrorCode: 131000, MessageID: "w2", Category: mkt, At: at(hour)})
	want := []Send{
		{At: t0, MessageID: "w1", Category: util, Template: "otp", CampaignID: "c", Reached: true},
		{At: at(hour), MessageID: "w2", Category: mkt, Failed: true, Inferred: true},
	}
	if !reflect.DeepEqual(f.rel.Sends, want) {
		t.Errorf("sends %+v\nwant %+v", f.rel.Sends, want)
	}
	if !f.rel.PairTAT.Equal(at(hour + 6*sec)) {
		t.Errorf("PairTAT %s", fmtT(f.rel.PairTAT))
	}
	if got := eventTexts(&f.rel); !slices.Equal(got, []string{"sent (utility, template otp)", "failed 131000 (marketing)"}) {
		t.Errorf("events %q", got)
	}
	if len(f.biz.Reached) != 0 {
		t.Error("a SENT report counted toward the messaging limit")
	}
}

func TestApplyResultEffects(t *testing.T) {
	tests := []struct {
		r    Result
		want TemplateEffectKind
	}{
		{Result{Status: sent, Template: "p"}, TemplateOK},
		{Result{Status: delivered, Template: "p"}, TemplateOK},
		{Result{Status: read, Template: "p"}, TemplateOK},
		{Result{Status: failedS, ErrorCode: 132015, Template: "p"}, TemplatePaused},
		{Result{Status: failedS, ErrorCode: 132016, Template: "p"}, TemplateDisabled},
		{Result{Status: failedS, ErrorCode: 131049, Template: "p"}, TemplateNone},
		{Result{Status: sent}, TemplateNone},
		{Result{Status: failedS, ErrorCode: 132015}, TemplateNone},
	}
	for _, tc := range tests {
		f := newFixture()
		tc.r.At, tc.r.MessageID = t0, "w"
		if got := ApplyResult(&f.rel, &f.facts, &f.pol, tc.r); got.Kind != tc.want || (got.Kind != TemplateNone && (got.Template != "p" || !got.At.Equal(t0))) {
			t.Errorf("%v %d: effect %+v, want kind %d", tc.r.Status, tc.r.ErrorCode, got, tc.want)
		}
	}
}

func TestApplyResultCodes(t *testing.T) {
	f := newFixture()
	f.inbound(t0)
	f.fail(svc, 131047, at(hour))
	f.fail(mkt, 131050, at(2*hour))
	f.fail(mkt, 131000, at(3*hour)) // says nothing about the recipient
	if !f.rel.WindowClosedAt.Equal(at(hour)) || !f.rel.MetaStopAt.Equal(at(2*hour)) {
		t.Errorf("rel %+v", f.rel)
	}
	if f.facts != (NumberFacts{}) {
		t.Errorf("facts %+v", f.facts)
	}
	want := []string{"inbound message", "failed 131047 (service)", "failed 131050 (marketing)", "failed 131000 (marketing)"}
	if got := eventTexts(&f.rel); !slices.Equal(got, want) {
		t.Errorf("events %q", got)
	}
}

// TestMultiDeviceFailure: a message delivered to one device and failed on another;
// a failure older than the delivery does not undo its resets.
func TestMultiDeviceFailure(t *testing.T) {
	f := newFixture()
	f.fail(util, 131026, at(-48*hour))
	f.fail(mkt, 131049, at(-48*hour))
	f.fail(mkt, 130472, at(-48*hour))
	f.result(Result{Status: delivered, MessageID: "w1", Category: mkt, At: at(5 * sec)})
	f.result(Result{Status: failedS, ErrorCode: 131026, MessageID: "w1", At: at(4 * sec)})
	f.result(Result{Status: failedS, ErrorCode: 131049, MessageID: "w1", At: at(4 * sec)})
	f.result(Result{Status: failedS, ErrorCode: 130472, MessageID: "w1", At: at(5 * sec)})
	if f.facts.UndeliverableStreak != 0 || f.facts.EcoStreak != 0 || !f.facts.ExperimentAt.IsZero() {
		t.Errorf("facts %+v", f.facts)
	}
	// A newer failure does count.
	f.result(Result{Status: failedS, ErrorCode: 131049, MessageID: "w2", At: at(6 * sec)})
	if f.facts.EcoStreak != 1 || !f.facts.EcoAt.Equal(at(6*sec)) {
		t.Errorf("facts %+v", f.facts)
	}
}

func TestApplyInbound(t *testing.T) {
	f := newFixture()
	ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptOut, Text: "  Parar ", At: t0})
	ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Kind: sgv1.InboundKind_INBOUND_KIND_CALL, At: at(hour)})
	ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptIn, Text: "START", At: at(2 * hour)})
	ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptOut, Text: "STOP", At: at(-hour)}) // older
	if !f.rel.OwnStopAt.Equal(t0) || f.rel.OwnStopReason != `keyword "Parar"` {
		t.Errorf("stop %s %q", fmtT(f.rel.OwnStopAt), f.rel.OwnStopReason)
	}
	// The keyword lifts the opt-out, and is not consent (keyword_opt_in_is_consent off).
	if !f.rel.OwnStartAt.Equal(at(2*hour)) || f.rel.OwnStartReason != `keyword "START"` || f.rel.Consented() || f.rel.OwnOptedOut() {
		t.Errorf("start %s %q consent %s", fmtT(f.rel.OwnStartAt), f.rel.OwnStartReason, fmtT(f.rel.ConsentAt))
	}
	if !f.rel.LastInboundAt.Equal(at(2 * hour)) {
		t.Errorf("LastInboundAt %s", fmtT(f.rel.LastInboundAt))
	}
	want := []string{`opted out: keyword "STOP"`, `opted out: keyword "Parar"`, "inbound call", `opt-out lifted (not consent): keyword "START"`}
	if got := eventTexts(&f.rel); !slices.Equal(got, want) {
		t.Errorf("events %q", got)
	}
}

func TestSetOptOut(t *testing.T) {
	var rel Relationship
	rel.MetaStopAt = at(-hour)
	SetOptOut(&rel, false, "signup form", t0)
	if !rel.Consented() || !rel.MetaOptedOut() || rel.OwnStartReason != "signup form" {
		t.Errorf("after opt-in: %+v", rel)
	}
	SetOptOut(&rel, true, "support", at(hour))
	if rel.Consented() || !rel.OwnOptedOut() || rel.OwnStopReason != "support" {
		t.Errorf("after opt-out: %+v", rel)
	}
	if got := eventTexts(&rel); !slices.Equal(got, []string{"opted in: signup form", "opted out: support"}) {
		t.Errorf("events %q", got)
	}
	// The operator's command wins at the same instant (a frozen clock) and over a
	// keyword stamped later.
	SetOptOut(&rel, false, "again", at(hour))
	if !rel.Consented() {
		t.Errorf("same-instant opt-in lost: %+v", rel)
	}
	ApplyInbound(&rel, &NumberFacts{}, &Policy{}, Inbound{Keyword: KeywordOptIn, Text: "START", At: at(3 * hour)})
	SetOptOut(&rel, true, "support", at(2*hour))
	if !rel.OwnOptedOut() || rel.OwnStopReason != "support" {
		t.Errorf("opt-out lost: %+v", rel)
	}
}

func TestAddEventBounded(t *testing.T) {
	var rel Relationship
	for i := range MaxEvents + 5 {
		AddEvent(&rel, at(time.Duration(i)*time.Minute), fmt.Sprint(i))
	}
	AddEvent(&rel, at(-hour), "too old")           // older than a full history: dropped
	AddEvent(&rel, at(10*time.Minute+sec), "late") // in order
	if len(rel.Events) != MaxEvents {
		t.Fatalf("%d events", len(rel.Events))
	}
	if rel.Events[0].Text != "6" || rel.Events[len(rel.Events)-1].Text != fmt.Sprint(MaxEvents+4) {
		t.Errorf("events %q", eventTexts(&rel))
	}
	if !slices.IsSortedFunc(rel.Events, func(a, b Event) int { return a.At.Compare(b.At) }) {
		t.Error("events not in time order")
	}
	if !slices.Contains(eventTexts(&rel), "late") || slices.Contains(eventTexts(&rel), "too old") {
		t.Errorf("events %q", eventTexts(&rel))
	}
}

// orderEvents is one contact's reports, applied after three reservations. They
// mix everything whose final state must not depend on arrival order: bindings and
// split sends, FAILED marking, deliveries against older failures (multi-device),
// Meta's opt-out, the window close, a single backoff start of each kind, template
// disable and OKs. (Streak escalation is order-dependent by nature: see escalate.)
// Every status carries its category, as Meta's status webhooks do.
func orderEvents() []Result {
	return []Result{
		{Status: sent, Ref: "r1", MessageID: "w1", Category: mkt, At: at(sec)},
		{Status: delivered, MessageID: "w1", Category: mkt, At: at(5 * sec)},
		{Status: read, MessageID: "w1", Category: mkt, At: at(20 * sec)},
		{Status: failedS, ErrorCode: 131026, MessageID: "w1", At: at(4 * sec)}, // other device, older
		{Status: failedS, ErrorCode: 130472, MessageID: "w5", Category: mkt, At: at(3 * sec)},
		{Status: failedS, ErrorCode: 131050, MessageID: "w4", Category: mkt, At: at(10 * time.Minute)},
		{Status: sent, Ref: "r2", MessageID: "w2", Category: util, At: at(hour)},
		{Status: failedS, ErrorCode: 131026, MessageID: "w2", At: at(hour + 2*sec)},
		{Status: delivered, MessageID: "w8", Category: util, Template: "otp", At: at(2 * hour)},
		{Status: sent, Ref: "r3", MessageID: "w3", Category: mkt, At: at(26 * hour)},
		{Status: failedS, ErrorCode: 131049, MessageID: "w3", At: at(26*hour + sec)},
		{Status: failedS, ErrorCode: 131047, MessageID: "w7", Category: svc, At: at(27 * hour)},
		{Status: failedS, ErrorCode: 132016, MessageID: "w9", Category: mkt, Template: "promo", At: at(30 * hour)},
		{Status: sent, MessageID: "w11", Category: util, Template: "promo", At: at(32 * hour)},
		{Status: sent, MessageID: "w12", Category: util, Template: "promo", At: at(29 * hour)},
		{Status: failedS, ErrorCode: 131056, MessageID: "w13", Category: util, At: at(40 * hour)},
		{Status: failedS, ErrorCode: 131000, Ref: "r4", Category: auth, At: at(41 * hour)},
	}
}

func applyInOrder(events []Result) *fixture {
	f := newFixture()
	ApplyTemplate(&f.biz, TemplateEffect{Template: "promo", Kind: TemplatePaused, At: at(-10 * hour)})
	f.reserve(mkt, "promo", t0, "r1")
	f.reserve(util, "otp", at(hour), "r2")
	f.reserve(mkt, "promo2", at(26*hour), "r3")
	for _, e := range events {
		f.result(e)
	}
	return f
}

// orderState is the part of the state that must not depend on the order: all of
// it except the pair-rate bucket (a GCRA counts in arrival order), the event texts
// (they name what was known when each arrived) and the time of a backoff that a
// delivery already reset.
type orderState struct {
	Rel       Relationship
	Facts     NumberFacts
	Templates map[string][]TemplateState
	Events    []time.Time
}

func normalized(f *fixture) orderState {
	s := orderState{Rel: f.rel, Facts: f.facts, Templates: f.biz.Templates}
	s.Rel.PairTAT = time.Time{}
	s.Rel.Events = nil
	for _, e := range f.rel.Events {
		s.Events = append(s.Events, e.At)
	}
	if s.Facts.EcoStreak == 0 {
		s.Facts.EcoAt = time.Time{}
	}
	if s.Facts.UndeliverableStreak == 0 {
		s.Facts.UndeliverableAt = time.Time{}
	}
	return s
}

func decisions(f *fixture) []string {
	var out []string
	for _, when := range []time.Time{at(time.Minute), at(hour + 3*sec), at(26*hour + 2*sec), at(28 * hour), at(33 * hour), at(40*hour + sec), at(50 * hour)} {
		for _, cat := range allCategories {
			in := f.input(cat, when)
			if cat != svc {
				in.Check.Template = "promo"
			}
			out = append(out, summary(Decide(in)))
		}
	}
	return out
}

func TestApplyResultOrderIndependent(t *testing.T) {
	events := orderEvents()
	ref := applyInOrder(events)
	want, wantDecisions := normalized(ref), decisions(ref)

	// The reference itself is what the events say.
	if ref.facts.EcoStreak != 1 || !ref.facts.EcoAt.Equal(at(26*hour+sec)) || ref.facts.UndeliverableStreak != 0 ||
		!ref.facts.ExperimentAt.IsZero() || !ref.rel.MetaOptedOut() || tmplState(&ref.biz, "promo").Disabled() ||
		len(ref.rel.Sends) != 12 || ref.rel.Sends[0].Failed || !ref.rel.Sends[0].Delivered || ref.rel.PairStreak != 1 {
		t.Fatalf("reference state: rel %+v\nfacts %+v\ntemplates %+v", ref.rel, ref.facts, ref.biz.Templates)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		shuffled := slices.Clone(events)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		f := applyInOrder(shuffled)
		if got := normalized(f); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %d gives a different state:\n got %+v\nwant %+v\norder: %+v", i, got, want, shuffled)
		}
		if got := decisions(f); !slices.Equal(got, wantDecisions) {
			t.Fatalf("order %d gives different decisions:\n got %q\nwant %q", i, got, wantDecisions)
		}
	}
}
