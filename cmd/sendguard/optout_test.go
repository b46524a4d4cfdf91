package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/internal/audience"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestOptOutGolden: optout and optin of one number say what changed, and a
// second optout changes nothing (the first one's time and reason are kept).
func TestOptOutGolden(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	seedHistory(t, s)
	var out strings.Builder
	for _, c := range []struct {
		name string
		mk   func() *cobra.Command
		args []string
	}{
		{"optout", optOutCmd, []string{"+55 11 98765-0011", "--business", "acme", "--reason", "support ticket 7"}},
		{"optout", optOutCmd, []string{"5511987650011", "--business", "acme", "--reason", "again"}},
		{"optout", optOutCmd, []string{"+5511987650003", "--business", "acme"}},
		{"optin", optInCmd, []string{"+5511987650011", "--business", "acme", "--reason", "web form"}},
		{"optin", optInCmd, []string{"+5511987650003", "--business", "acme", "--reason", "web form"}},
		{"optout", optOutCmd, []string{"+5511987650012", "--business", "acme", "--json"}},
	} {
		stdout, stderr, err := runCmd(t, c.mk(), append(c.args, "--addr", s.addr, "--time-zone", goldenZone)...)
		if err != nil || stderr != "" {
			t.Fatalf("%s %v: %v\n%s", c.name, c.args, err, stderr)
		}
		out.WriteString("$ sendguard " + c.name + " " + shellJoin(c.args) + "\n" + stdout + "\n")
	}
	golden(t, "optout.golden", []byte(out.String()))
	ct, err := s.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: "acme", Phone: "+5511987650011"})
	if err != nil || ct.GetOptedOut() || ct.GetConsentReason() != "web form" {
		t.Fatalf("after optin: %v %v", ct, err)
	}
	for _, args := range [][]string{
		{"--business", "acme"},
		{"+5511987650011", "--business", "acme", "--in", "x.csv"},
		{"12345", "--business", "acme"},
	} {
		if _, _, err := runCmd(t, optOutCmd(), append(args, "--addr", s.addr)...); err == nil {
			t.Errorf("optout %v: no error", args)
		}
	}
}

// timing is the part of an import summary that changes from run to run.
var timing = regexp.MustCompile(`in [0-9.]+[µmn]?s \(\d+ rows/s\)`)

// TestOptOutImport: a suppression list as CRMs export it (a BOM, ;, CRLF, a
// stray quote, a short row, a bad number, an empty phone) is imported line by
// line; the bad lines are reported and skipped and the status is 3; a second
// import changes nothing and says so; every imported number is then DENY
// OPTED_OUT.
func TestOptOutImport(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	seedHistory(t, s) // +5511987650002 is opted out already
	dir := t.TempDir()
	file := filepath.Join(dir, "suppression.csv")
	lines := []string{
		"\ufeffnome;Telefone;cidade",
		"Ana;+55 11 98765-0021;São Paulo",
		`"Bia;+55 11 98765-0022;Rio`, // a stray quote: this line only
		"Caio;+55 11 98765-0023;Belo Horizonte",
		"Dani;12345;Recife",
		"Eli;;Recife",
		"Fabi;+55 11 98765-0024",
		"Gabi;5511987650002;São Paulo",
		`"Hugo ""H"" Lima";+55 11 98765-0025;"Salvador; BA"`,
		"",
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\r\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for range 2 {
		stdout, stderr, err := runCmd(t, optOutCmd(), "--in", file, "--business", "acme", "--addr", s.addr)
		var ex *exitError
		if !errors.As(err, &ex) || ex.code != exitUnreadLines || stderr != "" {
			t.Fatalf("import: %v (want exit status %d)\n%s", err, exitUnreadLines, stderr)
		}
		out.WriteString("$ sendguard optout --in suppression.csv --business acme\n" + timing.ReplaceAllString(strings.ReplaceAll(stdout, dir+"/", ""), "in T (R rows/s)") +
			"sendguard: " + ex.Error() + "\n\n")
	}
	golden(t, "optout_import.golden", []byte(strings.ReplaceAll(out.String(), dir+"/", "")))
	// Every line CSV, one number that is not one: not imported, so status 3 too.
	if err := os.WriteFile(file, []byte("phone\n+5511987650026\n12345\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCmd(t, optOutCmd(), "--in", file, "--business", "acme", "--addr", s.addr)
	var ex *exitError
	if !errors.As(err, &ex) || ex.code != exitUnreadLines || !strings.Contains(err.Error(), "1 row of "+file+" not imported (listed above): 1 invalid number") {
		t.Errorf("an invalid number: %v, want exit status %d", err, exitUnreadLines)
	}
	for _, phone := range []string{"+5511987650021", "+5511987650023", "+5511987650025"} {
		resp, err := s.c.Check(context.Background(), &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING})
		if err != nil || resp.GetVerdict() != sgv1.Verdict_VERDICT_DENY || resp.GetReasons()[0].GetRule() != sgv1.Rule_RULE_OPTED_OUT {
			t.Errorf("%s after the import: %v %v", phone, resp, err)
		}
	}
	ct, err := s.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: "acme", Phone: "+5511987650021"})
	if err != nil || ct.GetOptOutReason() != "suppression list suppression.csv" {
		t.Errorf("reason: %v %v", ct.GetOptOutReason(), err)
	}
}

// TestOptOutImportFormats: tab and pipe files, a named column, a given
// delimiter, standard input, a file without a header: every line read is
// imported, and the status is 0.
func TestOptOutImportFormats(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	dir := t.TempDir()
	for i, tc := range []struct {
		content string
		args    []string
		stdin   bool
	}{
		{"id\twhatsapp\n1\t+5511987650031\n2\t+5511987650032\n", nil, false},
		{"id|contato|mobile\n1|x|+5511987650033\n", nil, false},
		{"a;b\n+5511987650034;+5511987650099\n", []string{"--phone-column", "1", "--delimiter", ";"}, false},
		{"cliente,numero_do_cliente\nZé,+5511987650035\n", []string{"--phone-column", "numero_do_cliente"}, false},
		{"phone\n+5511987650036\n", nil, true},
		{"+5511987650037\n+5511987650038\n", []string{"--no-header"}, false},
	} {
		file := filepath.Join(dir, "list.csv")
		if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := optOutCmd()
		in := file
		if tc.stdin {
			in = "-"
			cmd.SetIn(strings.NewReader(tc.content))
		}
		var outb, errb strings.Builder
		cmd.SetArgs(append([]string{"--in", in, "--business", "acme", "--addr", s.addr}, tc.args...))
		cmd.SetOut(&outb)
		cmd.SetErr(&errb)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, errb.String())
		}
		want := strings.Count(strings.TrimSpace(tc.content), "\n")
		if slices.Contains(tc.args, "--no-header") {
			want++
		}
		if !regexp.MustCompile(`opted out +`+strconv.Itoa(want)+` `).MatchString(outb.String()) || !strings.Contains(outb.String(), "bad lines                 0") {
			t.Errorf("case %d: want %d opted out:\n%s", i, want, outb.String())
		}
	}
}

// TestOptOutImportInterrupted: a stop (Ctrl-C) before the end leaves the rest of
// the file unread and says where it stopped.
func TestOptOutImportInterrupted(t *testing.T) {
	s := startInProcess(t, goldenT0)
	rd := audience.NewReader(strings.NewReader("phone\n+5511987650041\n+5511987650042\n"), 0)
	h, err := rd.Read()
	if err != nil {
		t.Fatal(err)
	}
	cols, err := audience.DetectColumns(h.Fields, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	stop, cancel := context.WithCancel(context.Background())
	cancel()
	imp := &importer{c: s.c, opts: &optOutFlags{business: "acme"}, cols: cols, workers: 2}
	sum, err := imp.run(stop, rd, nil)
	if err != nil || !sum.interrupted || sum.rows != 0 {
		t.Fatalf("%+v %v", sum, err)
	}
}

// stopAtEOF is an input that ends the stop context as it reports its end: a
// Ctrl-C that arrives once every line has been read.
type stopAtEOF struct {
	r    io.Reader
	stop context.CancelFunc
}

func (s stopAtEOF) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if errors.Is(err, io.EOF) {
		s.stop()
	}
	return n, err
}

// TestOptOutImportStoppedAfterTheEnd: a stop that comes once the whole file has
// been read interrupts nothing: every row is imported and the summary does not
// say that lines were left unread.
func TestOptOutImportStoppedAfterTheEnd(t *testing.T) {
	s := startInProcess(t, goldenT0)
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	rd := audience.NewReader(stopAtEOF{strings.NewReader("phone\n+5511987650043\n+5511987650044\n"), cancel}, 0)
	h, err := rd.Read()
	if err != nil {
		t.Fatal(err)
	}
	cols, err := audience.DetectColumns(h.Fields, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	imp := &importer{c: s.c, opts: &optOutFlags{business: "acme"}, cols: cols, workers: 2}
	sum, err := imp.run(stop, rd, nil)
	if err != nil || stop.Err() == nil || sum.interrupted || sum.optedOut != 2 {
		t.Fatalf("stop %v: %+v %v; want 2 opted out and not interrupted", stop.Err(), sum, err)
	}
}

// TestOwnRegionIsUnwanted: validate counts a REGION_BLOCKED without a Meta
// error (a region the business blocked itself) as unwanted, not doomed.
func TestOwnRegionIsUnwanted(t *testing.T) {
	deny := sgv1.Verdict_VERDICT_DENY
	own := &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{{Rule: sgv1.Rule_RULE_REGION_BLOCKED}}}
	meta := &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{{Rule: sgv1.Rule_RULE_REGION_BLOCKED, MetaErrorCode: 131049}}}
	if audience.Classify(own) != audience.Unwanted || audience.Classify(meta) != audience.Doomed {
		t.Errorf("own region: %v, US: %v", audience.Classify(own), audience.Classify(meta))
	}
}
