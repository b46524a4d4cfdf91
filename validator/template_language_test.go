package validator

import (
	"strings"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestTemplateLanguages: templates are keyed by name and language; a state
// known without a language applies to every language, and a check without a
// language matches every language's state. Meta's webhook events (PAUSED,
// DISABLED, APPROVED/REINSTATED) apply like the reports, equal times in
// arrival order.
func TestTemplateLanguages(t *testing.T) {
	paused := func(until time.Time) string { return "DEFER TEMPLATE_PAUSED 132015 " + fmtT(until) }
	disabled := "DENY TEMPLATE_PAUSED 132016 -"
	eff := func(kind TemplateEffectKind, lang string, when time.Time) TemplateEffect {
		return TemplateEffect{Template: "promo", Language: lang, Kind: kind, At: when}
	}
	tests := []struct {
		name    string
		effects []TemplateEffect
		lang    string // the check's
		when    time.Time
		want    want
	}{
		{"a pause of pt_BR defers pt_BR", []TemplateEffect{eff(TemplatePaused, "pt_BR", t0)}, "pt_BR", at(hour),
			deferred(at(3*hour), paused(at(3*hour)))},
		{"... not en_US", []TemplateEffect{eff(TemplatePaused, "pt_BR", t0)}, "en_US", at(hour), allowed()},
		{"... and a check without a language", []TemplateEffect{eff(TemplatePaused, "pt_BR", t0)}, "", at(hour),
			deferred(at(3*hour), paused(at(3*hour)))},
		{"a pause without a language: every language", []TemplateEffect{eff(TemplatePaused, "", t0)}, "en_US", at(hour),
			deferred(at(3*hour), paused(at(3*hour)))},
		{"pauses are counted per language", []TemplateEffect{
			eff(TemplatePaused, "pt_BR", t0), eff(TemplatePaused, "en_US", at(4*hour)),
		}, "en_US", at(5 * hour), deferred(at(7*hour), paused(at(7*hour)))},
		{"the strongest of the languages a check matches", []TemplateEffect{
			eff(TemplatePaused, "pt_BR", t0), eff(TemplatePaused, "pt_BR", at(4*hour)), eff(TemplatePaused, "en_US", at(5*hour)),
		}, "", at(5 * hour), deferred(at(10*hour), paused(at(10*hour)))},
		{"the webhook's second pause lasts 6 h though it is the first known", []TemplateEffect{
			{Template: "promo", Language: "pt_BR", Kind: TemplatePaused, At: t0, Nth: 2},
		}, "pt_BR", at(hour), deferred(at(6*hour), paused(at(6*hour)))},
		{"DISABLED: DENY", []TemplateEffect{eff(TemplateDisabled, "pt_BR", t0)}, "pt_BR", at(30 * 24 * hour), denied(disabled)},
		{"APPROVED lifts a pause at once", []TemplateEffect{
			eff(TemplatePaused, "pt_BR", t0), eff(TemplateApproved, "pt_BR", at(hour)),
		}, "pt_BR", at(hour), allowed()},
		{"REINSTATED lifts a disable", []TemplateEffect{
			eff(TemplateDisabled, "pt_BR", t0), eff(TemplateApproved, "pt_BR", at(hour)),
		}, "pt_BR", at(2 * hour), allowed()},
		{"an approval older than the pause lifts nothing", []TemplateEffect{
			eff(TemplatePaused, "pt_BR", at(hour)), eff(TemplateApproved, "pt_BR", t0),
		}, "pt_BR", at(2 * hour), deferred(at(4*hour), paused(at(4*hour)))},
		{"equal times: PAUSED then APPROVED lifts", []TemplateEffect{
			eff(TemplatePaused, "pt_BR", t0), eff(TemplateApproved, "pt_BR", t0),
		}, "pt_BR", at(hour), allowed()},
		{"equal times: APPROVED then PAUSED stays paused", []TemplateEffect{
			eff(TemplatePaused, "pt_BR", at(-hour)), eff(TemplateApproved, "pt_BR", t0), eff(TemplatePaused, "pt_BR", t0),
		}, "pt_BR", at(hour), deferred(at(6*hour), paused(at(6*hour)))},
		{"an approval of pt_BR lifts the pause known without a language", []TemplateEffect{
			eff(TemplatePaused, "", t0), eff(TemplateApproved, "pt_BR", at(hour)),
		}, "en_US", at(hour), allowed()},
		{"an approval of en_US leaves pt_BR paused", []TemplateEffect{
			eff(TemplatePaused, "pt_BR", t0), eff(TemplateApproved, "en_US", at(hour)),
		}, "pt_BR", at(hour), deferred(at(3*hour), paused(at(3*hour)))},
		{"a pause after the approval counts again", []TemplateEffect{
			eff(TemplatePaused, "pt_BR", t0), eff(TemplateApproved, "pt_BR", at(hour)), eff(TemplatePaused, "pt_BR", at(2*hour)),
		}, "pt_BR", at(3 * hour), deferred(at(8*hour), paused(at(8*hour)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			for _, e := range tc.effects {
				ApplyTemplate(&f.biz, e)
			}
			in := f.input(util, tc.when)
			in.Check.Template, in.Check.Language = "promo", tc.lang
			checkDecision(t, Decide(in), tc.want)
		})
	}
}

// TestEffectiveCategory: a template Meta treats as marketing is judged as
// marketing whatever category the caller names.
func TestEffectiveCategory(t *testing.T) {
	capped := "DEFER FREQUENCY_CAP " + fmtT(at(24*hour))
	mark := func(kind TemplateEffectKind, lang string, when time.Time) func(f *fixture) {
		return func(f *fixture) {
			ApplyTemplate(&f.biz, TemplateEffect{Template: "promo", Language: lang, Kind: kind, At: when})
		}
	}
	tests := []struct {
		name  string
		setup []func(f *fixture)
		lang  string
		when  time.Time
		want  want
		eff   sgv1.Category
	}{
		{"not marked: the caller's category", nil, "pt_BR", at(hour), allowed(), util},
		{"marked by a marketing pricing.category of its send", []func(f *fixture){func(f *fixture) {
			f.reserve(util, "promo", at(-hour), "r1")
			f.result(Result{Status: delivered, Ref: "r1", Language: "pt_BR", PricingCategory: "marketing_lite", At: at(-hour + sec)})
		}}, "pt_BR", at(hour), deferred(at(24*hour), capped), mkt},
		{"a utility pricing.category marks nothing", []func(f *fixture){func(f *fixture) {
			f.reserve(util, "promo", at(-hour), "r1")
			f.result(Result{Status: delivered, Ref: "r1", PricingCategory: "utility", At: at(-hour + sec)})
		}}, "pt_BR", at(hour), allowed(), util},
		{"marked in pt_BR: en_US is the caller's", []func(f *fixture){mark(TemplateMarketing, "pt_BR", t0)}, "en_US", at(hour), allowed(), util},
		{"marked without a language: every language", []func(f *fixture){mark(TemplateMarketing, "", t0)}, "en_US", at(hour), deferred(at(24*hour), capped), mkt},
		{"an impending update applies from its time", []func(f *fixture){mark(TemplateMarketing, "pt_BR", at(2*hour))}, "pt_BR", at(hour), allowed(), util},
		{"... and then", []func(f *fixture){mark(TemplateMarketing, "pt_BR", at(2*hour))}, "pt_BR", at(2 * hour), deferred(at(24*hour), capped), mkt},
		{"a completed update to utility clears the mark", []func(f *fixture){
			mark(TemplateMarketing, "pt_BR", at(-hour)), mark(TemplateNotMarketing, "pt_BR", t0),
		}, "pt_BR", at(hour), allowed(), util},
		{"a mark older than the clear is old news", []func(f *fixture){
			mark(TemplateNotMarketing, "pt_BR", t0), mark(TemplateMarketing, "pt_BR", at(-hour)),
		}, "pt_BR", at(hour), allowed(), util},
		{"a clear with nothing marked", []func(f *fixture){
			mark(TemplateNotMarketing, "pt_BR", t0),
		}, "pt_BR", at(hour), allowed(), util},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			f.reserve(mkt, "other", t0, "r0") // a marketing send: the 1 per 24 h cap is used
			for _, s := range tc.setup {
				s(f)
			}
			in := f.input(util, tc.when)
			in.Check.Template, in.Check.Language = "promo", tc.lang
			d := Decide(in)
			checkDecision(t, d, tc.want)
			if d.EffectiveCategory != tc.eff {
				t.Errorf("effective category %v, want %v", d.EffectiveCategory, tc.eff)
			}
			if tc.eff == mkt && !strings.Contains(d.Reasons[0].Detail, `Judged as marketing, not utility: Meta treats template "promo"`) {
				t.Errorf("detail %q does not say it was judged as marketing", d.Reasons[0].Detail)
			}
		})
	}
}
