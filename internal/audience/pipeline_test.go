package audience

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage/badger"
)

// TestStream: every spelling of a number goes to the same stream, and so does
// every row of a user ID; numbers spread over the streams.
func TestStream(t *testing.T) {
	rr := 0
	phone := func(p string) *sgv1.CheckSendRequest { return &sgv1.CheckSendRequest{Phone: p} }
	for _, spellings := range [][]string{
		{"+55 31 99551-1909", "(31) 99551-1909", "5531995511909", "031 99551 1909", "+55 31 9551-1909"},
		{"+52 1 55 1234 5678", "5215512345678", "+525512345678", "55 1234 5678"},
		{"+54 9 11 1234-5678", "011 15 1234-5678", "5491112345678"},
	} {
		w := stream(phone(spellings[0]), 5, &rr)
		for _, p := range spellings[1:] {
			if got := stream(phone(p), 5, &rr); got != w {
				t.Errorf("%q on stream %d, %q on %d", spellings[0], w, p, got)
			}
		}
	}
	if first, again := stream(&sgv1.CheckSendRequest{UserId: "BR.1"}, 5, &rr), stream(&sgv1.CheckSendRequest{UserId: "BR.1"}, 5, &rr); first != again {
		t.Error("one user ID on two streams")
	}
	used := map[int]int{}
	for i := range 1000 {
		used[stream(phone(fmt.Sprintf("+55119%08d", i)), 5, &rr)]++
	}
	for w := range 5 {
		if used[w] < 100 {
			t.Errorf("stream %d got %d of 1000 numbers: %v", w, used[w], used)
		}
	}
}

// t0 is the servers' clock in these tests.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// testServer is a sendguard server in the test process, on loopback, with an
// in-memory store and the clock stopped at t0.
type testServer struct {
	srv *server.Server
	c   *client.Client
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	st, err := badger.Open(badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.HashSecret = []byte("sendguard-test-secret")
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Now = func() time.Time { return t0 }
	srv, err := server.New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.GRPCServer().Serve(lis) }()
	c, err := client.Dial(lis.Addr().String(), client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.GRPCServer().Stop()
		st.Close()
	})
	return &testServer{srv: srv, c: c}
}

// pipelineFixture runs Run in the test process on a generated audience.
type pipelineFixture struct {
	s     *testServer
	input []byte
	rows  int
}

func newPipelineFixture(t *testing.T, rows int) *pipelineFixture {
	var b bytes.Buffer
	b.WriteString("id,phone\n")
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(&b, "%d,+55119%08d\n", i, i)
	}
	s := startServer(t)
	// Connect now, so that the connection's goroutines exist before a test looks for leaks.
	if _, err := s.c.Check(context.Background(), &sgv1.CheckSendRequest{BusinessId: "warm", Phone: "+5511900000000", Category: sgv1.Category_CATEGORY_UTILITY}); err != nil {
		t.Fatal(err)
	}
	return &pipelineFixture{s: s, input: b.Bytes(), rows: rows}
}

func (f *pipelineFixture) run(stop context.Context, o *Options, kill <-chan struct{}, progress func(int)) (*Summary, [][]string, error) {
	in, err := Open(bytes.NewReader(f.input), "audience.csv", o)
	if err != nil {
		return nil, nil, err
	}
	var out bytes.Buffer
	w := csv.NewWriter(&out)
	sum, err := Run(stop, f.s.c, in, w, o, Env{Now: time.Now, Kill: kill, Progress: progress})
	w.Flush()
	recs, perr := csv.NewReader(&out).ReadAll()
	if perr != nil {
		return sum, nil, fmt.Errorf("the output does not parse: %w", perr)
	}
	return sum, recs, err
}

// checkPrefix checks that recs is the header and the first rows of the fixture's
// input, in order, each with a verdict.
func (f *pipelineFixture) checkPrefix(t *testing.T, recs [][]string) int {
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

// TestRunInterrupted: a stop mid-run (Ctrl-C) ends the reading; every row
// read is still judged and written, in order, and no row past the output was
// reserved: a second worker (or a rerun) can take over from there.
func TestRunInterrupted(t *testing.T) {
	f := newPipelineFixture(t, 20000)
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	written := 0
	o := &Options{Business: "acme", Category: sgv1.Category_CATEGORY_MARKETING, Template: "promo", Reserve: true,
		Workers: 3, Window: 300, SendAt: timestamppb.New(t0)}
	sum, recs, err := f.run(stop, o, nil, func(n int) {
		if written += n; written >= 2048 {
			cancel()
		}
	})
	if !errors.Is(err, ErrInterrupted) || !sum.Interrupted || sum.Complete {
		t.Fatalf("err %v, summary %+v", err, sum)
	}
	n := f.checkPrefix(t, recs)
	if n < 2048 || n >= f.rows || sum.Rows != n || sum.reserved != n {
		t.Fatalf("%d rows written, summary %d rows, %d reserved", n, sum.Rows, sum.reserved)
	}
	ctx := context.Background()
	for i := n + 1; i <= f.rows; i += 37 {
		phone := fmt.Sprintf("+55119%08d", i)
		resp, err := f.s.c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING,
			Template: "promo", CampaignId: o.refCampaign(), Reserve: true, SendAt: timestamppb.New(t0)})
		if err != nil || resp.GetDuplicate() || resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
			t.Fatalf("row %d, after the output's %d rows, was reserved by the interrupted run: %v %v", i, n, resp, err)
		}
	}
}

// TestRunKilled: a second Ctrl-C (kill) stops waiting for answers: the output
// is still a valid CSV holding a prefix of the rows.
func TestRunKilled(t *testing.T) {
	f := newPipelineFixture(t, 20000)
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	kill := make(chan struct{})
	written := 0
	o := &Options{Business: "acme", Category: sgv1.Category_CATEGORY_UTILITY, Workers: 2, Window: 1000}
	sum, recs, err := f.run(stop, o, kill, func(n int) {
		if written += n; written >= 1024 && stop.Err() == nil {
			cancel()
			close(kill)
		}
	})
	if !errors.Is(err, ErrInterrupted) || !sum.Interrupted {
		t.Fatalf("err %v, summary %+v", err, sum)
	}
	if n := f.checkPrefix(t, recs); n < 1024 || n >= f.rows {
		t.Fatalf("%d rows", n)
	}
}

// TestRunServerGone: when the server goes away mid-run, the run fails (it
// could not complete) and the output holds the rows answered so far, in order.
func TestRunServerGone(t *testing.T) {
	f := newPipelineFixture(t, 20000)
	written := 0
	o := &Options{Business: "acme", Category: sgv1.Category_CATEGORY_UTILITY, Workers: 2, Window: 1000}
	sum, recs, err := f.run(context.Background(), o, nil, func(n int) {
		if written += n; written >= 1024 && written < 1024+n {
			f.s.srv.GRPCServer().Stop()
		}
	})
	if err == nil || errors.Is(err, ErrInterrupted) || sum.Complete {
		t.Fatalf("err %v, summary %+v", err, sum)
	}
	if n := f.checkPrefix(t, recs); n < 1024 || n >= f.rows || sum.Rows != n {
		t.Fatalf("%d rows written, summary %d", n, sum.Rows)
	}
}

// TestRunComplete: an uninterrupted run answers every row, in order, with any
// number of streams and windows.
func TestRunComplete(t *testing.T) {
	f := newPipelineFixture(t, 5000)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // every pipeline goroutine ends with the run
	for _, o := range []*Options{
		{Business: "acme", Category: sgv1.Category_CATEGORY_MARKETING, Workers: 1, Window: 1},
		{Business: "acme", Category: sgv1.Category_CATEGORY_MARKETING, Workers: 4, Window: 7},
		{Business: "acme", Category: sgv1.Category_CATEGORY_MARKETING, Workers: 16, Window: 100000},
	} {
		sum, recs, err := f.run(context.Background(), o, nil, nil)
		if err != nil || !sum.Complete || sum.Interrupted {
			t.Fatalf("%+v: %v %+v", o, err, sum)
		}
		if n := f.checkPrefix(t, recs); n != f.rows || sum.verdicts["ALLOW"] != f.rows {
			t.Fatalf("%+v: %d rows, %v", o, n, sum.verdicts)
		}
	}
}
