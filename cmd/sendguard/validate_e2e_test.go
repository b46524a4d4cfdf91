package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The rows of the end-to-end audience, by kind. Row i's kind is e2eKind(i).
type e2eRowKind int

const (
	kindNormal      e2eRowKind = iota
	kindExtraField             // a field too many: ERROR
	kindMissing                // fields missing: ERROR
	kindNoRecipient            // neither phone nor user ID: ERROR
	kindUserOnly               // a BSUID and no phone: judged by user ID
	kindLongPhone              // a phone over the server's 64 bytes: ERROR from the server
	kindUS                     // DENY REGION_BLOCKED (131049)
	kindInvalid                // DENY INVALID_NUMBER
	kindOwnOptOut              // SetOptOut(true) before the run: DENY OPTED_OUT (unwanted)
	kindMetaOptOut             // a 131050 before the run: DENY OPTED_OUT (doomed)
	kindCooldown               // a 131049 before the run: DEFER ECOSYSTEM_LIMIT
)

func e2eKind(i int) e2eRowKind {
	switch {
	case i%1000 == 500:
		return kindExtraField
	case i%1000 == 501:
		return kindMissing
	case i%991 == 0:
		return kindNoRecipient
	case i%997 == 0:
		return kindUserOnly
	case i%2003 == 0:
		return kindLongPhone
	case i%113 == 0:
		return kindUS
	case i%127 == 0:
		return kindInvalid
	case i%97 == 5:
		return kindOwnOptOut
	case i%89 == 3:
		return kindMetaOptOut
	case i%83 == 7:
		return kindCooldown
	}
	return kindNormal
}

// e2eE164 is row i's number; e2eSpelling spells it one of three ways.
func e2eE164(i int) string { return fmt.Sprintf("+55119%08d", i) }

func e2eSpelling(i int) string {
	d := fmt.Sprintf("%08d", i)
	switch i % 3 {
	case 0:
		return "+55 11 9" + d[:4] + "-" + d[4:]
	case 1:
		return "55119" + d
	}
	return "+55 (11) 9" + d[:4] + "-" + d[4:]
}

// e2eFields are row i's input fields: id, name, phone, city, user_id.
func e2eFields(i int) []string {
	name := "name " + strconv.Itoa(i)
	if k := e2eKind(i); i%501 == 0 && k != kindExtraField && k != kindMissing {
		name = "Ana, \"Bia\"\nCosta " + strconv.Itoa(i) // quotes, a comma and a newline
	}
	f := []string{strconv.Itoa(i), name, e2eSpelling(i), "SP", ""}
	switch e2eKind(i) {
	case kindExtraField:
		f = append(f, "extra")
	case kindMissing:
		f = f[:3]
	case kindNoRecipient:
		f[2] = ""
	case kindUserOnly:
		f[2], f[4] = "", "BR."+strconv.Itoa(1_000_000+i)
	case kindLongPhone:
		f[2] = "+55" + strings.Repeat("9", 70)
	case kindUS:
		f[2] = fmt.Sprintf("+1 (650) 253-%04d", i%10000)
	case kindInvalid:
		f[2] = "12345"
	}
	return f
}

// e2eAudience writes rows rows to path.
func e2eAudience(t *testing.T, path string, rows int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := csv.NewWriter(bw)
	_ = w.Write([]string{"id", "name", "Phone", "city", "user_id"})
	for i := 1; i <= rows; i++ {
		_ = w.Write(e2eFields(i))
	}
	w.Flush()
	if err := errors.Join(w.Error(), bw.Flush(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

// TestValidateEndToEnd runs the built binary's `validate` on a 100,000-row audience
// (10,000 with -short) with malformed rows, invalid, US and long numbers, BSUIDs,
// opted-out numbers (the business's own and Meta's) and 131049 cooldowns mixed in,
// against a real `serve`, and checks every output row and the summary.
func TestValidateEndToEnd(t *testing.T) {
	rows := 100_000
	if testing.Short() {
		rows = 10_000
	}
	bin := buildBinary(t)
	p := startServer(t, bin, t.TempDir())
	c := dial(t, p.grpc)
	ctx := context.Background()

	// The history the verdicts come from: 8 workers of unary calls.
	failedAt := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		setup error
	)
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				var err error
				switch e2eKind(i) {
				case kindOwnOptOut:
					_, err = c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: e2eE164(i), OptedOut: true, Reason: "e2e"})
				case kindMetaOptOut, kindCooldown:
					code := int32(131050)
					if e2eKind(i) == kindCooldown {
						code = 131049
					}
					_, err = c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: e2eE164(i), MessageId: "wamid.e2e." + strconv.Itoa(i),
						Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: code, Category: sgv1.Category_CATEGORY_MARKETING,
						Template: "earlier", Timestamp: timestamppb.New(failedAt)})
				}
				if err != nil {
					errMu.Lock()
					setup = err
					errMu.Unlock()
				}
			}
		})
	}
	for i := 1; i <= rows; i++ {
		if k := e2eKind(i); k == kindOwnOptOut || k == kindMetaOptOut || k == kindCooldown {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	if setup != nil {
		t.Fatal(setup)
	}

	dir := t.TempDir()
	in, out := filepath.Join(dir, "audience.csv"), filepath.Join(dir, "verdicts.csv")
	e2eAudience(t, in, rows)
	cmd := exec.Command(bin, "validate", "--addr", p.grpc, "--business", "acme", "--template", "promo",
		"--in", in, "--out", out, "--price-per-message", "0.02")
	cmd.Env = append(os.Environ(), "SENDGUARD_API_KEY=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	// Rows with a field too many or too few are CSV (ERROR rows, exit status 0).
	if err := cmd.Run(); err != nil {
		t.Fatalf("validate: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	t.Logf("validate: %d rows in %v\n%s", rows, time.Since(start).Round(time.Millisecond), stdout.String())

	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	rd.ReuseRecord = true
	header, err := rd.Read()
	if err != nil || strings.Join(header, ",") != "id,name,Phone,city,user_id,verdict,rules,retry_at,phone_e164,message" {
		t.Fatalf("header %v %v", header, err)
	}
	retry := failedAt.Add(24 * time.Hour).Format(time.RFC3339)
	counts := map[string]int{}
	doomed, unwanted, malformed := 0, 0, 0
	line := 1 // the header
	for i := 1; i <= rows; i++ {
		line++
		raw := csvLine(e2eFields(i))
		rec, err := rd.Read()
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		in := e2eFields(i)
		wantIn := make([]string, 5)
		copy(wantIn, in)
		if strings.Join(rec[:5], "\x00") != strings.Join(wantIn, "\x00") {
			t.Fatalf("row %d: input fields %q, want %q", i, rec[:5], wantIn)
		}
		verdict, rules, retryAt, e164, msg := rec[5], rec[6], rec[7], rec[8], rec[9]
		want := struct{ verdict, rules, retryAt, e164, msg string }{"ALLOW", "", "", e2eE164(i), ""}
		switch e2eKind(i) {
		case kindExtraField:
			want.verdict, want.e164, want.msg = "ERROR", "", fmt.Sprintf("line %d has 6 fields where the header has 5; the line as read: %s", line, raw)
			malformed++
		case kindMissing:
			want.verdict, want.e164, want.msg = "ERROR", "", fmt.Sprintf("line %d has 3 fields where the header has 5; the line as read: %s", line, raw)
			malformed++
		case kindNoRecipient:
			want.verdict, want.e164, want.msg = "ERROR", "", "no phone number and no user ID"
		case kindUserOnly:
			want.e164 = ""
		case kindLongPhone:
			want.verdict, want.e164, want.msg = "ERROR", "", "INVALID_ARGUMENT: phone is 73 bytes; at most 64"
		case kindUS:
			want.verdict, want.rules, want.e164 = "DENY", "REGION_BLOCKED", fmt.Sprintf("+1650253%04d", i%10000)
			doomed++
		case kindInvalid:
			want.verdict, want.rules, want.e164 = "DENY", "INVALID_NUMBER", ""
			doomed++
		case kindOwnOptOut:
			want.verdict, want.rules = "DENY", "OPTED_OUT"
			unwanted++
		case kindMetaOptOut:
			want.verdict, want.rules = "DENY", "OPTED_OUT"
			doomed++
		case kindCooldown:
			want.verdict, want.rules, want.retryAt = "DEFER", "ECOSYSTEM_LIMIT", retry
			doomed++
		}
		if verdict != want.verdict || rules != want.rules || retryAt != want.retryAt || e164 != want.e164 || msg != want.msg {
			t.Fatalf("row %d (%q): got %q %q %q %q %q\nwant %q %q %q %q %q", i, in[2], verdict, rules, retryAt, e164, msg,
				want.verdict, want.rules, want.retryAt, want.e164, want.msg)
		}
		counts[verdict]++
		line += strings.Count(raw, "\n")
	}
	if _, err := rd.Read(); !errors.Is(err, io.EOF) {
		t.Fatalf("rows after the last: %v", err)
	}

	if stderr.Len() != 0 {
		t.Errorf("stderr (not a terminal: no progress bar expected): %s", stderr.String())
	}
	sum := stdout.String()
	for _, v := range []string{"ALLOW", "DEFER", "DENY", "ERROR"} {
		m := regexp.MustCompile(`(?m)^` + v + `\s+(\d+)\s`).FindStringSubmatch(sum)
		if len(m) < 2 || m[1] != strconv.Itoa(counts[v]) {
			t.Errorf("summary %s: %v, want %d", v, m, counts[v])
		}
	}
	for _, want := range []string{
		fmt.Sprintf("validated %d rows in ", rows),
		fmt.Sprintf("%d lines have another number of fields than the header", malformed),
		fmt.Sprintf("avoided sends: %d of %d rows", doomed+unwanted, rows),
		fmt.Sprintf("  doomed   %10d  ", doomed),
		fmt.Sprintf("  unwanted %10d  ", unwanted),
		fmt.Sprintf("would have cost %.2f", float64(unwanted)*0.02),
	} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
}

// csvLine is fields as one CSV record, without its line end.
func csvLine(fields []string) string {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(fields)
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// TestValidateSIGINT interrupts the binary's `validate` with SIGINT mid-run: it
// exits 130 and leaves a valid CSV holding the first rows of the input, in order.
func TestValidateSIGINT(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const rows = 500_000
	bin := buildBinary(t)
	p := startServer(t, bin, t.TempDir())
	dir := t.TempDir()
	in, out := filepath.Join(dir, "audience.csv"), filepath.Join(dir, "verdicts.csv")
	var b bytes.Buffer
	b.WriteString("id,phone\n")
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(&b, "%d,+55119%08d\n", i, i)
	}
	if err := os.WriteFile(in, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "validate", "--addr", p.grpc, "--business", "acme", "--category", "utility", "--in", in, "--out", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait until the first rows are on disk (the output is flushed in 1 MiB blocks).
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, err := os.Stat(out); err == nil && st.Size() > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("validate ended before it could be interrupted: %v\n%s", err, stdout.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no output within 60s")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("validate did not stop within 30s of SIGINT")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v, want status %d\n%s%s", err, exitInterrupted, stdout.String(), stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("the partial output does not parse as CSV: %v", err)
	}
	n := len(recs) - 1
	if n <= 0 || n >= rows || strings.Join(recs[0], ",") != "id,phone,verdict,rules,retry_at,phone_e164,message" {
		t.Fatalf("%d rows, header %v", n, recs[0])
	}
	for i, rec := range recs[1:] {
		if rec[0] != strconv.Itoa(i+1) || rec[1] != fmt.Sprintf("+55119%08d", i+1) || rec[2] != "ALLOW" || rec[5] != rec[1] {
			t.Fatalf("row %d: %v", i+1, rec)
		}
	}
	if !strings.Contains(stdout.String(), fmt.Sprintf("validated %d rows", n)) || !strings.Contains(stdout.String(), "stopped early") ||
		!strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	t.Logf("interrupted after %d of %d rows", n, rows)
}

// excelBroken is whether row i of the Excel export (of rows rows, a multiple
// of 20) is a line that is not CSV: 19 spread through the file and the last one.
func excelBroken(i, rows int) bool {
	step := rows / 20
	return i%step == step/2 && i < rows-step || i == rows
}

// excelLine is row i of the Excel export, without its line end: ";"-delimited,
// a national spelling of a Brazilian mobile number (read with --region BR), or
// one of four shapes of broken quote.
func excelLine(i, rows int) string {
	d := fmt.Sprintf("%08d", i)
	var phone string
	switch i % 4 {
	case 0:
		phone = "(11) 9" + d[:4] + "-" + d[4:]
	case 1:
		phone = "11 9" + d[:4] + " " + d[4:]
	case 2:
		phone = "119" + d
	default:
		phone = "+55 11 9" + d[:4] + "-" + d[4:]
	}
	name := "Cliente " + strconv.Itoa(i)
	if !excelBroken(i, rows) {
		return strings.Join([]string{strconv.Itoa(i), name, phone, "São Paulo"}, ";")
	}
	switch {
	case i == rows: // a quote that is still open at the end of the file
		return fmt.Sprintf("%d;\"%s;%s;São Paulo", i, name, phone)
	case i/(rows/20)%4 == 0: // a stray quote inside an unquoted field
		return fmt.Sprintf("%d;%s \"Bia\";%s;São Paulo", i, name, phone)
	case i/(rows/20)%4 == 1: // text after a closing quote
		return fmt.Sprintf("%d;\"%s\" Jr;%s;São Paulo", i, name, phone) //nolint:gocritic // sprintfQuotedString: a CSV quote, not a Go string
	case i/(rows/20)%4 == 2: // a quote that opens a field and never closes
		return fmt.Sprintf("%d;\"%s;%s;São Paulo", i, name, phone)
	}
	return fmt.Sprintf("%d;%s;%s\";São Paulo", i, name, phone) // a quote at the end of a field
}

// TestValidateExcelExport runs the built binary's `validate` on a 100,000-row
// Excel export (10,000 with -short): a UTF-8 BOM, ";" delimiters, CRLF line
// ends, national spellings read with --region BR, and 20 lines with broken
// quotes spread through it, the last one open at the end of the file. Every
// input line has exactly one output row, in order, each broken line an ERROR
// row that keeps its number and text, and the exit status is 3.
func TestValidateExcelExport(t *testing.T) {
	rows := 100_000
	if testing.Short() {
		rows = 10_000
	}
	bin := buildBinary(t)
	p := startServer(t, bin, t.TempDir())
	dir := t.TempDir()
	in, out := filepath.Join(dir, "export.csv"), filepath.Join(dir, "verdicts.csv")
	var b bytes.Buffer
	b.WriteString("\ufeffid;nome;celular;cidade\r\n")
	broken := 0
	for i := 1; i <= rows; i++ {
		b.WriteString(excelLine(i, rows) + "\r\n")
		if excelBroken(i, rows) {
			broken++
		}
	}
	if broken != 20 {
		t.Fatalf("%d broken lines generated", broken)
	}
	if err := os.WriteFile(in, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "validate", "--addr", p.grpc, "--business", "acme", "--category", "utility", "--region", "BR",
		"--workers", "4", "--in", in, "--out", out)
	cmd.Env = append(os.Environ(), "SENDGUARD_API_KEY=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("validate: %d rows in %v\n%s%s", rows, time.Since(start).Round(time.Millisecond), stdout.String(), stderr.String())
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitNotCSV {
		t.Fatalf("validate: %v, want exit status %d", err, exitNotCSV)
	}
	// No region warning (--region is set); one line on the broken ones.
	if want := fmt.Sprintf("sendguard: %s: %d lines are not CSV;", in, broken); !strings.HasPrefix(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q, want one line starting %q", stderr.String(), want)
	}
	if want := fmt.Sprintf("validated %d rows in ", rows); !strings.Contains(stdout.String(), want) ||
		!strings.Contains(stdout.String(), fmt.Sprintf("\n%d lines are not CSV: ERROR rows", broken)) {
		t.Errorf("summary lacks the row count or the %d lines that are not CSV:\n%s", broken, stdout.String())
	}

	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Written as the export is: a byte order mark, ";" and CRLF, for Excel.
	br := bufio.NewReaderSize(f, 1<<20)
	if bom, err := br.Peek(3); err != nil || string(bom) != "\ufeff" {
		t.Fatalf("output starts with %q, want a byte order mark as the export does", bom)
	}
	_, _ = br.Discard(3)
	if line, err := br.Peek(100); err != nil || !bytes.Contains(line, []byte("message\r\n")) {
		t.Fatalf("output header %q, want it to end with CRLF as the export's does", line)
	}
	rd := csv.NewReader(br)
	rd.Comma, rd.ReuseRecord = ';', true
	header, err := rd.Read()
	if err != nil || strings.Join(header, ",") != "id,nome,celular,cidade,verdict,rules,retry_at,phone_e164,message" {
		t.Fatalf("header %q %v", header, err)
	}
	for i := 1; i <= rows; i++ {
		rec, err := rd.Read()
		if err != nil {
			t.Fatalf("input line %d: no output row: %v", i+1, err)
		}
		line := excelLine(i, rows)
		if excelBroken(i, rows) {
			want := fmt.Sprintf("line %d is not CSV: ", i+1)
			if strings.Join(rec[:4], "") != "" || rec[4] != "ERROR" || !strings.HasPrefix(rec[8], want) || !strings.HasSuffix(rec[8], "; the line as read: "+line) {
				t.Fatalf("broken line %d: %q; want an ERROR row whose message starts %q and ends with the line %q", i+1, rec, want, line)
			}
			continue
		}
		// Every spelling, national or not, is read as the Brazilian number it
		// is (with --region BR), and a utility template to it is allowed.
		if strings.Join(rec[:4], ";") != line || rec[4] != "ALLOW" || rec[7] != fmt.Sprintf("+55119%08d", i) {
			t.Fatalf("line %d: %q, want the fields of %q, ALLOW and +55119%08d", i+1, rec, line, i)
		}
	}
	if rec, err := rd.Read(); !errors.Is(err, io.EOF) {
		t.Fatalf("rows after the last line: %q %v", rec, err)
	}
}

// TestValidateDiskNearlyFull: against a server whose disk is nearly full (a
// headroom larger than any disk refuses every write from the start), a
// reserving run completes with an ERROR row for each reservation the server
// refused, counts them in its summary and exits 4, so that a campaign script
// does not take it for a finished run; rows that write nothing keep their
// verdicts. The same file without --reserve only reads, and exits 0.
func TestValidateDiskNearlyFull(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sendguard.yaml")
	if err := os.WriteFile(cfg, []byte("disk_headroom: 1000TiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServerArgs(t, bin, filepath.Join(dir, "data"), nil, "--config", cfg)
	in := filepath.Join(dir, "audience.csv")
	if err := os.WriteFile(in, []byte("phone\n+5511987650001\n123\n+5511987650002\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(extra ...string) (rows [][]string, stdout, stderr string, code int) {
		t.Helper()
		out := filepath.Join(dir, "verdicts.csv")
		args := append([]string{"validate", "--addr", p.grpc, "--business", "acme", "--category", "marketing", "--template", "promo",
			"--in", in, "--out", out}, extra...)
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "SENDGUARD_API_KEY=")
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			code = exit.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if rows, err = csv.NewReader(bytes.NewReader(b)).ReadAll(); err != nil {
			t.Fatal(err)
		}
		return rows, so.String(), se.String(), code
	}

	rows, stdout, stderr, code := run("--reserve")
	t.Logf("validate --reserve:\n%s%s", stdout, stderr)
	if code != exitUnjudged {
		t.Fatalf("validate --reserve on a nearly full disk: exit %d, want %d\n%s%s", code, exitUnjudged, stdout, stderr)
	}
	if len(rows) != 4 {
		t.Fatalf("%d output lines, want a header and 3 rows: %q", len(rows), rows)
	}
	msg := slices.Index(rows[0], "message")
	for _, i := range []int{1, 3} {
		if rows[i][1] != "ERROR" || !strings.HasPrefix(rows[i][msg], "UNAVAILABLE: ") || !strings.Contains(rows[i][msg], "disk is nearly full") {
			t.Errorf("row %d: %q, want an ERROR row saying the disk is nearly full", i, rows[i])
		}
	}
	if rows[2][1] != "DENY" {
		t.Errorf("row 2 (123): %q, want DENY", rows[2])
	}
	if !strings.Contains(stdout, "2 rows could not be judged for now (UNAVAILABLE 2): ERROR rows whose message says why; validate them again later") {
		t.Errorf("summary does not count the rows to validate again:\n%s", stdout)
	}
	if !strings.Contains(stderr, "sendguard: the server could not judge 2 rows for now;") {
		t.Errorf("stderr %q, want a line on the rows to validate again", stderr)
	}

	rows, stdout, stderr, code = run()
	if code != 0 || rows[1][1] != "ALLOW" || rows[3][1] != "ALLOW" || strings.Contains(stdout, "could not be judged") {
		t.Fatalf("validate (reads only) on a nearly full disk: exit %d, rows %q\n%s%s", code, rows, stdout, stderr)
	}

	// With the verdicts on standard output, the messages say so.
	cmd := exec.Command(bin, "validate", "--addr", p.grpc, "--business", "acme", "--template", "promo", "--reserve", "--in", in, "--out", "-")
	cmd.Env = append(os.Environ(), "SENDGUARD_API_KEY=")
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Run(); !strings.Contains(se.String(), "each is an ERROR row of standard output saying why") {
		t.Errorf("validate --out - on a nearly full disk: %v\n%s", err, se.String())
	}

	// A single reservation says that the server answered, not that it may
	// not be running.
	cmd = exec.Command(bin, "check", "--addr", p.grpc, "--business", "acme", "--reserve", "--message-ref", "m-1", "+5511987650001")
	cmd.Env = append(os.Environ(), "SENDGUARD_API_KEY=")
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "UNAVAILABLE from the server at "+p.grpc+": storage unavailable: the disk is nearly full") ||
		strings.Contains(string(b), "is `sendguard serve` running") {
		t.Fatalf("check --reserve on a nearly full disk: %v\n%s", err, b)
	}
}
