package validator

import (
	"strings"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestLearnedRegion: a 130497 teaches the account that Meta restricts it in the
// recipient's region: REGION_BLOCKED (DENY, 130497) for every category of every
// sender to that region only, until a DELIVERED to that region of a message
// sent after it, or a clear naming the region.
func TestLearnedRegion(t *testing.T) {
	learned := "DENY REGION_BLOCKED 130497 -"
	fail := func(region string, when time.Time) func(b *Business) {
		return func(b *Business) {
			ApplyRestrictionFailure(b, RestrictionFailure{Kind: AccountRegion, Sender: region, At: when})
		}
	}
	success := func(s RestrictionSuccess) func(b *Business) {
		return func(b *Business) { ApplyRestrictionSuccess(b, s) }
	}
	tests := []struct {
		name   string
		events []func(b *Business)
		region string
		cat    sgv1.Category
		sender string
		want   want
	}{
		{"utility to that region: DENY", []func(*Business){fail("BR", t0)}, "BR", util, "", denied(learned)},
		{"service too, from any sender", []func(*Business){fail("BR", t0)}, "BR", svc, "pn-b", denied(learned)},
		{"another region passes", []func(*Business){fail("BR", t0)}, "AR", util, "", allowed()},
		{"a DELIVERED to the region of a message sent after it lifts it", []func(*Business){
			fail("BR", t0),
			success(RestrictionSuccess{Delivered: true, Region: "BR", SentAt: at(hour), At: at(hour + sec), Category: util}),
		}, "BR", util, "", allowed()},
		{"... not one sent before it (in flight)", []func(*Business){
			fail("BR", t0),
			success(RestrictionSuccess{Delivered: true, Region: "BR", SentAt: at(-hour), At: at(hour), Category: util}),
		}, "BR", util, "", denied(learned)},
		{"... nor a SENT", []func(*Business){
			fail("BR", t0),
			success(RestrictionSuccess{Region: "BR", SentAt: at(hour), At: at(hour), Category: util}),
		}, "BR", util, "", denied(learned)},
		{"... nor a delivery to another region", []func(*Business){
			fail("BR", t0),
			success(RestrictionSuccess{Delivered: true, Region: "AR", SentAt: at(hour), At: at(hour + sec), Category: util}),
		}, "BR", util, "", denied(learned)},
		{"a clear naming the region lifts it", []func(*Business){
			fail("BR", t0),
			func(b *Business) {
				ClearRestrictions(b, func(r *Restriction) bool { return r.Kind.ByRegion() && r.Sender == "BR" }, at(hour))
			},
		}, "BR", util, "", allowed()},
		{"the US list and a learned 130497: the list's reason", []func(*Business){fail("US", t0)}, "US", mkt, "",
			denied("DENY REGION_BLOCKED 131049 -")},
		{"a US utility after a learned 130497", []func(*Business){fail("US", t0)}, "US", util, "", denied(learned)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			for _, e := range tc.events {
				e(&f.biz)
			}
			f.chk.Region, f.chk.Sender = tc.region, tc.sender
			in := f.input(tc.cat, at(2*hour))
			if tc.cat == svc {
				f.inbound(at(hour))
			}
			d := Decide(in)
			checkDecision(t, d, tc.want)
			if tc.want.verdict == denyVT && strings.Contains(tc.want.reasons[0], "130497") &&
				!strings.Contains(d.Reasons[0].Detail, "region "+tc.region+" (130497)") {
				t.Errorf("detail %q does not name the region", d.Reasons[0].Detail)
			}
		})
	}
	// Kept per region; an account kind, never a sender's restriction.
	var b Business
	fail("BR", t0)(&b)
	fail("AR", t0)(&b)
	if len(b.Restrictions) != 2 || b.Restrictions[0].Region() != "AR" || b.Restrictions[0].Kind.Rule() != sgv1.Rule_RULE_REGION_BLOCKED {
		t.Fatalf("restrictions %+v", b.Restrictions)
	}
	if ApplyRestrictionFailure(&b, RestrictionFailure{Kind: AccountRegion, At: t0}) {
		t.Error("a 130497 without a region was recorded")
	}
}
