package validator

import (
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func TestTemplatePaused(t *testing.T) {
	paused := func(until time.Time) string { return "DEFER TEMPLATE_PAUSED 132015 " + fmtT(until) }
	disabled := "DENY TEMPLATE_PAUSED 132016 -"
	failTmpl := func(f *fixture, code int32, tmpl string, when time.Time) {
		f.result(Result{Status: failedS, ErrorCode: code, Template: tmpl, Category: util, MessageID: "w" + fmtT(when), At: when})
	}
	tests := []struct {
		name  string
		setup func(f *fixture)
		cat   sgv1.Category
		tmpl  string
		when  time.Time
		want  want
	}{
		{"first pause: 3h", func(f *fixture) { failTmpl(f, 132015, "promo", t0) }, util, "promo", at(hour),
			deferred(at(3*hour), paused(at(3*hour)))},
		{"every category of that template", func(f *fixture) { failTmpl(f, 132015, "promo", t0) }, auth, "promo", at(hour),
			deferred(at(3*hour), paused(at(3*hour)))},
		{"other templates pass", func(f *fixture) { failTmpl(f, 132015, "promo", t0) }, util, "receipt", at(hour), allowed()},
		{"over after 3h", func(f *fixture) { failTmpl(f, 132015, "promo", t0) }, util, "promo", at(3 * hour), allowed()},
		{"second pause: 6h", func(f *fixture) {
			failTmpl(f, 132015, "promo", t0)
			failTmpl(f, 132015, "promo", at(5*hour))
		}, util, "promo", at(6 * hour), deferred(at(11*hour), paused(at(11*hour)))},
		{"a pause reported late does not count again", func(f *fixture) {
			failTmpl(f, 132015, "promo", at(5*hour))
			failTmpl(f, 132015, "promo", t0)
		}, util, "promo", at(6 * hour), deferred(at(8*hour), paused(at(8*hour)))},
		{"disabled: DENY", func(f *fixture) {
			failTmpl(f, 132015, "promo", t0)
			failTmpl(f, 132016, "promo", at(12*hour))
		}, util, "promo", at(40 * 24 * hour), denied(disabled)},
		{"disabled wins over the pause", func(f *fixture) {
			failTmpl(f, 132015, "promo", t0)
			failTmpl(f, 132016, "promo", at(hour))
		}, util, "promo", at(2 * hour), denied(disabled)},
		{"a later SENT of the template lifts the disable", func(f *fixture) {
			failTmpl(f, 132015, "promo", t0)
			failTmpl(f, 132016, "promo", at(12*hour))
			f.result(Result{Status: sent, Template: "promo", Category: util, MessageID: "ok", At: at(13 * hour)})
		}, util, "promo", at(14 * hour), allowed()},
		{"an earlier SENT does not", func(f *fixture) {
			failTmpl(f, 132015, "promo", t0)
			f.result(Result{Status: sent, Template: "promo", Category: util, MessageID: "ok", At: at(11 * hour)})
			failTmpl(f, 132016, "promo", at(12*hour))
		}, util, "promo", at(14 * hour), denied(disabled)},
		{"the template comes from the reservation the report names", func(f *fixture) {
			f.reserve(util, "promo", t0, "ref1")
			f.result(Result{Status: failedS, ErrorCode: 132015, Ref: "ref1", At: at(sec)})
		}, util, "promo", at(hour), deferred(at(3*hour+sec), paused(at(3*hour+sec)))},
		{"... or from the message id bound by SENT", func(f *fixture) {
			f.reserve(util, "promo", t0, "ref1")
			f.result(Result{Status: sent, Ref: "ref1", MessageID: "w1", At: at(sec)})
			f.result(Result{Status: failedS, ErrorCode: 132015, MessageID: "w1", At: at(2 * sec)})
		}, util, "promo", at(hour), deferred(at(3*hour+2*sec), paused(at(3*hour+2*sec)))},
		{"service messages have no template", func(f *fixture) { failTmpl(f, 132015, "promo", t0); f.inbound(t0) }, svc, "", at(hour), allowed()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.setup(f)
			in := f.input(tc.cat, tc.when)
			in.Check.Template = tc.tmpl
			checkDecision(t, Decide(in), tc.want)
		})
	}
}

func TestTemplatePausedDetail(t *testing.T) {
	f := newFixture()
	ApplyTemplate(&f.biz, TemplateEffect{Template: "promo", Kind: TemplatePaused, At: t0})
	ApplyTemplate(&f.biz, TemplateEffect{Template: "promo", Kind: TemplatePaused, At: at(5 * hour)})
	in := f.input(util, at(6*hour))
	in.Check.Template = "promo"
	d := Decide(in)
	want := `Meta paused template "promo" for low quality (132015) on 2026-11-26 15:00 UTC; the 6h pause (2nd) ends 2026-11-26 21:00 UTC.`
	if d.Reasons[0].Detail != want {
		t.Errorf("detail %q\nwant %q", d.Reasons[0].Detail, want)
	}
}

func TestApplyTemplate(t *testing.T) {
	var b Business
	ApplyTemplate(&b, TemplateEffect{Template: "x", Kind: TemplateOK, At: t0})
	if b.Templates != nil {
		t.Fatalf("an OK of a template with no state recorded %+v", b.Templates)
	}
	e := TemplateEffect{Template: "x", Kind: TemplateDisabled, At: at(hour)}
	if !TemplateEffectChanges(&b, e) {
		t.Fatal("a disable changes nothing?")
	}
	ApplyTemplate(&b, e)
	ApplyTemplate(&b, TemplateEffect{Template: "x", Kind: TemplateDisabled, At: t0}) // older
	ApplyTemplate(&b, TemplateEffect{Template: "x", Kind: TemplateOK, At: at(30 * time.Minute)})
	if st := tmplState(&b, "x"); !st.DisabledAt.Equal(at(hour)) || !st.Disabled() {
		t.Fatalf("state %+v", st)
	}
	if TemplateEffectChanges(&b, TemplateEffect{Template: "x", Kind: TemplateOK, At: at(10 * time.Minute)}) {
		t.Error("an older OK would change the state")
	}
	ApplyTemplate(&b, TemplateEffect{Template: "x", Kind: TemplateOK, At: at(2 * hour)})
	if st := tmplState(&b, "x"); st.Disabled() {
		t.Fatalf("still disabled: %+v", st)
	}
	ApplyTemplate(&b, TemplateEffect{Template: "", Kind: TemplatePaused, At: at(3 * hour)})
	ApplyTemplate(&b, TemplateEffect{Template: "y", Kind: TemplateNone, At: at(3 * hour)})
	if len(b.Templates) != 1 {
		t.Errorf("templates %+v", b.Templates)
	}
}

// tmplState is the state of a template known without a language.
func tmplState(b *Business, name string) TemplateState {
	st, _ := TemplateFor(b, name, "")
	return st
}
