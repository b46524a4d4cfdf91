package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// recordingServer is a SendGuard server that only streams: it records what
// each CheckSendStream was sent and answers every row ALLOW under the ref
// "srv:<request_id>", except every seventh row, which it answers DENY with a
// ref all the same (one the output must not show).
type recordingServer struct {
	sgv1.UnimplementedSendGuardServer
	mu      sync.Mutex
	streams [][]*sgv1.CheckSendRequest // by stream, in the order received
}

func (s *recordingServer) CheckSendStream(st sgv1.SendGuard_CheckSendStreamServer) error {
	s.mu.Lock()
	i := len(s.streams)
	s.streams = append(s.streams, nil)
	s.mu.Unlock()
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.streams[i] = append(s.streams[i], req)
		s.mu.Unlock()
		n, _ := strconv.Atoi(req.GetRequestId())
		resp := &sgv1.CheckSendResponse{RequestId: req.GetRequestId(), Verdict: sgv1.Verdict_VERDICT_ALLOW, MessageRef: "srv:" + req.GetRequestId()}
		if n%7 == 0 {
			resp.Verdict = sgv1.Verdict_VERDICT_DENY
		}
		if err := st.Send(resp); err != nil {
			return err
		}
	}
}

// startRecordingServer serves a recordingServer on a loopback port.
func startRecordingServer(t *testing.T) (*recordingServer, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &recordingServer{}
	g := grpc.NewServer()
	sgv1.RegisterSendGuardServer(g, rs)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return rs, lis.Addr().String()
}

// spelling is spelling k (of four) of person p's number, +55 31 9 8765-0000
// plus p.
func spelling(p, k int) string {
	d := fmt.Sprintf("%08d", 87650000+p)
	switch k % 4 {
	case 0:
		return "+55 31 9" + d[:4] + "-" + d[4:]
	case 1:
		return "(31) 9" + d[:4] + "-" + d[4:]
	case 2:
		return "55319" + d
	}
	return "0055 31 9" + d[:4] + " " + d[4:]
}

// TestValidateRequests checks what validate sends and what it writes, against
// a server that records every request: --region on every row; with --reserve,
// campaign_id and no message_ref (the server derives it) or CAMPAIGN/row-N with
// --ref-key row; every row of one person on one stream, in input order, with
// several workers; the message_ref column is the server's ref, on ALLOW rows
// only (none on a DENY even when the server sent one, none on ERROR rows).
func TestValidateRequests(t *testing.T) {
	t.Setenv(envAPIKey, "")
	rs, addr := startRecordingServer(t)
	const persons = 40
	dir := t.TempDir()
	in := filepath.Join(dir, "export.csv")
	var b strings.Builder
	b.WriteString("\ufeffid;nome;celular\r\n")
	id := 0
	line := func(phone string) {
		id++
		fmt.Fprintf(&b, "%d;Cliente %d;%s\r\n", id, id, phone)
	}
	for k := range 4 { // four rounds, each person in another spelling
		for p := range persons {
			line(spelling(1000+(p*7+k*3)%persons, k))
		}
		if k == 1 {
			id++
			fmt.Fprintf(&b, "%d;\"Bia \"B\" Souza\";+5531900001001\r\n", id) // not CSV
		}
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	rows := id

	for _, tc := range []struct {
		name    string
		workers int
		args    []string
		ref     func(n int) string // the message_ref the request must carry
	}{
		{"derived", 4, nil, func(int) string { return "" }},
		{"by row", 3, []string{"--ref-key", "row"}, func(n int) string { return "cm/row-" + strconv.Itoa(n) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs.mu.Lock()
			rs.streams = nil
			rs.mu.Unlock()
			out := filepath.Join(t.TempDir(), "out.csv")
			status := 0
			args := append([]string{"--addr", addr, "--business", "acme", "--template", "promo", "--campaign", "cm", "--region", "br",
				"--reserve", "--workers", strconv.Itoa(tc.workers), "--window", "16", "--in", in, "--out", out,
				"--out-delimiter", ","}, tc.args...) // the export is ;-delimited: its verdicts, ,-delimited

			_, stderr, err := runCmd(t, newValidateCmd(validateEnv{exit: func(c int) { status = c }, now: time.Now}), args...)
			if err != nil || status != exitNotCSV {
				t.Fatalf("validate: %v, status %d\n%s", err, status, stderr)
			}

			// The requests: every field as validate should set it; every person
			// on one stream, in input order.
			stream := map[string]int{} // person (last 8 digits) → stream
			sent := 0
			for s, reqs := range rs.streams {
				last := 0
				for _, req := range reqs {
					sent++
					n, _ := strconv.Atoi(req.GetRequestId())
					if n <= last {
						t.Errorf("stream %d: row %d after row %d", s, n, last)
					}
					last = n
					if req.GetRegion() != "BR" || req.GetCampaignId() != "cm" || !req.GetReserve() || req.GetMessageRef() != tc.ref(n) ||
						req.GetBusinessId() != "acme" || req.GetTemplate() != "promo" {
						t.Fatalf("row %d: %v", n, req)
					}
					digits := strings.Map(func(r rune) rune {
						if r < '0' || r > '9' {
							return -1
						}
						return r
					}, req.GetPhone())
					person := digits[len(digits)-8:]
					if w, ok := stream[person]; ok && w != s {
						t.Errorf("person %s on streams %d and %d (row %d, %q)", person, w, s, n, req.GetPhone())
					}
					stream[person] = s
				}
			}
			if used := len(slices.DeleteFunc(slices.Clone(rs.streams), func(r []*sgv1.CheckSendRequest) bool { return len(r) == 0 })); sent != rows-1 || len(stream) != persons || used != tc.workers {
				t.Fatalf("%d requests for %d rows (one not CSV), %d persons, %d of %d streams used", sent, rows, len(stream), used, tc.workers)
			}

			// The output: the server's ref on ALLOW rows only.
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			recs, err := csv.NewReader(f).ReadAll()
			if err != nil || len(recs) != rows+1 || recs[0][len(recs[0])-1] != "message_ref" {
				t.Fatalf("output: %d records, %v", len(recs), err)
			}
			for n, rec := range recs[1:] {
				n++
				verdict, ref := rec[3], rec[8]
				want := ""
				switch {
				case verdict == "ALLOW":
					want = "srv:" + strconv.Itoa(n)
				case verdict == "DENY" && n%7 == 0:
				case verdict == "ERROR" && n == 2*persons+1:
				default:
					t.Fatalf("row %d: %q", n, rec)
				}
				if ref != want {
					t.Errorf("row %d (%s): message_ref %q, want %q", n, verdict, ref, want)
				}
			}
		})
	}
}

// intlSpelling is spelling k (of three) of person p's number (as spelling),
// every one international: without a region, national spellings are the
// server's to read (DESIGN.md: Number identity).
func intlSpelling(p, k int) string {
	d := fmt.Sprintf("%08d", 87650000+p)
	switch k % 3 {
	case 0:
		return "+55 31 9" + d[:4] + "-" + d[4:]
	case 1:
		return "+55 (31) 9" + d[:4] + " " + d[4:]
	}
	return "55319" + d
}

// TestValidateSpellingsOneSend runs --reserve against a real server on an
// audience where every person is listed twice, in two spellings, the second a
// few rows after the first. With four workers the earlier row of each person is
// the ALLOW (the send) and the later one the DUPLICATE, never a DEFER for the
// first's frequency cap; both carry the ref the server derived. Two runs of the
// same audience at once (two workers sharing it) send each person once between
// them.
func TestValidateSpellingsOneSend(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	const persons = 300
	dir := t.TempDir()
	in := filepath.Join(dir, "a.csv")
	var b strings.Builder
	b.WriteString("id,phone\n")
	type row struct {
		person int
		first  bool // the person's first row
	}
	var rows []row
	add := func(p int, first bool) {
		rows = append(rows, row{p, first})
		k := p % 3
		if !first {
			k++ // another spelling
		}
		fmt.Fprintf(&b, "%d,%s\n", len(rows), intlSpelling(p, k))
	}
	for p := range persons {
		add(p, true)
		if p >= 2 {
			add(p-2, false)
		}
	}
	add(persons-2, false)
	add(persons-1, false)
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(business, out string, workers int) ([][]string, error) {
		args := []string{"--addr", s.addr, "--business", business, "--template", "promo", "--campaign", "cm", "--send-at", goldenT0.Format(time.RFC3339),
			"--reserve", "--workers", strconv.Itoa(workers), "--window", "64", "--in", in, "--out", out}
		if _, stderr, err := runCmd(t, newValidateCmd(validateEnv{exit: func(c int) { t.Errorf("exit %d", c) }, now: time.Now}), args...); err != nil {
			return nil, fmt.Errorf("validate: %v\n%s", err, stderr)
		}
		f, err := os.Open(out)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		if err == nil && len(recs) != len(rows)+1 {
			err = fmt.Errorf("%d records for %d rows", len(recs), len(rows))
		}
		return recs, err
	}
	ref := func(p int) string { return fmt.Sprintf("cm/+55319%08d", 87650000+p) }

	recs, err := run("acme", filepath.Join(dir, "out.csv"), 4)
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range recs[1:] {
		r := rows[i]
		want := "DUPLICATE"
		if r.first {
			want = "ALLOW"
		}
		if rec[2] != want || rec[7] != ref(r.person) {
			t.Errorf("row %d (person %d, %s): %q; want %s under %s", i+1, r.person, rec[1], rec, want, ref(r.person))
		}
	}

	// Another business runs the audience twice at once: each person is one
	// ALLOW between the two runs, every other row a DUPLICATE under the same ref.
	var wg sync.WaitGroup
	outs := make([][][]string, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Go(func() { outs[i], errs[i] = run("globex", filepath.Join(dir, fmt.Sprintf("globex%d.csv", i)), 2) })
	}
	wg.Wait()
	allowed := map[int]int{}
	for i := range outs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for n, rec := range outs[i][1:] {
			p := rows[n].person
			switch {
			case rec[7] != ref(p):
				t.Fatalf("run %d, row %d: %q, want the ref %s", i, n+1, rec, ref(p))
			case rec[2] == "ALLOW":
				allowed[p]++
			case rec[2] != "DUPLICATE":
				t.Fatalf("run %d, row %d: %q", i, n+1, rec)
			}
		}
	}
	for p := range persons {
		if allowed[p] != 1 {
			t.Errorf("person %d: %d ALLOW rows in the two runs", p, allowed[p])
		}
	}
}

// TestValidateNoHeaderFirstLineNotCSV: with --no-header, lines that are not CSV
// before the first row that is are ERROR rows like any other; the first CSV
// row gives the width, and the run goes on (exit status 3).
func TestValidateNoHeaderFirstLineNotCSV(t *testing.T) {
	t.Setenv(envAPIKey, "")
	_, addr := startRecordingServer(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "a.csv"), filepath.Join(dir, "out.csv")
	if err := os.WriteFile(in, []byte("\"+5531987650001,Ana\n+5531987650002,\"Bia\"s\n\n+5531987650003,Caio\n+5531987650004,Davi,x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	status := 0
	_, stderr, err := runCmd(t, newValidateCmd(validateEnv{exit: func(c int) { status = c }, now: time.Now}),
		"--addr", addr, "--business", "acme", "--category", "utility", "--region", "BR", "--no-header", "--in", in, "--out", out)
	if err != nil || status != exitNotCSV {
		t.Fatalf("validate: %v, status %d\n%s", err, status, stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := `column1,column2,verdict,rules,retry_at,phone_e164,message
,,ERROR,,,,"line 1 is not CSV: text after the "" that closes a quoted field (a "" inside a quoted field is written """"); the line as read: ""+5531987650001,Ana"
,,ERROR,,,,"line 2 is not CSV: text after the "" that closes a quoted field (a "" inside a quoted field is written """"); the line as read: +5531987650002,""Bia""s"
+5531987650003,Caio,ALLOW,,,,
+5531987650004,Davi,ERROR,,,,"line 5 has 3 fields where the first row has 2; the line as read: +5531987650004,Davi,x"
`
	if string(got) != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}
