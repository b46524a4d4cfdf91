package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestExitStatus: interrupted before failed before lines that are not CSV
// before rows the server could not judge for now.
func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		interrupted, failed       bool
		malformed, unjudged, want int
	}{
		{false, false, 0, 0, 0},
		{false, false, 2, 0, exitNotCSV},
		{false, false, 0, 5, exitUnjudged},
		{false, false, 2, 5, exitNotCSV},
		{false, true, 0, 0, exitFailed},
		{false, true, 2, 5, exitFailed},
		{true, false, 0, 0, exitInterrupted},
		{true, false, 2, 5, exitInterrupted},
		{true, true, 0, 0, exitInterrupted},
		{true, true, 2, 5, exitInterrupted},
	} {
		if got := exitStatus(tc.interrupted, tc.failed, tc.malformed, tc.unjudged); got != tc.want {
			t.Errorf("exitStatus(%v, %v, %d, %d) = %d, want %d", tc.interrupted, tc.failed, tc.malformed, tc.unjudged, got, tc.want)
		}
	}
}

// TestValidateRegion: without --region, a national-looking file is warned about
// on stderr before the run; --region is checked and silences the warning (that
// it is set on every request is internal/audience's TestNewRow).
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
	// A business whose policy reads national spellings by a region: no warning
	// (the server reads them as its numbers), and they are its numbers.
	if _, err := s.c.SetPolicy(context.Background(), &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: &sgv1.Policy{DefaultRegion: proto.String("BR")},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"default_region"}}}); err != nil {
		t.Fatal(err)
	}
	if stderr, err := run(); err != nil || stderr != "" {
		t.Fatalf("no --region, the business's default_region BR: %v\n%s", err, stderr)
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), "+5531995511909") {
		t.Fatalf("no --region, the business's default_region BR: %v\n%s", err, b)
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
	// The output is written as the input is: the Excel export (;, CRLF, a byte
	// order mark) comes back the same way, unless --out-delimiter says otherwise.
	for _, tc := range []struct {
		name      string
		args      []string
		in        string
		records   int
		comma     rune
		bom, crlf bool
	}{
		{"validate", []string{"--business", "acme", "--template", "cyber_monday", "--send-at", "2026-11-27T10:00:00Z", "--price-per-message", "0.025"}, "audience.csv", 17, ',', false, false},
		{"validate_reserve", []string{"--business", "acme", "--template", "cyber_monday", "--campaign", "cm-2026", "--send-at", "2026-11-27T10:00:00Z", "--reserve", "--workers", "1"}, "audience.csv", 17, ',', false, false},
		{"validate_broken", []string{"--business", "acme", "--template", "cyber_monday", "--send-at", "2026-11-27T10:00:00Z", "--reserve", "--workers", "3"}, "export.csv", 8, ';', true, true},
		{"validate_broken_comma", []string{"--business", "acme", "--template", "cyber_monday", "--send-at", "2026-11-27T10:00:00Z", "--workers", "3", "--out-delimiter", ","}, "export.csv", 8, ',', true, true},
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
		body, bom := bytes.CutPrefix(out, []byte("\ufeff"))
		header, _, _ := bytes.Cut(body, []byte("\n"))
		if crlf := bytes.HasSuffix(header, []byte("\r")); bom != tc.bom || crlf != tc.crlf {
			t.Errorf("%s: output with a byte order mark %v and CRLF %v, want %v and %v", tc.name, bom, crlf, tc.bom, tc.crlf)
		}
		// The output is a valid CSV: one row per input row, every row as wide as the header.
		rd := csv.NewReader(bytes.NewReader(body))
		rd.Comma = tc.comma
		recs, err := rd.ReadAll()
		if err != nil || len(recs) != tc.records {
			t.Fatalf("%s: output: %d records, %v", tc.name, len(recs), err)
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
		{[]string{"--business", "acme", "--in", in, "--out", out, "--out-delimiter", "::"}, `--out-delimiter "::"`},
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
