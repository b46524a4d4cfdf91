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
