package validator

import (
	"strings"
	"testing"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func TestInvalidNumber(t *testing.T) {
	for _, cat := range allCategories {
		t.Run(cat.String(), func(t *testing.T) {
			f := newFixture()
			f.chk.Number, f.chk.InvalidDetail, f.chk.Region = NumberImpossible, "too short for +55", ""
			f.inbound(at(-hour)) // an open window does not help
			d := f.decide(cat, t0)
			checkDecision(t, d, denied("DENY INVALID_NUMBER -"))
			if got := d.Reasons[0].Detail; got != "The phone number is not a possible number: too short for +55." {
				t.Errorf("detail %q", got)
			}
		})
	}
}

// TestNumberValidation: a possible number that is not valid is INVALID_NUMBER
// under NUMBER_VALIDATION_VALID (the default, and what an unspecified value
// means) until the history proves it real; POSSIBLE takes it. A national
// spelling without a region is INVALID_NUMBER whatever the policy and history.
func TestNumberValidation(t *testing.T) {
	notValid := "DENY INVALID_NUMBER -"
	tests := []struct {
		name    string
		problem NumberProblem
		setup   func(f *fixture)
		want    want
	}{
		{"not valid, no history", NumberNotValid, func(f *fixture) {}, denied(notValid)},
		{"not valid, unspecified policy means VALID", NumberNotValid,
			func(f *fixture) { f.pol.NumberValidation = sgv1.NumberValidation_NUMBER_VALIDATION_UNSPECIFIED }, denied(notValid)},
		{"not valid, POSSIBLE", NumberNotValid,
			func(f *fixture) { f.pol.NumberValidation = sgv1.NumberValidation_NUMBER_VALIDATION_POSSIBLE }, allowed()},
		{"not valid, delivered", NumberNotValid, func(f *fixture) { noCaps(f); f.deliver(util, at(-hour)) }, allowed()},
		{"not valid, read", NumberNotValid, func(f *fixture) {
			noCaps(f)
			f.result(Result{Status: sgv1.MessageStatus_MESSAGE_STATUS_READ, Category: util, MessageID: "wamid.r", At: at(-hour)})
		}, allowed()},
		{"not valid, a message from it", NumberNotValid, func(f *fixture) { f.inbound(at(-48 * hour)) }, allowed()},
		{"not valid, a call from it", NumberNotValid, func(f *fixture) {
			ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Kind: sgv1.InboundKind_INBOUND_KIND_CALL, At: at(-48 * hour)})
		}, allowed()},
		{"not valid, a delivered send kept after the facts expired", NumberNotValid, func(f *fixture) {
			noCaps(f)
			f.rel.Sends = []Send{{At: at(-hour), Category: util, Delivered: true}}
		}, allowed()},
		{"not valid, only sent", NumberNotValid, func(f *fixture) {
			f.result(Result{Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT, Category: util, MessageID: "wamid.s", At: at(-48 * hour)})
		}, denied(notValid)},
		{"not valid, only failed", NumberNotValid, func(f *fixture) { f.fail(util, 131000, at(-hour)) }, denied(notValid)},
		{"national, POSSIBLE and delivered", NumberNational, func(f *fixture) {
			noCaps(f)
			f.pol.NumberValidation = sgv1.NumberValidation_NUMBER_VALIDATION_POSSIBLE
			f.deliver(util, at(-hour))
		}, denied(notValid)},
		{"impossible, POSSIBLE", NumberImpossible,
			func(f *fixture) { f.pol.NumberValidation = sgv1.NumberValidation_NUMBER_VALIDATION_POSSIBLE }, denied(notValid)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			f.chk.Number = tc.problem
			tc.setup(f)
			checkDecision(t, f.decide(util, t0), tc.want)
		})
	}
	details := map[NumberProblem]string{
		NumberNational: "set a region (the request's region, or the policy's default_region)",
		NumberNotValid: "possible but not valid",
	}
	for problem, part := range details {
		f := newFixture()
		f.chk.Number = problem
		d := f.decide(mkt, t0)
		if len(d.Reasons) != 1 || !strings.Contains(d.Reasons[0].Detail, part) {
			t.Errorf("problem %d: reasons %+v, want a detail with %q", problem, d.Reasons, part)
		}
	}
}

func TestRegionBlocked(t *testing.T) {
	tests := []struct {
		name    string
		region  string
		blocked []string
		cat     sgv1.Category
		want    want
	}{
		{"US marketing", "US", []string{"US"}, mkt, denied("DENY REGION_BLOCKED 131049 -")},
		{"policy written in lower case", "US", []string{"us"}, mkt, denied("DENY REGION_BLOCKED 131049 -")},
		{"Canadian +1 number", "CA", []string{"US"}, mkt, allowed()},
		{"US utility", "US", []string{"US"}, util, allowed()},
		{"US authentication", "US", []string{"US"}, auth, allowed()},
		{"unknown region", "", []string{"US"}, mkt, allowed()},
		{"rule off", "US", nil, mkt, allowed()},
		// A region the business blocked itself: its own rule, no Meta error.
		{"the business's own region", "AR", []string{"US", "AR"}, mkt, denied("DENY REGION_BLOCKED -")},
		{"the business's own region, lower case", "AR", []string{"ar"}, mkt, denied("DENY REGION_BLOCKED -")},
		{"the business's own region, utility", "AR", []string{"AR"}, util, allowed()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			f.chk.Region, f.pol.BlockedRegions = tc.region, tc.blocked
			checkDecision(t, f.decide(tc.cat, t0), tc.want)
		})
	}
}

// TestRegionBlockedDetail: US is Meta's rule (131049); another region is the
// business's own, and the sentence says so rather than blaming Meta.
func TestRegionBlockedDetail(t *testing.T) {
	for region, want := range map[string]string{
		"US": "Meta does not deliver marketing templates to numbers of region US (they fail with 131049).",
		"AR": "This business does not send marketing to AR (its own blocked_regions policy; Meta would deliver it).",
	} {
		f := newFixture()
		f.chk.Region, f.pol.BlockedRegions = region, []string{"US", "AR"}
		d := f.decide(mkt, t0)
		if len(d.Reasons) != 1 || d.Reasons[0].Detail != want {
			t.Errorf("%s: %+v\nwant detail %q", region, d.Reasons, want)
		}
	}
}

func TestOptedOut(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(f *fixture)
		cat    sgv1.Category
		want   want
		detail string // a part of the sentence
	}{
		{
			name:   "Meta's record from 131050",
			setup:  func(f *fixture) { f.fail(mkt, 131050, at(-hour)) },
			want:   denied("DENY OPTED_OUT 131050 -"),
			detail: "Meta recorded a stop (131050) on 2026-11-26 09:00 UTC",
		},
		{
			name:  "Meta's record from user_preferences",
			setup: func(f *fixture) { ApplyUserPreference(&f.rel, "", true, at(-hour)) },
			want:  denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name: "lifted by a user_preferences resume",
			setup: func(f *fixture) {
				f.fail(mkt, 131050, at(-2*hour))
				ApplyUserPreference(&f.rel, "", false, at(-hour))
			},
			want: allowed(),
		},
		{
			name: "lifted by a delivered marketing message sent after the stop",
			setup: func(f *fixture) {
				noCaps(f) // the delivery is a send of its own
				f.fail(mkt, 131050, at(-2*hour))
				f.sentDelivered("", mkt, "wamid.after", at(-90*min1), at(-hour))
			},
			want: allowed(),
		},
		{
			name: "lifted when the SENT of a delivered message arrives after its delivery",
			setup: func(f *fixture) {
				noCaps(f)
				f.fail(mkt, 131050, at(-2*hour))
				f.result(Result{Status: delivered, Category: mkt, MessageID: "wamid.late", At: at(-hour)})
				f.result(Result{Status: sent, Category: mkt, MessageID: "wamid.late", At: at(-90 * min1)})
			},
			want: allowed(),
		},
		{
			name: "not lifted by a delivery whose send time is unknown",
			setup: func(f *fixture) {
				noCaps(f)
				f.fail(mkt, 131050, at(-2*hour))
				f.deliver(mkt, at(-hour))
			},
			want: denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name: "not lifted by the delivery of a message in flight at the stop",
			setup: func(f *fixture) {
				noCaps(f)
				f.fail(mkt, 131050, at(-2*hour))
				f.sentDelivered("", mkt, "wamid.inflight", at(-3*hour), at(-hour))
			},
			want: denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name: "a stop and a resume of the same time: the stop wins",
			setup: func(f *fixture) {
				ApplyUserPreference(&f.rel, "", false, at(-hour))
				ApplyUserPreference(&f.rel, "", true, at(-hour))
			},
			want: denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name: "a stop and a message sent at its very time: the stop wins",
			setup: func(f *fixture) {
				noCaps(f)
				f.fail(mkt, 131050, at(-2*hour))
				f.sentDelivered("", mkt, "wamid.tie", at(-2*hour), at(-hour))
			},
			want: denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name: "not lifted by an earlier delivered marketing message",
			setup: func(f *fixture) {
				noCaps(f) // the delivery is a send of its own
				f.fail(mkt, 131050, at(-hour))
				f.deliver(mkt, at(-2*hour))
			},
			want: denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name: "not lifted by the business's opt-in",
			setup: func(f *fixture) {
				f.fail(mkt, 131050, at(-2*hour))
				SetOptOut(&f.rel, false, "form", at(-hour))
			},
			want: denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name: "own opt-out by keyword",
			setup: func(f *fixture) {
				ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptOut, Text: " STOP ", At: at(-hour)})
			},
			want:   denied("DENY OPTED_OUT -"),
			detail: `opted out on 2026-11-26 09:00 UTC (keyword "STOP")`,
		},
		{
			name: "own opt-out is not lifted by a delivery",
			setup: func(f *fixture) {
				noCaps(f) // the delivery is a send of its own
				SetOptOut(&f.rel, true, "support ticket", at(-2*hour))
				f.deliver(mkt, at(-hour))
			},
			want: denied("DENY OPTED_OUT -"),
		},
		{
			name: "own opt-out lifted by START",
			setup: func(f *fixture) {
				ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptOut, Text: "STOP", At: at(-2 * hour)})
				ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptIn, Text: "START", At: at(-hour)})
			},
			want: allowed(),
		},
		{
			name: "an older START keyword reported late does not lift a newer opt-out",
			setup: func(f *fixture) {
				SetOptOut(&f.rel, true, "a", at(-hour))
				ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptIn, Text: "START", At: at(-2 * hour)})
			},
			want: denied("DENY OPTED_OUT -"),
		},
		// The tie rule: a stop and a lift of the same time, the stop wins,
		// whichever arrives first (the business's own, and Meta's per sender).
		{
			name: "own: STOP then START of the same time: the stop wins",
			setup: func(f *fixture) {
				ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptOut, Text: "STOP", At: at(-hour)})
				ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptIn, Text: "START", At: at(-hour)})
			},
			want: denied("DENY OPTED_OUT -"),
		},
		{
			name: "own: START then STOP of the same time: the stop wins",
			setup: func(f *fixture) {
				ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptIn, Text: "START", At: at(-hour)})
				ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptOut, Text: "STOP", At: at(-hour)})
			},
			want: denied("DENY OPTED_OUT -"),
		},
		{
			name: "own: the marketing opt-out button's label",
			setup: func(f *fixture) {
				ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptOut, Text: "Parar promoções", Reason: `button "Parar promoções"`, At: at(-hour)})
			},
			want:   denied("DENY OPTED_OUT -"),
			detail: `(button "Parar promoções")`,
		},
		{
			name: "Meta's from a sender: resume then stop of the same time: the stop wins",
			setup: func(f *fixture) {
				ApplyUserPreference(&f.rel, "106540352242922", false, at(-hour))
				ApplyUserPreference(&f.rel, "106540352242922", true, at(-hour))
			},
			want: denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name: "Meta's from a sender: 131050 and a resume of the same time, resume first",
			setup: func(f *fixture) {
				ApplyUserPreference(&f.rel, "106540352242922", false, at(-hour))
				f.result(Result{Status: failedS, ErrorCode: 131050, Category: mkt, MessageID: "wamid.tie", Sender: "106540352242922", At: at(-hour)})
			},
			want: denied("DENY OPTED_OUT 131050 -"),
		},
		{
			name:   "suppression entry of a forgotten opt-out",
			setup:  func(f *fixture) { f.chk.Suppressed = true },
			want:   denied("DENY OPTED_OUT -"),
			detail: "forgotten after opting out",
		},
		{
			name:  "utility is not marketing",
			setup: func(f *fixture) { f.fail(mkt, 131050, at(-hour)); SetOptOut(&f.rel, true, "x", at(-hour)) },
			cat:   util,
			want:  allowed(),
		},
		{
			name: "never shadowed",
			setup: func(f *fixture) {
				f.pol.Shadow = true
				f.pol.ShadowRules = []sgv1.Rule{sgv1.Rule_RULE_OPTED_OUT}
				SetOptOut(&f.rel, true, "x", at(-hour))
			},
			want: denied("DENY OPTED_OUT -"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.setup(f)
			cat := tc.cat
			if cat == 0 {
				cat = mkt
			}
			d := f.decide(cat, t0)
			checkDecision(t, d, tc.want)
			if tc.detail != "" && !strings.Contains(d.Reasons[0].Detail, tc.detail) {
				t.Errorf("detail %q does not contain %q", d.Reasons[0].Detail, tc.detail)
			}
		})
	}
}

func TestNoConsent(t *testing.T) {
	tests := []struct {
		name    string
		require bool
		setup   func(f *fixture)
		cat     sgv1.Category
		want    want
	}{
		{"off by default", false, func(*fixture) {}, mkt, allowed()},
		{"required, none recorded", true, func(*fixture) {}, mkt, denied("DENY NO_CONSENT -")},
		{"required, SetOptOut(false)", true, func(f *fixture) { SetOptOut(&f.rel, false, "signup form", at(-hour)) }, mkt, allowed()},
		{"required, START keyword: a lift, not consent", true, func(f *fixture) {
			ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptIn, Text: "START", At: at(-hour)})
		}, mkt, denied("DENY NO_CONSENT -")},
		{"required, START keyword with keyword_opt_in_is_consent", true, func(f *fixture) {
			f.pol.KeywordOptInIsConsent = true
			ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptIn, Text: "START", At: at(-hour)})
		}, mkt, allowed()},
		{"required, STOP then START keyword with keyword_opt_in_is_consent", true, func(f *fixture) {
			f.pol.KeywordOptInIsConsent = true
			ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptOut, Text: "STOP", At: at(-2 * hour)})
			ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptIn, Text: "START", At: at(-hour)})
		}, mkt, allowed()},
		{"required, consent then a keyword STOP and START: the lift is not consent", true, func(f *fixture) {
			SetOptOut(&f.rel, false, "signup form", at(-3*hour))
			ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptOut, Text: "STOP", At: at(-2 * hour)})
			ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptIn, Text: "START", At: at(-hour)})
		}, mkt, denied("DENY NO_CONSENT -")},
		{"required, consent and a stop of the same time: the stop wins", true, func(f *fixture) {
			f.pol.KeywordOptInIsConsent = true
			ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptIn, Text: "START", At: at(-hour)})
			ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Keyword: KeywordOptOut, Text: "STOP", At: at(-hour)})
		}, mkt, denied("DENY OPTED_OUT -", "DENY NO_CONSENT -")},
		{"required, consent withdrawn", true, func(f *fixture) {
			SetOptOut(&f.rel, false, "signup form", at(-2*hour))
			SetOptOut(&f.rel, true, "STOP", at(-hour))
		}, mkt, denied("DENY OPTED_OUT -", "DENY NO_CONSENT -")},
		{"required, utility", true, func(*fixture) {}, util, allowed()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			f.pol.RequireOptIn = tc.require
			tc.setup(f)
			checkDecision(t, f.decide(tc.cat, t0), tc.want)
		})
	}
}
