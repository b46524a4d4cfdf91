package server

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator"
)

const day = 24 * time.Hour

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func capOf(n int32, w time.Duration) *sgv1.FrequencyCap {
	return &sgv1.FrequencyCap{Count: n, Window: dur(w)}
}

func repeatKeywords(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint("kw", i)
	}
	return out
}

func allRegions() []string {
	var out []string
	for c := range regionCodes {
		out = append(out, strings.ToLower(c))
	}
	slices.Sort(out)
	return out
}

// policyCase is one row of the validation matrix: a policy SetPolicy takes whole,
// and either the field its refusal names or (field "") what the effective policy
// must show.
type policyCase struct {
	name  string
	in    *sgv1.Policy
	field string
	check func(eff *sgv1.Policy) bool
}

var accepted = []policyCase{
	{"one cap of 1", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{capOf(1, time.Second)}}, "", nil},
	{"the largest cap", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{capOf(validator.MaxCapCount, 400*day)}}, "", nil},
	{"8 caps", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{capOf(1, 1), capOf(2, 2), capOf(3, 3), capOf(4, 4), capOf(5, 5), capOf(6, 6), capOf(7, 7), capOf(8, 8)}}, "", nil},
	{"identical caps folded", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{capOf(2, time.Hour), capOf(2, time.Hour), capOf(3, day)}}, "",
		func(e *sgv1.Policy) bool { return len(e.GetFrequencyCaps()) == 2 }},
	{"caps off", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{{Count: 0}}}, "", func(e *sgv1.Policy) bool { return len(e.GetFrequencyCaps()) == 0 }},
	{"zero durations: off", &sgv1.Policy{EcosystemCooldown: dur(0), EcosystemCooldownMax: dur(0), ExperimentTtl: dur(0), ServiceWindow: dur(0), PairInterval: dur(0), TemplateRepeatWindow: dur(0)}, "", nil},
	{"longest durations", &sgv1.Policy{EcosystemCooldown: dur(400 * day), EcosystemCooldownMax: dur(400 * day), ExperimentTtl: dur(400 * day), ServiceWindow: dur(day), PairInterval: dur(7 * day), TemplateRepeatWindow: dur(400 * day)}, "", nil},
	{"64 backoff steps of 400d", &sgv1.Policy{UndeliverableBackoff: slices.Repeat([]*durationpb.Duration{dur(400 * day)}, 64)}, "", nil},
	{"backoff repeats are steps", &sgv1.Policy{UndeliverableBackoff: []*durationpb.Duration{dur(day), dur(day), dur(7 * day)}}, "",
		func(e *sgv1.Policy) bool { return len(e.GetUndeliverableBackoff()) == 3 }},
	{"backoff off", &sgv1.Policy{UndeliverableBackoff: []*durationpb.Duration{dur(0)}}, "", func(e *sgv1.Policy) bool { return len(e.GetUndeliverableBackoff()) == 0 }},
	{"pair burst 0 (off)", &sgv1.Policy{PairBurst: proto.Int32(0)}, "", nil},
	{"largest pair burst", &sgv1.Policy{PairBurst: proto.Int32(validator.MaxPairBurst)}, "", nil},
	{"keywords of many scripts", &sgv1.Policy{OptOutKeywords: []string{"Stop promotions", "Parar promoções", "DÉTENER", "停止", "ストップ", "إيقاف", "रोकें", "Стоп", "1", "st.op", "¡Baja!", "no\u00a0más"}}, "",
		func(e *sgv1.Policy) bool { return len(e.GetOptOutKeywords()) == 12 }},
	{"keywords trimmed and folded", &sgv1.Policy{OptInKeywords: []string{" START ", "start", "Stárt!", "UNSTOP"}}, "",
		func(e *sgv1.Policy) bool { return slices.Equal(e.GetOptInKeywords(), []string{"START", "UNSTOP"}) }},
	{"64 keywords of 64 bytes", &sgv1.Policy{OptOutKeywords: append(repeatKeywords(63), strings.Repeat("é", 32))}, "", nil},
	{"keywords off", &sgv1.Policy{OptInKeywords: []string{""}}, "", func(e *sgv1.Policy) bool { return len(e.GetOptInKeywords()) == 0 }},
	{"messaging limit 0 and max", &sgv1.Policy{MessagingLimit: proto.Int32(math.MaxInt32)}, "", nil},
	{"regions upper-cased and folded", &sgv1.Policy{BlockedRegions: []string{"us", "BR", "xk", "AC", "US"}}, "",
		func(e *sgv1.Policy) bool {
			return slices.Equal(e.GetBlockedRegions(), []string{"US", "BR", "XK", "AC"})
		}},
	{"every region", &sgv1.Policy{BlockedRegions: allRegions()}, "", func(e *sgv1.Policy) bool { return len(e.GetBlockedRegions()) == len(regionCodes) }},
	{"regions off", &sgv1.Policy{BlockedRegions: []string{""}}, "", func(e *sgv1.Policy) bool { return len(e.GetBlockedRegions()) == 0 }},
	{"shadow rules folded", &sgv1.Policy{ShadowRules: []sgv1.Rule{sgv1.Rule_RULE_FREQUENCY_CAP, sgv1.Rule_RULE_PAIR_RATE, sgv1.Rule_RULE_FREQUENCY_CAP}}, "",
		func(e *sgv1.Policy) bool { return len(e.GetShadowRules()) == 2 }},
	{"shadow rules off", &sgv1.Policy{ShadowRules: []sgv1.Rule{sgv1.Rule_RULE_UNSPECIFIED}}, "", func(e *sgv1.Policy) bool { return len(e.GetShadowRules()) == 0 }},
	{"quiet hours", &sgv1.Policy{QuietHours: &sgv1.QuietHours{Start: "21:00", End: "08:00"}}, "", nil},
	{"default region trimmed and upper-cased", &sgv1.Policy{DefaultRegion: proto.String(" br ")}, "",
		func(e *sgv1.Policy) bool { return e.GetDefaultRegion() == "BR" }},
	{"default region none", &sgv1.Policy{DefaultRegion: proto.String("")}, "",
		func(e *sgv1.Policy) bool { return e.DefaultRegion != nil && e.GetDefaultRegion() == "" }},
	{"default region unset: the deployment's (none)", &sgv1.Policy{}, "",
		func(e *sgv1.Policy) bool { return e.DefaultRegion != nil && e.GetDefaultRegion() == "" }},
	{"number validation possible", &sgv1.Policy{NumberValidation: sgv1.NumberValidation_NUMBER_VALIDATION_POSSIBLE}, "",
		func(e *sgv1.Policy) bool {
			return e.GetNumberValidation() == sgv1.NumberValidation_NUMBER_VALIDATION_POSSIBLE
		}},
	{"number validation unspecified: the deployment's (valid)", &sgv1.Policy{}, "",
		func(e *sgv1.Policy) bool {
			return e.GetNumberValidation() == sgv1.NumberValidation_NUMBER_VALIDATION_VALID
		}},
}

var refused = []policyCase{
	{"9 caps", &sgv1.Policy{FrequencyCaps: slices.Repeat([]*sgv1.FrequencyCap{capOf(1, day)}, 9)}, "frequency_caps", nil},
	{"cap count over the history", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{capOf(validator.MaxCapCount+1, day)}}, "frequency_caps[0].count", nil},
	{"negative cap count", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{capOf(-1, day)}}, "frequency_caps[0].count", nil},
	{"zero count beside another cap", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{capOf(1, day), capOf(0, day)}}, "frequency_caps[1].count", nil},
	{"zero window", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{capOf(1, 0)}}, "frequency_caps[0].window", nil},
	{"no window", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{{Count: 1}}}, "frequency_caps[0].window", nil},
	{"negative window", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{capOf(1, -time.Hour)}}, "frequency_caps[0].window", nil},
	{"window over 400d", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{capOf(1, 400*day+time.Second)}}, "frequency_caps[0].window", nil},
	{"invalid window", &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{{Count: 1, Window: &durationpb.Duration{Seconds: 1, Nanos: -1}}}}, "frequency_caps[0].window", nil},
	{"negative cooldown", &sgv1.Policy{EcosystemCooldown: dur(-time.Second)}, "ecosystem_cooldown", nil},
	{"10,000-year cooldown", &sgv1.Policy{EcosystemCooldown: &durationpb.Duration{Seconds: 315_576_000_000}}, "ecosystem_cooldown", nil},
	{"cooldown cap over 400d", &sgv1.Policy{EcosystemCooldownMax: dur(401 * day)}, "ecosystem_cooldown_max", nil},
	{"experiment over 400d", &sgv1.Policy{ExperimentTtl: dur(401 * day)}, "experiment_ttl", nil},
	{"service window over Meta's", &sgv1.Policy{ServiceWindow: dur(day + time.Second)}, "service_window", nil},
	{"negative service window", &sgv1.Policy{ServiceWindow: dur(-time.Second)}, "service_window", nil},
	{"pair interval over a week", &sgv1.Policy{PairInterval: dur(7*day + time.Second)}, "pair_interval", nil},
	{"repeat window over 400d", &sgv1.Policy{TemplateRepeatWindow: dur(401 * day)}, "template_repeat_window", nil},
	{"65 backoff steps", &sgv1.Policy{UndeliverableBackoff: slices.Repeat([]*durationpb.Duration{dur(day)}, 65)}, "undeliverable_backoff", nil},
	{"zero backoff step", &sgv1.Policy{UndeliverableBackoff: []*durationpb.Duration{dur(day), dur(0)}}, "undeliverable_backoff[1]", nil},
	{"backoff step over 400d", &sgv1.Policy{UndeliverableBackoff: []*durationpb.Duration{dur(401 * day)}}, "undeliverable_backoff[0]", nil},
	{"negative backoff", &sgv1.Policy{UndeliverableBackoff: []*durationpb.Duration{dur(-day)}}, "undeliverable_backoff[0]", nil},
	{"pair burst over the history", &sgv1.Policy{PairBurst: proto.Int32(validator.MaxPairBurst + 1)}, "pair_burst", nil},
	{"negative pair burst", &sgv1.Policy{PairBurst: proto.Int32(-1)}, "pair_burst", nil},
	{"negative messaging limit", &sgv1.Policy{MessagingLimit: proto.Int32(-1)}, "messaging_limit", nil},
	{"65 keywords", &sgv1.Policy{OptOutKeywords: repeatKeywords(65)}, "opt_out_keywords", nil},
	{"empty keyword", &sgv1.Policy{OptOutKeywords: []string{"STOP", " "}}, "opt_out_keywords[1]", nil},
	{"65-byte keyword", &sgv1.Policy{OptOutKeywords: []string{strings.Repeat("a", 65)}}, "opt_out_keywords[0]", nil},
	{"NUL in a keyword", &sgv1.Policy{OptOutKeywords: []string{"ST\x00OP"}}, "opt_out_keywords[0]", nil},
	{"tab in a keyword", &sgv1.Policy{OptInKeywords: []string{"ST\tART"}}, "opt_in_keywords[0]", nil},
	{"bell in a keyword", &sgv1.Policy{OptInKeywords: []string{"START", "UN\aSTOP"}}, "opt_in_keywords[1]", nil},
	{"zero-width joiner", &sgv1.Policy{OptOutKeywords: []string{"ST\u200dOP"}}, "opt_out_keywords[0]", nil},
	{"emoji", &sgv1.Policy{OptOutKeywords: []string{"STOP 🛑"}}, "opt_out_keywords[0]", nil},
	{"currency symbol", &sgv1.Policy{OptOutKeywords: []string{"$TOP"}}, "opt_out_keywords[0]", nil},
	{"punctuation only", &sgv1.Policy{OptOutKeywords: []string{"?"}}, "opt_out_keywords[0]", nil},
	{"NUL region", &sgv1.Policy{BlockedRegions: []string{"\x00\x00"}}, "blocked_regions[0]", nil},
	{"unassigned region", &sgv1.Policy{BlockedRegions: []string{"US", "ZZ"}}, "blocked_regions[1]", nil},
	{"alpha-3 region", &sgv1.Policy{BlockedRegions: []string{"USA"}}, "blocked_regions[0]", nil},
	{"non-geographic region", &sgv1.Policy{BlockedRegions: []string{"001"}}, "blocked_regions[0]", nil},
	{"more regions than exist", &sgv1.Policy{BlockedRegions: append(allRegions(), "us")}, "blocked_regions", nil},
	{"shadowed opt-out", &sgv1.Policy{ShadowRules: []sgv1.Rule{sgv1.Rule_RULE_OPTED_OUT}}, "shadow_rules[0]", nil},
	{"unknown rule", &sgv1.Policy{ShadowRules: []sgv1.Rule{sgv1.Rule_RULE_PAIR_RATE, 99}}, "shadow_rules[1]", nil},
	{"unspecified beside a rule", &sgv1.Policy{ShadowRules: []sgv1.Rule{sgv1.Rule_RULE_PAIR_RATE, sgv1.Rule_RULE_UNSPECIFIED}}, "shadow_rules[1]", nil},
	{"100,000 shadow rules", &sgv1.Policy{ShadowRules: slices.Repeat([]sgv1.Rule{sgv1.Rule_RULE_PAIR_RATE}, 100_000)}, "shadow_rules", nil},
	{"bad quiet start", &sgv1.Policy{QuietHours: &sgv1.QuietHours{Start: "24:00", End: "08:00"}}, "quiet_hours.start", nil},
	{"bad quiet end", &sgv1.Policy{QuietHours: &sgv1.QuietHours{Start: "21:00", End: "8pm"}}, "quiet_hours.end", nil},
	{"unassigned default region", &sgv1.Policy{DefaultRegion: proto.String("ZZ")}, "default_region", nil},
	{"alpha-3 default region", &sgv1.Policy{DefaultRegion: proto.String("BRA")}, "default_region", nil},
	{"NUL default region", &sgv1.Policy{DefaultRegion: proto.String("\x00\x00")}, "default_region", nil},
	{"unknown number validation", &sgv1.Policy{NumberValidation: 7}, "number_validation", nil},
}

// TestSetPolicyValidation is the policy validation matrix over the API: every
// accepted edge value is taken (and folded as documented), every refused value
// is INVALID_ARGUMENT naming the field and changes nothing.
func TestSetPolicyValidation(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, tc := range accepted {
		t.Run("accept "+tc.name, func(t *testing.T) {
			resp, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: tc.in})
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil && !tc.check(resp.GetEffective()) {
				t.Fatalf("effective policy %v", resp.GetEffective())
			}
		})
	}
	before, err := h.c.Policy(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range refused {
		t.Run("refuse "+tc.name, func(t *testing.T) {
			_, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: tc.in})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "policy."+tc.field+": ") {
				t.Fatalf("got %v, want INVALID_ARGUMENT naming policy.%s", err, tc.field)
			}
		})
	}
	after, err := h.c.Policy(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(before.GetOverrides(), after.GetOverrides()) {
		t.Fatalf("refused policies changed the overrides:\n%v\n%v", before.GetOverrides(), after.GetOverrides())
	}
}

// TestConfigPolicyValidation is the matrix for the config file: the same bounds,
// refused at startup with the key named.
func TestConfigPolicyValidation(t *testing.T) {
	tests := []struct {
		yaml string
		key  string // "" when accepted
	}{
		{"policy: {frequency_caps: [{count: 256, window: 400d}], pair_burst: 128}", ""},
		{"policy: {service_window: 24h, pair_interval: 7d, ecosystem_cooldown: 400d, template_repeat_window: 0s}", ""},
		{"policy: {opt_out_keywords: [Parar promoções, 停止, ' STOP ', stop], blocked_regions: [br, xk]}", ""},
		{"policy: {frequency_caps: [{count: 0}], undeliverable_backoff: [0s], shadow_rules: [frequency_cap, pair_rate]}", ""},
		{"default_region: xk", ""},
		{"policy: {number_validation: possible}", ""},
		{"policy: {number_validation: NUMBER_VALIDATION_VALID}", ""},
		{"policy: {number_validation: maybe}", "policy.number_validation"},
		{"policy: {number_validation: unspecified}", "policy.number_validation"},
		{"policy: {frequency_caps: [{count: 257, window: 24h}]}", "policy.frequency_caps[0].count"},
		{"policy: {frequency_caps: [{count: 2}]}", "policy.frequency_caps[0].window"},
		{"policy: {frequency_caps: [{count: 2, window: 401d}]}", "policy.frequency_caps[0].window"},
		{"policy: {frequency_caps: [{count: 2, window: 3650000d}]}", "policy.frequency_caps[0].window"},
		{"policy: {ecosystem_cooldown: -1h}", "policy.ecosystem_cooldown"},
		{"policy: {ecosystem_cooldown: 3650000d}", "policy.ecosystem_cooldown"},
		{"policy: {ecosystem_cooldown_max: 99999999999999d}", "policy.ecosystem_cooldown_max"},
		{"policy: {experiment_ttl: 401d}", "policy.experiment_ttl"},
		{"policy: {service_window: 25h}", "policy.service_window"},
		{"policy: {pair_interval: 8d}", "policy.pair_interval"},
		{"policy: {template_repeat_window: 500d}", "policy.template_repeat_window"},
		{"policy: {undeliverable_backoff: [1d, 0s]}", "policy.undeliverable_backoff[1]"},
		{"policy: {pair_burst: 129}", "policy.pair_burst"},
		{"policy: {messaging_limit: -5}", "policy.messaging_limit"},
		{`policy: {opt_out_keywords: ["ST\aOP"]}`, "policy.opt_out_keywords[0]"},
		{`policy: {opt_in_keywords: ["go 🚀"]}`, "policy.opt_in_keywords[0]"},
		{`policy: {blocked_regions: ["\0\0"]}`, "policy.blocked_regions[0]"},
		{"policy: {blocked_regions: [us, zz]}", "policy.blocked_regions[1]"},
		{"policy: {shadow_rules: [opted_out]}", "policy.shadow_rules[0]"},
		{"policy: {shadow_rules: [nope]}", "policy.shadow_rules[0]"},
		{"default_region: zz", "default_region"},
		{`default_region: "\0\0"`, "default_region"},
	}
	for _, tc := range tests {
		t.Run(tc.yaml, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sendguard.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			err := LoadConfigFile(path, &cfg)
			if err == nil {
				err = cfg.Check() // what New does at startup
			}
			switch {
			case tc.key == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.key != "" && (err == nil || !strings.Contains(err.Error(), tc.key+": ")):
				t.Fatalf("got %v, want an error naming %s", err, tc.key)
			}
		})
	}
}

// Every region libphonenumber gives a number is a region code a policy takes.
func TestRegionCodesCoverLibphonenumber(t *testing.T) {
	for r := range phonenumbers.GetSupportedRegions() {
		if _, err := regionCode(r); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
	if n := len(regionCodes); n != 249+3 {
		t.Errorf("%d region codes, want ISO's 249 and AC, TA, XK", n)
	}
}

// A stored policy that no longer validates (written before a bound existed) is
// logged and the business runs on the deployment defaults.
func TestStoredPolicyOutOfBoundsFallsBack(t *testing.T) {
	var logs syncBuffer
	h := newHarness(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	raw, err := proto.Marshal(&sgv1.Policy{PairBurst: proto.Int32(1000), RequireOptIn: proto.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.store.PutPolicy(context.Background(), "legacy", raw); err != nil {
		t.Fatal(err)
	}
	got, err := h.c.Policy(context.Background(), "legacy")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetEffective().GetPairBurst() != 45 || got.GetEffective().GetRequireOptIn() {
		t.Fatalf("effective %v, want the defaults", got.GetEffective())
	}
	if !strings.Contains(logs.String(), "stored policy no longer validates") || !strings.Contains(logs.String(), "pair_burst") {
		t.Fatalf("no warning logged: %q", logs.String())
	}
}

// FuzzPolicy feeds arbitrary encoded policies to the validation: it never
// panics, and what it accepts is within the bounds and is accepted again as it
// is rendered (GetPolicy's effective values validate).
func FuzzPolicy(f *testing.F) {
	for _, tc := range append(slices.Clone(accepted), refused[:20]...) {
		raw, err := proto.Marshal(tc.in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		o := &sgv1.Policy{}
		if proto.Unmarshal(raw, o) != nil {
			return
		}
		p, err := mergePolicy(validator.Defaults(), o)
		if err != nil {
			return
		}
		for _, c := range p.FrequencyCaps {
			if c.Count < 1 || c.Count > validator.MaxCapCount || c.Window <= 0 || c.Window > maxPolicyDuration {
				t.Fatalf("accepted cap %+v", c)
			}
		}
		if p.PairBurst < 0 || p.PairBurst > validator.MaxPairBurst || p.ServiceWindow > maxServiceWindow || p.PairInterval > maxPairInterval {
			t.Fatalf("accepted %+v", p)
		}
		for _, k := range slices.Concat(p.OptOutKeywords, p.OptInKeywords) {
			if checkKeyword(k) != nil {
				t.Fatalf("accepted keyword %q", k)
			}
		}
		// (Onto itself: an empty list renders a list turned off, which as an
		// override means "the deployment default".)
		again, err := mergePolicy(p, policyProto(p))
		if err != nil {
			t.Fatalf("effective policy refused: %v", err)
		}
		if !proto.Equal(policyProto(again), policyProto(p)) {
			t.Fatalf("effective policy changed when set again:\n%v\n%v", policyProto(p), policyProto(again))
		}
	})
}
