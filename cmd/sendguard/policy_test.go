package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestPolicyGolden: policy get and set as an operator uses them: flags, a file,
// a mask that sends a field back to the default, --replace, and --json.
func TestPolicyGolden(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	file := filepath.Join(t.TempDir(), "acme-policy.yaml")
	if err := os.WriteFile(file, []byte("policy:\n  messaging_limit: 1000\n  frequency_caps: [{count: 0}]   # no caps\n  opt_out_keywords: [STOP, \"Parar promoções\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, args := range [][]string{
		{"get", "--business", "acme"},
		{"set", "--business", "acme", "--require-opt-in", "--quiet-hours", "21:00-08:00", "--blocked-regions", "US,AR", "--frequency-caps", "2/7d,1/24h"},
		{"set", "--business", "acme", "--file", "FILE", "--require-opt-in=false"},
		{"set", "--business", "acme", "--mask", "quiet-hours,blocked_regions"},
		{"set", "--business", "acme", "--shadow-rules", "quiet_hours,FREQUENCY_CAP", "--pair-interval", "90s", "--undeliverable-backoff", ""},
		{"get", "--business", "acme"},
		{"set", "--business", "acme", "--replace", "--service-window", "12h"},
		{"get", "--business", "acme", "--json"},
	} {
		stdout, stderr, err := runCmd(t, policyCmd(), append(replaceArg(args, "FILE", file), "--addr", s.addr)...)
		if err != nil || stderr != "" {
			t.Fatalf("policy %v: %v\n%s", args, err, stderr)
		}
		out.WriteString("$ sendguard policy " + shellJoin(args) + "\n" + stdout + "\n")
	}
	golden(t, "policy.golden", []byte(out.String()))
}

func replaceArg(args []string, from, to string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, from, to)
	}
	return out
}

// TestPolicySetRefuses: mistakes are caught before any change, naming the flag,
// the file or the field; the server's bounds are its own (INVALID_ARGUMENT).
func TestPolicySetRefuses(t *testing.T) {
	s := startInProcess(t, goldenT0)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("require_opt_in: true\nquiet_hour: {start: \"21:00\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--business", "acme"}, "nothing to change"},
		{[]string{"--business", "acme", "--messaging-limit", "many"}, `--messaging-limit: "many": want a whole number`},
		{[]string{"--business", "acme", "--frequency-caps", "2 per week"}, "want COUNT/WINDOW"},
		{[]string{"--business", "acme", "--quiet-hours", "9pm"}, "want HH:MM-HH:MM"},
		{[]string{"--business", "acme", "--shadow-rules", "CAPS"}, `"CAPS": want one of INVALID_NUMBER`},
		{[]string{"--business", "acme", "--number-validation", "strict"}, "want one of VALID, POSSIBLE"},
		{[]string{"--business", "acme", "--service-window", "a day"}, "want a duration"},
		{[]string{"--business", "acme", "--mask", "quiet"}, `--mask: "quiet" is not a policy field`},
		{[]string{"--business", "acme", "--replace", "--mask", "shadow"}, "do not go together"},
		{[]string{"--business", "acme", "--require-opt-in", "--mask", "quiet_hours"}, "--require-opt-in is set but --mask does not name require_opt_in"},
		{[]string{"--business", "acme", "--file", bad}, `"quiet_hour" is not a policy field`},
		{[]string{"--business", "acme", "--pair-burst", "500"}, "INVALID_ARGUMENT: policy.pair_burst: must be from 0 to 128"},
	} {
		_, _, err := runCmd(t, policyCmd(), append(append([]string{"set"}, tc.args...), "--addr", s.addr)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("policy set %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestPolicyFlagsCoverPolicy: every Policy field has a documented flag of
// `policy set`, and every flag's value reads back as what get prints.
func TestPolicyFlagsCoverPolicy(t *testing.T) {
	fields := (&sgv1.Policy{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		name := string(fields.Get(i).Name())
		if policyFlagHelp[name] == "" {
			t.Errorf("Policy field %s has no flag help in policyFlagHelp", name)
		}
	}
	for name := range policyFlagHelp {
		if fields.ByName(protoreflect.Name(name)) == nil {
			t.Errorf("policyFlagHelp names %s, which is not a Policy field", name)
		}
	}
}

func TestConfigDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 6 * time.Second: "6s", 90 * time.Minute: "1h30m", 24 * time.Hour: "24h", 72 * time.Hour: "3d",
		30 * time.Minute: "30m", 36 * time.Hour: "36h", 1500 * time.Millisecond: "1.5s",
	} {
		if got := configDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}
