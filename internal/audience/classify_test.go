package audience

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

var update = flag.Bool("update", false, "rewrite the console's classification.js")

// jsFile is the console's copy of the classification.
var jsFile = filepath.Join("..", "..", "console", "static", "js", "classification.js")

func reason(rule sgv1.Rule, code int32, shadow bool) *sgv1.Reason {
	return &sgv1.Reason{Rule: rule, MetaErrorCode: code, Shadow: shadow}
}

type classCase struct {
	name string
	resp *sgv1.CheckSendResponse
	want Class
}

// cases: avoided sends are doomed when any blocking reason predicts a Meta
// error (or the number is not one), unwanted otherwise; ALLOW, errors and
// duplicates are not avoided sends.
func cases() []classCase {
	deny, deferV, allow := sgv1.Verdict_VERDICT_DENY, sgv1.Verdict_VERDICT_DEFER, sgv1.Verdict_VERDICT_ALLOW
	return []classCase{
		{"allow", &sgv1.CheckSendResponse{Verdict: allow}, None},
		{"allow, shadowed cap", &sgv1.CheckSendResponse{Verdict: allow, Shadow: true, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, true)}}, None},
		{"row error", &sgv1.CheckSendResponse{Error: &sgv1.RowError{Code: 3}}, None},
		{"duplicate", &sgv1.CheckSendResponse{Verdict: deferV, Duplicate: true, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, false)}}, None},
		{"invalid number", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_INVALID_NUMBER, 0, false)}}, Doomed},
		{"US", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_REGION_BLOCKED, 131049, false)}}, Doomed},
		{"Meta's opt-out", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_OPTED_OUT, 131050, false)}}, Doomed},
		{"own opt-out", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_OPTED_OUT, 0, false)}}, Unwanted},
		{"no consent", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_NO_CONSENT, 0, false)}}, Unwanted},
		{"131049 cooldown", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_ECOSYSTEM_LIMIT, 131049, false)}}, Doomed},
		{"experiment", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_EXPERIMENT, 130472, false)}}, Doomed},
		{"undeliverable", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_UNDELIVERABLE, 131026, false)}}, Doomed},
		{"pair rate", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_PAIR_RATE, 131056, false)}}, Doomed},
		{"paused", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_TEMPLATE_PAUSED, 132015, false)}}, Doomed},
		{"disabled", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_TEMPLATE_PAUSED, 132016, false)}}, Doomed},
		{"window", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_SERVICE_WINDOW, 131047, false)}}, Doomed},
		{"cap", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, false)}}, Unwanted},
		{"quiet hours", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_QUIET_HOURS, 0, false)}}, Unwanted},
		{"repeat", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_TEMPLATE_REPEAT, 0, false)}}, Unwanted},
		{"messaging limit", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_MESSAGING_LIMIT, 0, false)}}, Unwanted},
		{"cap and 131049: doomed wins", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{
			reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, false), reason(sgv1.Rule_RULE_ECOSYSTEM_LIMIT, 131049, false)}}, Doomed},
		{"cap, shadowed 131049", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{
			reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, false), reason(sgv1.Rule_RULE_ECOSYSTEM_LIMIT, 131049, true)}}, Unwanted},
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range cases() {
		if got := Classify(tc.resp); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestConsoleClassification: the console's classification.js is what WriteJS
// writes (go test -update rewrites it), and, run by Node.js, it sorts every
// case's protojson answer as Classify does.
func TestConsoleClassification(t *testing.T) {
	var want bytes.Buffer
	if err := WriteJS(&want); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(jsFile, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(jsFile)
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("%s is not what WriteJS writes (%v): run go test ./internal/audience -update", jsFile, err)
	}

	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("SENDGUARD_REQUIRE_REDIS") != "" {
			t.Fatal("node is needed to run the console's classification.js")
		}
		t.Skip("node not installed: the console's classification.js is not run")
	}
	var answers []json.RawMessage
	var wantClasses []string
	for _, tc := range cases() {
		b, err := protojson.Marshal(tc.resp)
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, b)
		wantClasses = append(wantClasses, tc.want.String())
	}
	in, _ := json.Marshal(answers)
	abs, err := filepath.Abs(jsFile)
	if err != nil {
		t.Fatal(err)
	}
	script := `import { classify } from ` + strings.TrimSpace(string(mustJSON(t, "file://"+abs))) + `;
let s = ''; process.stdin.on('data', (d) => { s += d; });
process.stdin.on('end', () => { console.log(JSON.stringify(JSON.parse(s).map(classify))); });`
	cmd := exec.Command(node, "--input-type=module", "-e", script)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var gotClasses []string
	if err := json.Unmarshal(out, &gotClasses); err != nil || len(gotClasses) != len(wantClasses) {
		t.Fatalf("node answered %s (%v)", out, err)
	}
	for i, tc := range cases() {
		if gotClasses[i] != wantClasses[i] {
			t.Errorf("%s: the console says %q, validate %q", tc.name, gotClasses[i], wantClasses[i])
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
