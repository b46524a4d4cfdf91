package validator

import (
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func TestFreshContact(t *testing.T) {
	for _, cat := range allCategories {
		f := newFixture()
		want := allowed()
		if cat == svc {
			want = denied("DENY SERVICE_WINDOW 131047 -")
		}
		checkDecision(t, f.decide(cat, t0), want)
	}
}

func TestReasonOrdering(t *testing.T) {
	f := newFixture()
	f.chk.Number = NumberImpossible
	f.chk.Region = "US"
	f.chk.Zones = []*time.Location{brt, amt}
	f.pol.QuietHours = &QuietHours{Start: 21 * 60, End: 8 * 60}
	f.pol.RequireOptIn = true
	f.pol.ShadowRules = []sgv1.Rule{sgv1.Rule_RULE_PAIR_RATE, sgv1.Rule_RULE_QUIET_HOURS, sgv1.Rule_RULE_NO_CONSENT}
	SetOptOut(&f.rel, true, "ticket", at(-2*hour))
	f.reserve(mkt, "promo", at(-hour), "a")
	f.fail(mkt, 131049, t0)
	f.fail(mkt, 130472, t0)
	f.fail(mkt, 131026, t0)
	f.fail(mkt, 131056, at(59*sec))

	d := f.decide(mkt, at(time.Minute))
	checkDecision(t, d, denied(
		"DENY INVALID_NUMBER -",
		"DENY REGION_BLOCKED 131049 -",
		"DENY OPTED_OUT -",
		"DEFER EXPERIMENT 130472 "+fmtT(at(30*24*hour)),
		"DEFER ECOSYSTEM_LIMIT 131049 "+fmtT(at(24*hour)), // ties in Rule order
		"DEFER UNDELIVERABLE 131026 "+fmtT(at(24*hour)),
		"DEFER FREQUENCY_CAP "+fmtT(at(23*hour)),
		"DENY NO_CONSENT - shadow",
		"DEFER QUIET_HOURS "+fmtT(utc(26, 12, 0))+" shadow",
		"DEFER PAIR_RATE 131056 "+fmtT(at(63*sec))+" shadow",
	))
	if !d.Shadow {
		t.Error("Decision.Shadow not set")
	}
}

func TestDenyWinsOverDefer(t *testing.T) {
	f := newFixture()
	f.chk.Region = "US"
	f.fail(mkt, 131049, t0)
	checkDecision(t, f.decide(mkt, at(hour)), denied("DENY REGION_BLOCKED 131049 -", ecoReason(at(24*hour))))
}

func TestShadow(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(f *fixture)
		want   want
		shadow bool
	}{
		{
			name:   "whole business: a deferral only reported",
			setup:  func(f *fixture) { f.pol.Shadow = true; f.fail(mkt, 131049, t0) },
			want:   want{verdict: allow, reasons: []string{ecoReason(at(24*hour)) + " shadow"}},
			shadow: true,
		},
		{
			name:   "whole business: a denial only reported",
			setup:  func(f *fixture) { f.pol.Shadow = true; f.chk.Region = "US" },
			want:   want{verdict: allow, reasons: []string{"DENY REGION_BLOCKED 131049 - shadow"}},
			shadow: true,
		},
		{
			name: "whole business: OPTED_OUT still denies",
			setup: func(f *fixture) {
				f.pol.Shadow = true
				f.fail(mkt, 131049, t0)
				f.fail(mkt, 131050, t0)
			},
			want:   denied("DENY OPTED_OUT 131050 -", ecoReason(at(24*hour))+" shadow"),
			shadow: true,
		},
		{
			name: "one rule: the others decide, retry_at ignores the shadowed one",
			setup: func(f *fixture) {
				f.pol.ShadowRules = []sgv1.Rule{sgv1.Rule_RULE_ECOSYSTEM_LIMIT}
				f.reserve(mkt, "promo", at(-hour), "a")
				f.fail(mkt, 131049, t0)
			},
			want:   deferred(at(23*hour), capReason(at(23*hour)), ecoReason(at(24*hour))+" shadow"),
			shadow: true,
		},
		{
			name: "a shadowed rule that does not apply",
			setup: func(f *fixture) {
				f.pol.ShadowRules = []sgv1.Rule{sgv1.Rule_RULE_ECOSYSTEM_LIMIT}
				f.reserve(mkt, "promo", at(-hour), "a")
			},
			want: deferred(at(23*hour), capReason(at(23*hour))),
		},
		{
			name:   "OPTED_OUT named in shadow_rules still denies",
			setup:  func(f *fixture) { f.pol.ShadowRules = []sgv1.Rule{sgv1.Rule_RULE_OPTED_OUT}; f.chk.Suppressed = true },
			want:   denied("DENY OPTED_OUT -"),
			shadow: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.setup(f)
			d := f.decide(mkt, at(hour))
			checkDecision(t, d, tc.want)
			if d.Shadow != tc.shadow {
				t.Errorf("Shadow = %v, want %v", d.Shadow, tc.shadow)
			}
		})
	}
}

func TestRetryAt(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fixture)
		when  time.Time
		want  want
	}{
		{"the latest deferral decides", func(f *fixture) {
			f.fail(mkt, 131049, t0)
			f.fail(mkt, 131056, t0)
		}, at(sec), deferred(at(24*hour), ecoReason(at(24*hour)), pairReason(at(4*sec)))},
		{"a cap freed during a template pause", func(f *fixture) {
			f.reserve(mkt, "promo", t0, "a")
			ApplyTemplate(&f.biz, TemplateEffect{Template: "promo", Kind: TemplatePaused, At: at(20 * hour)})
			ApplyTemplate(&f.biz, TemplateEffect{Template: "promo", Kind: TemplatePaused, At: at(22 * hour)})
		}, at(23 * hour), deferred(at(28*hour), "DEFER TEMPLATE_PAUSED 132015 "+fmtT(at(28*hour)), capReason(at(24*hour)))},
		{"a cooldown ending just before a planned send", func(f *fixture) {
			f.fail(mkt, 131049, t0)
			f.reserve(mkt, "promo", at(30*hour), "planned")
		}, at(hour), deferred(at(54*hour), ecoReason(at(24*hour)))}, // at 24h the planned send is 6h away
		{"a pair-rate wait inside a cap", func(f *fixture) {
			f.fail(mkt, 131056, t0)
			f.reserve(mkt, "promo", at(2*sec), "planned")
		}, at(sec), deferred(at(24*hour+2*sec), capReason(at(24*hour+2*sec)), pairReason(at(4*sec)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.setup(f)
			in := f.input(mkt, tc.when)
			in.Check.Template = "promo"
			checkDecision(t, Decide(in), tc.want)
		})
	}
}

func TestWindowUntilWithLiftedCooldown(t *testing.T) {
	f := newFixture()
	f.fail(mkt, 131049, t0)
	f.inbound(at(hour))
	d := f.decide(mkt, at(2*hour))
	checkDecision(t, d, allowed())
	if !d.WindowUntil.Equal(at(25 * hour)) {
		t.Errorf("WindowUntil %s", fmtT(d.WindowUntil))
	}
}

// TestDecidePure: Decide does not change its input.
func TestDecidePure(t *testing.T) {
	f := newFixture()
	f.reserve(mkt, "promo", t0, "a")
	f.fail(mkt, 131049, t0)
	before := f.rel
	sends := append([]Send(nil), f.rel.Sends...)
	f.decide(mkt, at(hour))
	if len(f.rel.Sends) != len(sends) || f.rel.PairTAT != before.PairTAT || f.facts.EcoStreak != 1 {
		t.Fatal("Decide changed the state")
	}
	for i := range sends {
		if f.rel.Sends[i] != sends[i] {
			t.Fatalf("send %d changed", i)
		}
	}
}

// TestRuleTable: the rule table names every rule of the enum once, in the
// enum's order (a new Rule value needs its rule in the table).
func TestRuleTable(t *testing.T) {
	if want := len(sgv1.Rule_name) - 1; len(ruleTable) != want { // less RULE_UNSPECIFIED
		t.Fatalf("%d rules in the table, %d in the Rule enum", len(ruleTable), want)
	}
	for i, r := range ruleTable {
		if r != sgv1.Rule(i+1) {
			t.Errorf("ruleTable[%d] is %v, want %v", i, r, sgv1.Rule(i+1))
		}
	}
	// Every rule of the table has its judge (judge panics on one without).
	p := Defaults()
	in := Input{Rel: &Relationship{}, Facts: &NumberFacts{}, Business: &Business{}, Policy: &p,
		Check: Check{Category: sgv1.Category_CATEGORY_MARKETING, HasNumber: true}}
	var hs hits
	judge(&in, time.Unix(1_780_000_000, 0), &hs)
}
