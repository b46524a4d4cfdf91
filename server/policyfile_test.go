package server

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/reflect/protoreflect"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // prototext of the policy
		keys     []string
	}{
		{"YAML", "require_opt_in: true\nquiet_hours: {start: \"21:00\", end: \"08:00\"}\nfrequency_caps: [{count: 2, window: 7d}]\n",
			`frequency_caps:{count:2 window:{seconds:604800}} quiet_hours:{start:"21:00" end:"08:00"} require_opt_in:true`,
			[]string{"require_opt_in", "quiet_hours", "frequency_caps"}},
		{"JSON", `{"blocked_regions": ["US", "AR"], "shadow_rules": ["QUIET_HOURS"], "pair_burst": 0}`,
			`pair_burst:0 blocked_regions:"US" blocked_regions:"AR" shadow_rules:RULE_QUIET_HOURS`,
			[]string{"blocked_regions", "shadow_rules", "pair_burst"}},
		{"a whole policy: block", "policy:\n  messaging_limit: 1000\n",
			`messaging_limit:1000`, []string{"messaging_limit"}},
		{"turned off", "undeliverable_backoff: [0s]\nfrequency_caps: [{count: 0}]\n",
			`frequency_caps:{count:0 window:{}} undeliverable_backoff:{}`, []string{"undeliverable_backoff", "frequency_caps"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, keys, err := ParsePolicy([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			want := &sgv1.Policy{}
			if err := prototext.Unmarshal([]byte(tc.want), want); err != nil {
				t.Fatal(err)
			}
			if got, want := prototext.Format(p), prototext.Format(want); got != want {
				t.Errorf("policy\n got: %s\nwant: %s", got, want)
			}
			if !slices.Equal(keys, tc.keys) {
				t.Errorf("keys %v, want %v", keys, tc.keys)
			}
		})
	}
	for in, want := range map[string]string{
		"":                                     "no policy fields",
		"- require_opt_in":                     "want a mapping",
		"require_opt_in: true\nrequire_opt: 1": `line 2: "require_opt" is not a policy field`,
		"frequency_caps: [{count: 1, windw: 1h}]": "field windw not found",
		"ecosystem_cooldown: soon":                `ecosystem_cooldown: time: invalid duration "soon"`,
		"shadow_rules: [NOPE]":                    `shadow_rules[0]: unknown rule "NOPE"`,
		"{":                                       "yaml:",
	} {
		if _, _, err := ParsePolicy([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", in, err, want)
		}
	}
}

// TestPolicyFileKeysArePolicyFields: the config file's policy keys are
// sgv1.Policy's field names, so that the keys ParsePolicy returns are a valid
// update_mask.
func TestPolicyFileKeysArePolicyFields(t *testing.T) {
	fields := (&sgv1.Policy{}).ProtoReflect().Descriptor().Fields()
	for _, k := range policyFileKeys() {
		if fields.ByName(protoreflect.Name(k)) == nil {
			t.Errorf("policy key %q is not a sgv1.Policy field", k)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("require_opt_in: true\nfrequency_caps: [{count: 2, window: 7d}]\n"))
	f.Add([]byte(`{"blocked_regions": ["US"], "quiet_hours": {"start": "21:00", "end": "08:00"}}`))
	f.Add([]byte("policy:\n  shadow_rules: [QUIET_HOURS]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, keys, err := ParsePolicy(data)
		if err != nil {
			return
		}
		if len(keys) == 0 || p == nil {
			t.Fatalf("no error, %d keys, policy %v", len(keys), p)
		}
		_, _ = mergePolicy(validator.Defaults(), p) // must not panic
	})
}

// TestPolicyFileCoversPolicy: every sgv1.Policy field has a policy file key
// (a policy file can set whatever SetPolicy can), and proto() carries each key
// into its field: a file that sets every key gives a Policy with every field
// set.
func TestPolicyFileCoversPolicy(t *testing.T) {
	keys := policyFileKeys()
	fields := (&sgv1.Policy{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if name := string(fields.Get(i).Name()); !slices.Contains(keys, name) {
			t.Errorf("sgv1.Policy field %s has no policy file key (add it to filePolicy and proto())", name)
		}
	}
	doc := `frequency_caps: [{count: 2, window: 7d}]
ecosystem_cooldown: 24h
ecosystem_cooldown_max: 7d
experiment_ttl: 30d
service_window: 24h
undeliverable_backoff: [24h, 72h]
pair_interval: 6s
pair_burst: 45
opt_out_keywords: [STOP]
opt_in_keywords: [START]
quiet_hours: {start: "21:00", end: "08:00"}
template_repeat_window: 7d
messaging_limit: 250
blocked_regions: [US]
require_opt_in: false
share_number_signals: false
shadow: false
shadow_rules: [QUIET_HOURS]
number_validation: possible
default_region: BR
keyword_opt_in_is_consent: false
`
	p, got, err := ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sortedCopy(got), sortedCopy(keys)) {
		t.Errorf("the document sets %v; want every key %v (add the new key to this test's document)", got, keys)
	}
	m := p.ProtoReflect()
	for i := range fields.Len() {
		if fd := fields.Get(i); !m.Has(fd) {
			t.Errorf("policy key %s does not reach the Policy's field (proto())", fd.Name())
		}
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// TestPolicyConversionsCoverPolicy: mergePolicy (proto → the validator's
// policy) and policyProto (back) carry every field: a policy whose every field
// differs from the default comes back equal, field by field.
func TestPolicyConversionsCoverPolicy(t *testing.T) {
	doc := `frequency_caps: [{count: 5, window: 2d}]
ecosystem_cooldown: 36h
ecosystem_cooldown_max: 10d
experiment_ttl: 20d
service_window: 12h
undeliverable_backoff: [12h, 48h]
pair_interval: 8s
pair_burst: 20
opt_out_keywords: [HALT]
opt_in_keywords: [RESUME]
quiet_hours: {start: "22:00", end: "07:00"}
template_repeat_window: 3d
messaging_limit: 2000
blocked_regions: [CA]
require_opt_in: true
share_number_signals: true
shadow: true
shadow_rules: [QUIET_HOURS]
number_validation: possible
default_region: BR
keyword_opt_in_is_consent: true
`
	in, _, err := ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	eff, err := mergePolicy(validator.Defaults(), in)
	if err != nil {
		t.Fatal(err)
	}
	out := policyProto(eff).ProtoReflect()
	defaults := policyProto(validator.Defaults()).ProtoReflect()
	fields := out.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !in.ProtoReflect().Has(fd) {
			t.Errorf("the test's policy does not set %s: add it to the document", fd.Name())
			continue
		}
		want, got := in.ProtoReflect().Get(fd), out.Get(fd)
		if !got.Equal(want) {
			t.Errorf("%s: %v after mergePolicy and policyProto, want %v", fd.Name(), got, want)
		}
		if defaults.Get(fd).Equal(want) {
			t.Errorf("%s: the test's value is the default, so a dropped field would pass: choose another", fd.Name())
		}
	}
}
