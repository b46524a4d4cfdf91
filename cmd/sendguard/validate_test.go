package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
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

// TestSummary: the summary counts rows by verdict, by rule and by class
// (the classification itself is internal/audience's, tested there).
func TestSummary(t *testing.T) {
	deny, deferV, allow := sgv1.Verdict_VERDICT_DENY, sgv1.Verdict_VERDICT_DEFER, sgv1.Verdict_VERDICT_ALLOW
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

// TestRowRef: --ref-key row names a row's send CAMPAIGN/row-N, hashed when
// longer than the server takes.
func TestRowRef(t *testing.T) {
	if got := rowRef(&auditOptions{template: "bf"}, 7); got != "bf/row-7" {
		t.Errorf("template: %q", got)
	}
	if got := rowRef(&auditOptions{template: "bf", campaign: "nov"}, 7); got != "nov/row-7" {
		t.Errorf("campaign: %q", got)
	}
	long := &auditOptions{campaign: strings.Repeat("c", 300)}
	if ref := rowRef(long, 1); len(ref) > maxRefLen || !strings.HasPrefix(ref, "sha256:") || ref == rowRef(long, 2) {
		t.Errorf("long ref %q", ref)
	}
}

// TestWorker: every spelling of a number goes to the same stream, and so does
// every row of a user ID; numbers spread over the streams.
func TestWorker(t *testing.T) {
	a := &audit{opts: &auditOptions{workers: 5}}
	rr := 0
	phone := func(p string) *sgv1.CheckSendRequest { return &sgv1.CheckSendRequest{Phone: p} }
	for _, spellings := range [][]string{
		{"+55 31 99551-1909", "(31) 99551-1909", "5531995511909", "031 99551 1909", "+55 31 9551-1909"},
		{"+52 1 55 1234 5678", "5215512345678", "+525512345678", "55 1234 5678"},
		{"+54 9 11 1234-5678", "011 15 1234-5678", "5491112345678"},
	} {
		w := a.worker(phone(spellings[0]), &rr)
		for _, p := range spellings[1:] {
			if got := a.worker(phone(p), &rr); got != w {
				t.Errorf("%q on stream %d, %q on %d", spellings[0], w, p, got)
			}
		}
	}
	if first, again := a.worker(&sgv1.CheckSendRequest{UserId: "BR.1"}, &rr), a.worker(&sgv1.CheckSendRequest{UserId: "BR.1"}, &rr); first != again {
		t.Error("one user ID on two streams")
	}
	used := map[int]int{}
	for i := range 1000 {
		used[a.worker(phone(fmt.Sprintf("+55119%08d", i)), &rr)]++
	}
	for w := range 5 {
		if used[w] < 100 {
			t.Errorf("stream %d got %d of 1000 numbers: %v", w, used[w], used)
		}
	}
}

// TestExitStatus: interrupted before failed before lines that are not CSV.
func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		interrupted, failed bool
		malformed, want     int
	}{
		{false, false, 0, 0},
		{false, false, 2, exitNotCSV},
		{false, true, 0, exitFailed},
		{false, true, 2, exitFailed},
		{true, false, 0, exitInterrupted},
		{true, false, 2, exitInterrupted},
		{true, true, 0, exitInterrupted},
		{true, true, 2, exitInterrupted},
	} {
		if got := exitStatus(tc.interrupted, tc.failed, tc.malformed); got != tc.want {
			t.Errorf("exitStatus(%v, %v, %d) = %d, want %d", tc.interrupted, tc.failed, tc.malformed, got, tc.want)
		}
	}
}

// TestRegionWarning: without --region, a warning naming --region when most of
// the first phones have no + or 00; none when most have, or when there is no
// phone column.
func TestRegionWarning(t *testing.T) {
	cols := columns{width: 2, phone: 1, userID: -1}
	rows := func(phones ...string) []audienceRecord {
		var out []audienceRecord
		for i, p := range phones {
			out = append(out, audienceRecord{fields: []string{strconv.Itoa(i), p}, line: i + 2, lines: 1})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		rows []audienceRecord
		warn bool
	}{
		{"national", rows("(31) 99551-1909", "31 99551-1910", "+55 31 99551-1911"), true},
		{"digits only", rows("31995511909", "31995511910"), true},
		{"international", rows("+55 31 99551-1909", "0055 31 99551-1910", "31995511911"), false},
		{"half and half", rows("+5531995511909", "31995511910"), false},
		{"no phones", rows("", " "), false},
		{"not CSV and short rows are left out", append(rows("+5531995511909"),
			audienceRecord{err: errBareQuote, raw: `1,"31`}, audienceRecord{fields: []string{"x"}}), false},
	} {
		got := regionWarning(tc.rows, cols, "a.csv")
		if (got != "") != tc.warn || tc.warn && !strings.Contains(got, "--region") {
			t.Errorf("%s: %q", tc.name, got)
		}
	}
	if got := regionWarning(rows("31995511909"), columns{width: 2, phone: -1, userID: 0}, "a.csv"); got != "" {
		t.Errorf("no phone column: %q", got)
	}
}

// TestValidateRegion: without --region, a national-looking file is warned about
// on stderr before the run; --region is checked, upper-cased and set on every
// request, and silences the warning.
func TestValidateRegion(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "a.csv"), filepath.Join(dir, "out.csv")
	if err := os.WriteFile(in, []byte("id;celular\r\n1;(31) 99551-1909\r\n2;31 99551-1910\r\n3;+55 31 99551-1911\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(extra ...string) (string, error) {
		args := append([]string{"--business", "acme", "--category", "utility", "--in", in, "--out", out, "--addr", s.addr}, extra...)
		_, stderr, err := runCmd(t, newValidateCmd(validateEnv{exit: func(int) {}, now: time.Now}), args...)
		return stderr, err
	}
	stderr, err := run()
	if err != nil || !strings.Contains(stderr, "warning: 2 of the first 3 phone numbers") || !strings.Contains(stderr, "--region") {
		t.Fatalf("no region: %v\n%s", err, stderr)
	}
	if stderr, err := run("--region", "br"); err != nil || stderr != "" {
		t.Fatalf("--region br: %v\n%s", err, stderr)
	}
	if _, err := run("--region", "Brazil"); err == nil || !strings.Contains(err.Error(), "ISO 3166") {
		t.Fatalf("--region Brazil: %v", err)
	}
	o := &auditOptions{business: "acme", region: "BR", reserve: true, template: "t"}
	a := &audit{opts: o, cols: columns{width: 1, phone: 0, userID: -1}}
	if r := a.row(1, audienceRecord{fields: []string{"(31) 99551-1909"}, line: 2, lines: 1}); r.req.GetRegion() != "BR" ||
		r.req.GetCampaignId() != "t" || r.req.GetMessageRef() != "" || !r.req.GetReserve() {
		t.Fatalf("request %v", r.req)
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

// goldenBroken is an Excel export (BOM, ";", CRLF) with a quoted field over two
// lines, an empty line, lines that are not CSV and two spellings of one number.
const goldenBroken = "\ufeffid;nome;celular;cidade\r\n" +
	"1;Ana;+55 (11) 98765-0001;São Paulo\r\n" +
	"2;\"Bia \"Bia\" Souza\";+5511987650002;Rio\r\n" + // a stray quote: not CSV
	"3;\"Caio; Jr\";+55 11 98765-0003;\"Rua A, 10\r\nApto 2\"\r\n" + // a field over two lines
	"\r\n" +
	"4;Davi;+55 11 98765-0004\r\n" + // a field missing
	"5;Eva;+5511987650025;SP\r\n" +
	"6;\"Fabi;+5511987650006;SP\r\n" + // a quote that never closes
	"7;Gil;+55 11 98765-0025;SP\r\n" // Eva's number, spelled another way

// TestValidateGolden: the summary `sendguard validate` prints, the file it
// writes and its exit status, for an audience with a row of every kind, plain
// and with --reserve, and for an Excel export with lines that are not CSV.
func TestValidateGolden(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	seedHistory(t, s)
	t.Chdir(t.TempDir())
	for name, content := range map[string]string{"audience.csv": goldenAudience, "export.csv": goldenBroken} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		args    []string
		in      string
		records int
	}{
		{"validate", []string{"--business", "acme", "--template", "cyber_monday", "--send-at", "2026-11-27T10:00:00Z", "--price-per-message", "0.025"}, "audience.csv", 17},
		{"validate_reserve", []string{"--business", "acme", "--template", "cyber_monday", "--campaign", "cm-2026", "--send-at", "2026-11-27T10:00:00Z", "--reserve", "--workers", "1"}, "audience.csv", 17},
		{"validate_broken", []string{"--business", "acme", "--template", "cyber_monday", "--send-at", "2026-11-27T10:00:00Z", "--reserve", "--workers", "3"}, "export.csv", 8},
	} {
		args := append(slices.Clone(tc.args), "--in", tc.in, "--out", tc.name+".csv")
		status := 0
		stdout, stderr, err := runCmd(t, newValidateCmd(validateEnv{exit: func(c int) { status = c }, now: steppingClock()}), append(args, "--addr", s.addr)...)
		if err != nil {
			t.Fatalf("validate: %v\n%s", err, stderr)
		}
		run := "$ sendguard validate " + shellJoin(args) + "\n" + stdout
		if stderr != "" {
			run += "(stderr)\n" + stderr
		}
		golden(t, tc.name+"_summary.golden", []byte(run+fmt.Sprintf("(exit status %d)\n", status)))
		out, err := os.ReadFile(tc.name + ".csv")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name+"_out.golden.csv", out)
		// The output is a valid CSV: one row per input row, every row as wide as the header.
		recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
		if err != nil || len(recs) != tc.records {
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

func (f *auditFixture) run(stop context.Context, o *auditOptions, kill <-chan struct{}, progress func(int)) (*auditSummary, [][]string, error) {
	rd := newAudienceReader(bytes.NewReader(f.input), 0)
	header, _ := rd.Read()
	rd.width = len(header.fields)
	cols, _ := detectColumns(header.fields, "", "", false)
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
	sum, recs, err := f.run(stop, o, nil, func(n int) {
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
			Template: "promo", CampaignId: o.refCampaign(), Reserve: true, SendAt: timestamppb.New(goldenT0)})
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
	sum, recs, err := f.run(stop, o, kill, func(n int) {
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
	sum, recs, err := f.run(context.Background(), o, nil, func(n int) {
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
		sum, recs, err := f.run(context.Background(), o, nil, nil)
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
	brokenHeader := dir + "/broken.csv"
	if err := os.WriteFile(brokenHeader, []byte("\r\nid,\"phone\n1,+5511987650001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nothingCSV := dir + "/nothing.csv"
	if err := os.WriteFile(nothingCSV, []byte("1,\"a\"b\n2,c\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := dir + "/out.csv"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--in", in, "--out", out}, "business"},
		{[]string{"--business", "acme", "--out", out}, "--in and --out"},
		{[]string{"--business", "acme", "--in", in, "--out", out}, `(fields delimited by ",", detected): no phone column`},
		{[]string{"--business", "acme", "--in", in, "--out", out, "--delimiter", ";"}, `(fields delimited by ";", given): no phone column`},
		{[]string{"--business", "acme", "--in", brokenHeader, "--out", out}, `line 2, the header, is not CSV: a quoted field opened on this line never closes; the line as read: id,"phone`},
		{[]string{"--business", "acme", "--in", in, "--out", out, "--delimiter", ";;"}, "--delimiter"},
		{[]string{"--business", "acme", "--in", in, "--out", out, "--delimiter", `"`}, "--delimiter"},
		{[]string{"--business", "acme", "--in", in, "--out", out, "--region", "BRA"}, "--region"},
		{[]string{"--business", "acme", "--in", empty, "--out", out}, "empty"},
		{[]string{"--business", "acme", "--in", nothingCSV, "--out", out, "--no-header"}, `no line is CSV; line 1: text after the "`},
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
