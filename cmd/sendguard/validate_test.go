package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func TestNormalizeHeader(t *testing.T) {
	for in, want := range map[string]string{
		"Phone": "phone", "phone_number": "phonenumber", "Phone Number": "phonenumber", " MSISDN ": "msisdn",
		"wa_id": "waid", "WhatsApp": "whatsapp", "Número": "numero", "Teléfono": "telefono", "\ufeffphone": "phone",
		"e.164": "e164", "": "",
	} {
		if got := normalizeHeader(in); got != want {
			t.Errorf("normalizeHeader(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDetectColumns(t *testing.T) {
	for _, tc := range []struct {
		header              []string
		phoneFlag, userFlag string
		noHeader            bool
		phone, user         int
		err                 string
	}{
		{header: []string{"id", "name", "phone"}, phone: 2, user: -1},
		{header: []string{"\ufeffPhone Number", "name"}, phone: 0, user: -1},
		{header: []string{"name", "MSISDN"}, phone: 1, user: -1},
		{header: []string{"name", "Mobile", "city"}, phone: 1, user: -1},
		{header: []string{"wa_id", "name"}, phone: 0, user: -1},
		{header: []string{"WhatsApp"}, phone: 0, user: -1},
		{header: []string{"Celular", "Nome"}, phone: 0, user: -1},
		// The most specific name wins over column order: "number" may be an order number.
		{header: []string{"order number", "number", "phone"}, phone: 2, user: -1},
		{header: []string{"number", "name"}, phone: 0, user: -1},
		{header: []string{"phone", "user_id"}, phone: 0, user: 1},
		{header: []string{"BSUID", "name"}, phone: -1, user: 0},
		{header: []string{"name", "tel", "bsuid"}, phone: 1, user: 2},
		// Named by flag: exact, normalized, or numbered.
		{header: []string{"contact", "name"}, phoneFlag: "contact", phone: 0, user: -1},
		{header: []string{"Contact No", "name"}, phoneFlag: "contact_no", phone: 0, user: -1},
		{header: []string{"a", "b", "c"}, phoneFlag: "3", phone: 2, user: -1},
		{header: []string{"phone", "x"}, phoneFlag: "x", phone: 1, user: -1},
		{header: []string{"phone", "x"}, userFlag: "x", phone: 0, user: 1},
		{header: []string{"+5511987654321", "Ana"}, noHeader: true, phone: 0, user: -1},
		{header: []string{"Ana", "+5511987654321"}, noHeader: true, phoneFlag: "2", phone: 1, user: -1},
		// Errors.
		{header: []string{"name", "city"}, err: "no phone column"},
		{header: []string{"name"}, phoneFlag: "phone", err: "not in the header"},
		{header: []string{"a", "b"}, phoneFlag: "3", err: "has 2 columns"},
		{header: []string{"phone"}, userFlag: "phone", err: "both"},
	} {
		c, err := detectColumns(tc.header, tc.phoneFlag, tc.userFlag, tc.noHeader)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q %q %q: err %v, want %q", tc.header, tc.phoneFlag, tc.userFlag, err, tc.err)
			}
			continue
		}
		if err != nil || c.phone != tc.phone || c.userID != tc.user || c.width != len(tc.header) {
			t.Errorf("%q %q %q: phone %d user %d (%v); want %d %d", tc.header, tc.phoneFlag, tc.userFlag, c.phone, c.userID, err, tc.phone, tc.user)
		}
	}
	// Output columns: the input's, then ours, renamed when the input has them.
	c, _ := detectColumns([]string{"phone", "Verdict"}, "", "", false)
	want := []string{"phone", "Verdict", "sendguard_verdict", "rules", "retry_at", "phone_e164", "message", "message_ref"}
	if strings.Join(c.out, ",") != strings.Join(want, ",") {
		t.Errorf("out %v, want %v", c.out, want)
	}
	c, _ = detectColumns([]string{"a", "b"}, "", "", true)
	if c.out[0] != "column1" || c.out[1] != "column2" || c.phone != 0 {
		t.Errorf("--no-header: %+v", c)
	}
}

func reason(rule sgv1.Rule, code int32, shadow bool) *sgv1.Reason {
	return &sgv1.Reason{Rule: rule, MetaErrorCode: code, Shadow: shadow}
}

// TestClassify: avoided sends are doomed when any blocking reason predicts a Meta
// error (or the number is not one), unwanted otherwise; ALLOW, errors and
// duplicates are not avoided sends.
func TestClassify(t *testing.T) {
	deny, deferV, allow := sgv1.Verdict_VERDICT_DENY, sgv1.Verdict_VERDICT_DEFER, sgv1.Verdict_VERDICT_ALLOW
	for _, tc := range []struct {
		name string
		resp *sgv1.CheckSendResponse
		want rowClass
	}{
		{"allow", &sgv1.CheckSendResponse{Verdict: allow}, classNone},
		{"allow, shadowed cap", &sgv1.CheckSendResponse{Verdict: allow, Shadow: true, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, true)}}, classNone},
		{"row error", &sgv1.CheckSendResponse{Error: &sgv1.RowError{Code: 3}}, classNone},
		{"duplicate", &sgv1.CheckSendResponse{Verdict: deferV, Duplicate: true, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, false)}}, classNone},
		{"invalid number", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_INVALID_NUMBER, 0, false)}}, classDoomed},
		{"US", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_REGION_BLOCKED, 131049, false)}}, classDoomed},
		{"Meta's opt-out", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_OPTED_OUT, 131050, false)}}, classDoomed},
		{"own opt-out", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_OPTED_OUT, 0, false)}}, classUnwanted},
		{"no consent", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_NO_CONSENT, 0, false)}}, classUnwanted},
		{"131049 cooldown", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_ECOSYSTEM_LIMIT, 131049, false)}}, classDoomed},
		{"experiment", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_EXPERIMENT, 130472, false)}}, classDoomed},
		{"undeliverable", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_UNDELIVERABLE, 131026, false)}}, classDoomed},
		{"pair rate", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_PAIR_RATE, 131056, false)}}, classDoomed},
		{"paused", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_TEMPLATE_PAUSED, 132015, false)}}, classDoomed},
		{"disabled", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_TEMPLATE_PAUSED, 132016, false)}}, classDoomed},
		{"window", &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_SERVICE_WINDOW, 131047, false)}}, classDoomed},
		{"cap", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, false)}}, classUnwanted},
		{"quiet hours", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_QUIET_HOURS, 0, false)}}, classUnwanted},
		{"repeat", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_TEMPLATE_REPEAT, 0, false)}}, classUnwanted},
		{"messaging limit", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_MESSAGING_LIMIT, 0, false)}}, classUnwanted},
		{"cap and 131049: doomed wins", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{
			reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, false), reason(sgv1.Rule_RULE_ECOSYSTEM_LIMIT, 131049, false)}}, classDoomed},
		{"cap, shadowed 131049", &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{
			reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, false), reason(sgv1.Rule_RULE_ECOSYSTEM_LIMIT, 131049, true)}}, classUnwanted},
	} {
		if got := classify(tc.resp); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}

	// The summary counts rows by verdict, by rule and by class.
	o := &auditOptions{reserve: true}
	s := newSummary(o)
	for _, r := range []*auditRow{
		{resp: &sgv1.CheckSendResponse{Verdict: allow}},
		{resp: &sgv1.CheckSendResponse{Verdict: allow, Duplicate: true}},
		{errMsg: "no phone"},
		{resp: &sgv1.CheckSendResponse{Error: &sgv1.RowError{Code: 3, Message: "phone is 70 bytes"}}},
		{resp: &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_OPTED_OUT, 131050, false)}}},
		{resp: &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_OPTED_OUT, 0, false)}}},
		{resp: &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_INVALID_NUMBER, 0, false)}}},
		{resp: &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, false), reason(sgv1.Rule_RULE_ECOSYSTEM_LIMIT, 131049, false)}}},
	} {
		s.add(r)
	}
	if s.rows != 8 || s.verdicts["ALLOW"] != 1 || s.verdicts[verdictDuplicate] != 1 || s.verdicts[verdictError] != 2 ||
		s.verdicts["DENY"] != 3 || s.verdicts["DEFER"] != 1 || s.doomed != 3 || s.unwanted != 1 || s.reserved != 1 || s.invalid != 1 {
		t.Fatalf("summary %+v", s)
	}
	if oo := s.rules[sgv1.Rule_RULE_OPTED_OUT]; oo.doomed != 1 || oo.unwanted != 1 {
		t.Errorf("OPTED_OUT %+v", oo)
	}
	if s.codes[131050] != 1 || s.codes[131049] != 1 || len(s.codes) != 2 {
		t.Errorf("codes %v", s.codes)
	}
}

func TestMessageRef(t *testing.T) {
	o := &auditOptions{template: "black_friday"}
	for _, tc := range []struct {
		o           auditOptions
		n           int
		phone, user string
		want        string
	}{
		{auditOptions{template: "black_friday"}, 7, "+55 (11) 98765-4321", "", "black_friday/5511987654321"},
		{auditOptions{template: "bf", campaign: "nov"}, 7, "5511987654321", "", "nov/5511987654321"},
		{auditOptions{template: "bf"}, 7, "", "BR.15025", "bf/u:BR.15025"},
		{auditOptions{template: "bf", refByRow: true}, 7, "5511987654321", "", "bf/row-7"},
		{auditOptions{template: "bf"}, 7, "abc", "", "bf/p:abc"},
	} {
		if got := messageRef(&tc.o, tc.n, tc.phone, tc.user); got != tc.want {
			t.Errorf("messageRef(%+v, %d, %q, %q) = %q, want %q", tc.o, tc.n, tc.phone, tc.user, got, tc.want)
		}
	}
	// The same recipient spelled two ways is the same send.
	if messageRef(o, 1, "+55 11 98765-4321", "") != messageRef(o, 2, "5511987654321", "") {
		t.Error("two spellings of one number give two refs")
	}
	long := &auditOptions{campaign: strings.Repeat("c", 300)}
	if ref := messageRef(long, 1, "5511987654321", ""); len(ref) > maxRefLen || !strings.HasPrefix(ref, "sha256:") ||
		ref != messageRef(long, 9, "+5511987654321", "") {
		t.Errorf("long ref %q", ref)
	}
}

func TestCeilSecond(t *testing.T) {
	base := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	if got := ceilSecond(base); !got.Equal(base) {
		t.Errorf("%v", got)
	}
	if got := ceilSecond(base.Add(time.Nanosecond)); !got.Equal(base.Add(time.Second)) {
		t.Errorf("%v", got)
	}
	if got := ceilSecond(base.Add(999 * time.Millisecond).In(time.FixedZone("x", 3600))); got.Location() != time.UTC || !got.Equal(base.Add(time.Second)) {
		t.Errorf("%v", got)
	}
}

// steppingClock returns start, then start+2s, start+4s…: a run's timing in the
// golden summary is always "2s".
func steppingClock() func() time.Time {
	var mu sync.Mutex
	t := goldenT0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now := t
		t = t.Add(2 * time.Second)
		return now
	}
}

const goldenAudience = `id,Name,Phone Number,city,bsuid
1,Ana,+55 11 98765-0001,SP,
2,"Bia, Jr",+5511987650002,RJ,
3,Caio,5511987650003,SP,
4,Davi,+55 (11) 98765-0004,SP,
5,Eva,+1 201 555 0123,NY,
6,Fabi,12345,X,
7,Gil,,Y,
8,Hugo,+5511987650008
9,Iara,+5511987650009,SP,,extra
10,"Juca ""J""",+5511987650010,"multi
line",
11,Lia,,SP,BR.1502576394655843
12,Mila,+5511987650006,SP,
13,Nina,+5511987650006,SP,
14,Otto,+55119876500140000000000000000000000000000000000000000000000000000000000,SP,
15,Pia,+5511987650015,SP,
16,Quim,+55 11 98765-0015,SP,
`

// TestValidateGolden: the summary `sendguard validate` prints and the file it
// writes, for an audience with a row of every kind, plain and with --reserve.
func TestValidateGolden(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	seedHistory(t, s)
	t.Chdir(t.TempDir())
	if err := os.WriteFile("audience.csv", []byte(goldenAudience), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"validate", []string{"--business", "acme", "--template", "cyber_monday", "--send-at", "2026-11-27T10:00:00Z", "--price-per-message", "0.025"}},
		{"validate_reserve", []string{"--business", "acme", "--template", "cyber_monday", "--campaign", "cm-2026", "--send-at", "2026-11-27T10:00:00Z", "--reserve", "--workers", "1"}},
	} {
		args := append(tc.args, "--in", "audience.csv", "--out", tc.name+".csv")
		stdout, stderr, err := runCmd(t, newValidateCmd(validateEnv{exit: func(c int) { t.Fatalf("exit %d", c) }, now: steppingClock()}), append(args, "--addr", s.addr)...)
		if err != nil || stderr != "" {
			t.Fatalf("validate: %v\n%s", err, stderr)
		}
		golden(t, tc.name+"_summary.golden", []byte("$ sendguard validate "+shellJoin(args)+"\n"+stdout))
		out, err := os.ReadFile(tc.name + ".csv")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name+"_out.golden.csv", out)
		// The output is a valid CSV: one row per input row, every row as wide as the header.
		recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
		if err != nil || len(recs) != 17 {
			t.Fatalf("output: %d records, %v", len(recs), err)
		}
	}
}

// auditFixture runs audit.run in the test process on a generated audience.
type auditFixture struct {
	s     *inproc
	input []byte
	rows  int
}

func newAuditFixture(t *testing.T, rows int) *auditFixture {
	var b bytes.Buffer
	b.WriteString("id,phone\n")
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(&b, "%d,+55119%08d\n", i, i)
	}
	s := startInProcess(t, goldenT0)
	// Connect now, so that the connection's goroutines exist before a test looks for leaks.
	if _, err := s.c.Check(context.Background(), &sgv1.CheckSendRequest{BusinessId: "warm", Phone: "+5511900000000", Category: sgv1.Category_CATEGORY_UTILITY}); err != nil {
		t.Fatal(err)
	}
	return &auditFixture{s: s, input: b.Bytes(), rows: rows}
}

func (f *auditFixture) run(o *auditOptions, stop context.Context, kill <-chan struct{}, progress func(int)) (*auditSummary, [][]string, error) {
	rd := csv.NewReader(bytes.NewReader(f.input))
	rd.FieldsPerRecord = -1
	header, _ := rd.Read()
	cols, _ := detectColumns(header, "", "", false)
	var out bytes.Buffer
	w := csv.NewWriter(&out)
	a := &audit{opts: o, cols: cols, now: time.Now, kill: kill, progress: progress}
	sum, err := a.run(stop, f.s.c, rd, w)
	w.Flush()
	recs, perr := csv.NewReader(&out).ReadAll()
	if perr != nil {
		return sum, nil, fmt.Errorf("the output does not parse: %w", perr)
	}
	return sum, recs, err
}

// checkPrefix checks that recs is the header and the first rows of the fixture's
// input, in order, each with a verdict.
func (f *auditFixture) checkPrefix(t *testing.T, recs [][]string) int {
	t.Helper()
	if len(recs) == 0 || recs[0][0] != "id" {
		t.Fatalf("no header: %v", recs)
	}
	for i, rec := range recs[1:] {
		if rec[0] != strconv.Itoa(i+1) || rec[1] != fmt.Sprintf("+55119%08d", i+1) || rec[2] != "ALLOW" {
			t.Fatalf("row %d: %v", i+1, rec)
		}
	}
	return len(recs) - 1
}

// TestValidateInterrupted: a stop mid-run (Ctrl-C) ends the reading; every row
// read is still judged and written, in order, and no row past the output was
// reserved: a second worker (or a rerun) can take over from there.
func TestValidateInterrupted(t *testing.T) {
	f := newAuditFixture(t, 20000)
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	written := 0
	o := &auditOptions{business: "acme", category: sgv1.Category_CATEGORY_MARKETING, template: "promo", reserve: true,
		workers: 3, window: 300, sendAt: timestamppb.New(goldenT0)}
	sum, recs, err := f.run(o, stop, nil, func(n int) {
		if written += n; written >= 2048 {
			cancel()
		}
	})
	if !errors.Is(err, errInterrupted) || !sum.interrupted || sum.complete {
		t.Fatalf("err %v, summary %+v", err, sum)
	}
	n := f.checkPrefix(t, recs)
	if n < 2048 || n >= f.rows || sum.rows != n || sum.reserved != n {
		t.Fatalf("%d rows written, summary %d rows, %d reserved", n, sum.rows, sum.reserved)
	}
	ctx := context.Background()
	for i := n + 1; i <= f.rows; i += 37 {
		phone := fmt.Sprintf("+55119%08d", i)
		resp, err := f.s.c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING,
			Template: "promo", Reserve: true, MessageRef: messageRef(o, i, phone, ""), SendAt: timestamppb.New(goldenT0)})
		if err != nil || resp.GetDuplicate() || resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
			t.Fatalf("row %d, after the output's %d rows, was reserved by the interrupted run: %v %v", i, n, resp, err)
		}
	}
}

// TestValidateKilled: a second Ctrl-C (kill) stops waiting for answers: the output
// is still a valid CSV holding a prefix of the rows.
func TestValidateKilled(t *testing.T) {
	f := newAuditFixture(t, 20000)
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	kill := make(chan struct{})
	written := 0
	o := &auditOptions{business: "acme", category: sgv1.Category_CATEGORY_UTILITY, workers: 2, window: 1000}
	sum, recs, err := f.run(o, stop, kill, func(n int) {
		if written += n; written >= 1024 && stop.Err() == nil {
			cancel()
			close(kill)
		}
	})
	if !errors.Is(err, errInterrupted) || !sum.interrupted {
		t.Fatalf("err %v, summary %+v", err, sum)
	}
	if n := f.checkPrefix(t, recs); n < 1024 || n >= f.rows {
		t.Fatalf("%d rows", n)
	}
}

// TestValidateServerGone: when the server goes away mid-run, the run fails (it
// could not complete) and the output holds the rows answered so far, in order.
func TestValidateServerGone(t *testing.T) {
	f := newAuditFixture(t, 20000)
	written := 0
	o := &auditOptions{business: "acme", category: sgv1.Category_CATEGORY_UTILITY, workers: 2, window: 1000}
	sum, recs, err := f.run(o, context.Background(), nil, func(n int) {
		if written += n; written >= 1024 && written < 1024+n {
			f.s.srv.GRPCServer().Stop()
		}
	})
	if err == nil || errors.Is(err, errInterrupted) || sum.complete {
		t.Fatalf("err %v, summary %+v", err, sum)
	}
	if n := f.checkPrefix(t, recs); n < 1024 || n >= f.rows || sum.rows != n {
		t.Fatalf("%d rows written, summary %d", n, sum.rows)
	}
}

// TestValidateComplete: an uninterrupted run answers every row, in order, with any
// number of streams and windows.
func TestValidateComplete(t *testing.T) {
	f := newAuditFixture(t, 5000)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // every pipeline goroutine ends with the run
	for _, o := range []*auditOptions{
		{business: "acme", category: sgv1.Category_CATEGORY_MARKETING, workers: 1, window: 1},
		{business: "acme", category: sgv1.Category_CATEGORY_MARKETING, workers: 4, window: 7},
		{business: "acme", category: sgv1.Category_CATEGORY_MARKETING, workers: 16, window: 100000},
	} {
		sum, recs, err := f.run(o, context.Background(), nil, nil)
		if err != nil || !sum.complete || sum.interrupted {
			t.Fatalf("%+v: %v %+v", o, err, sum)
		}
		if n := f.checkPrefix(t, recs); n != f.rows || sum.verdicts["ALLOW"] != f.rows {
			t.Fatalf("%+v: %d rows, %v", o, n, sum.verdicts)
		}
	}
}

// TestValidateFlags: mistakes that stop a run before it starts (exit status 1).
func TestValidateFlags(t *testing.T) {
	s := startInProcess(t, goldenT0)
	dir := t.TempDir()
	in := dir + "/a.csv"
	if err := os.WriteFile(in, []byte("name,city\nAna,SP\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := dir + "/empty.csv"
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out := dir + "/out.csv"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--in", in, "--out", out}, "business"},
		{[]string{"--business", "acme", "--out", out}, "--in and --out"},
		{[]string{"--business", "acme", "--in", in, "--out", out}, "no phone column"},
		{[]string{"--business", "acme", "--in", empty, "--out", out}, "empty"},
		{[]string{"--business", "acme", "--in", dir + "/missing.csv", "--out", out}, "no such file"},
		{[]string{"--business", "acme", "--in", in, "--out", out, "--reserve"}, "--campaign or --template"},
		{[]string{"--business", "acme", "--in", in, "--out", out, "--price-per-message", "cheap"}, "price"},
		{[]string{"--business", "acme", "--in", in, "--out", out, "--workers", "0"}, "workers"},
		{[]string{"--business", "acme", "--in", in, "--out", out, "--category", "promo"}, "category"},
		{[]string{"--business", "acme", "--in", in, "--out", out, "--ref-key", "x"}, "ref-key"},
		{[]string{"--business", "acme", "--in", in, "--out", in, "--phone-column", "name", "--addr", "%ADDR%"}, "is the input file"},
	} {
		for i, a := range tc.args {
			if a == "%ADDR%" {
				tc.args[i] = s.addr
			}
		}
		_, _, err := runCmd(t, newValidateCmd(validateEnv{exit: func(int) {}, now: time.Now}), tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	// No server there: a clear error, and no output file.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	lis.Close()
	if err := os.WriteFile(in, []byte("phone\n+5511987650001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runCmd(t, newValidateCmd(validateEnv{exit: func(int) {}, now: time.Now}),
		"--business", "acme", "--in", in, "--out", out, "--addr", closed, "--timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), "unavailable") || stdout != "" {
		t.Errorf("no server: %v\n%s", err, stdout)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("an output file was created for a run that could not start: %v", err)
	}
}
