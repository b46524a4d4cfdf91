package loadgen

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	"github.com/sendguard/sendguard/internal/serve"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage/badger"
)

// Workloads, in the order they run. Each names what it measures and the baseline
// it is compared with in the same run.
const (
	WStream  = "stream"  // CheckSendStream over distinct numbers vs the no-op echo stream
	WUnary   = "unary"   // CheckSend at Concurrency callers vs health Check at the same
	WUnary1  = "unary1"  // CheckSend at 1 caller vs health Check at 1 caller (p99 < 1 ms)
	WReserve = "reserve" // a stream where every row reserves vs the echo stream
	WReport  = "report"  // ReportResult at Concurrency callers, default and strict durability
	WWebhook = "webhook" // webhook POSTs of WebhookBatch statuses, default and strict durability
	WScale   = "scale"   // CheckSend p99 (1 caller) at Numbers vs a second server holding ScaleBase
	WJSON    = "json"    // CheckSend as JSON on the API port at Concurrency callers vs GET /healthz at the same
	WFlow    = "flow"    // two campaigns (validate, reserve, statuses by webhook) vs the same flow with no-op rules; only when named
)

// AllWorkloads lists every workload that runs when none is named.
var AllWorkloads = []string{WStream, WUnary, WUnary1, WReserve, WReport, WWebhook, WScale, WJSON}

// knownWorkloads are the workloads that may be named: every one of
// AllWorkloads and the flow, which is long and runs only when named.
var knownWorkloads = append(slices.Clone(AllWorkloads), WFlow)

// Config configures a load run. Zero values take the defaults of DefaultConfig.
type Config struct {
	// Addr targets a running server (host:port); empty starts one in this process
	// on 127.0.0.1 with a temporary data directory, in bench mode (with the echo
	// service), and seeds it through the store.
	Addr string
	// HTTPAddr is the target's HTTP address (webhooks, /metrics); empty skips the
	// webhook workload and the server's memory figure.
	HTTPAddr string
	// APIAddr is the target's API address (JSON over HTTP); empty skips the
	// json workload.
	APIAddr string
	// APIKey is sent to a target that requires keys.
	APIKey string
	// WebhookSecret signs webhook POSTs to a target (its app secret).
	WebhookSecret []byte
	// PhoneNumberID is the phone_number_id of the webhook bodies; the target must
	// map it to Business (an unmapped id is taken as the business_id itself).
	PhoneNumberID string
	// DataDir is the in-process server's data directory; empty means a temporary
	// one, removed at the end.
	DataDir string
	// Numbers is how many distinct numbers are seeded (and streamed over).
	Numbers int
	// History is the fraction of numbers seeded with history (opt-outs, failures,
	// recent sends); Fresh the fraction never seeded at all (numbers the business
	// has never messaged, as in a campaign to a new list); the others carry one
	// delivered utility message.
	History float64
	Fresh   float64
	// SkipSeed assumes the target already holds the numbers (a second run).
	SkipSeed bool
	// SeedWorkers is how many seeding batches run at once.
	SeedWorkers int
	// Duration bounds each workload (and, separately, its baseline).
	Duration time.Duration
	// Rounds splits Duration into rounds that alternate a workload with its
	// baseline.
	Rounds int
	// Concurrency is the number of concurrent unary callers.
	Concurrency int
	// Streams is the number of concurrent streams of the stream workloads.
	Streams int
	// Window bounds a stream's rows in flight (sent, not yet answered).
	Window int
	// Conns is how many connections the callers and streams share, round-robin.
	Conns int
	// WebhookBatch is the number of statuses per webhook POST (Meta sends up to
	// 1,000); WebhookPosters the POSTs in flight.
	WebhookBatch, WebhookPosters int
	// ScaleBase is the smaller store of the scale workload: CheckSend's p99 on
	// a second in-process server that holds only ScaleBase numbers, in rounds
	// alternating with the p99 on the full store.
	ScaleBase int
	// Workloads selects workloads by name; empty runs all.
	Workloads []string
	// CPUProfile and MemProfile, when set, are written for the measured part of
	// the run (not the seeding); by ServeOnly, a CPU profile of all it serves
	// and a heap profile on each SIGUSR1.
	CPUProfile, MemProfile string
	// Out receives the table; Log receives progress lines.
	Out, Log io.Writer
	// Markdown prints the table as Markdown.
	Markdown bool

	// RecordCache is the record cache of the in-process server's store, in
	// bytes (0: none); DefaultConfig sets the server's default.
	RecordCache int64

	// The flow workload (flow.go): two campaigns of Campaign numbers (0: a
	// tenth of Numbers, the 1 M of 10 M) drawn from the Numbers, the
	// second overlapping the first by Overlap; FailRate of the guarded sends
	// fail, with FailCodes in their shares; each step (of each slice) is cut
	// after FlowTimeout. Slice, when positive, sends a campaign in slices of
	// that many numbers of its audience, each slice's statuses back before the
	// next slice starts; 0 sends the whole campaign before its first status
	// (the pessimistic order).
	Campaign    int
	Slice       int
	Overlap     float64
	FailRate    float64
	FailCodes   []FailCode
	FlowTimeout time.Duration
}

// DefaultConfig returns the defaults of `sendguard-bench`.
func DefaultConfig() Config {
	return Config{
		PhoneNumberID:  Business,
		Numbers:        1_000_000,
		History:        0.3,
		SeedWorkers:    2,
		Duration:       10 * time.Second,
		Rounds:         5,
		Concurrency:    64,
		Streams:        2,
		Window:         256,
		Conns:          1,
		WebhookBatch:   1000,
		WebhookPosters: 2,
		ScaleBase:      10_000,
		RecordCache:    server.DefaultRecordCache,
		Overlap:        0.5,
		FailRate:       0.1,
		FailCodes:      DefaultFailCodes,
		FlowTimeout:    10 * time.Minute,
	}
}

func (c *Config) validate() error {
	d := DefaultConfig()
	def := func(v *int, dv int) {
		if *v <= 0 {
			*v = dv
		}
	}
	def(&c.Numbers, d.Numbers)
	def(&c.SeedWorkers, d.SeedWorkers)
	def(&c.Concurrency, d.Concurrency)
	def(&c.Streams, d.Streams)
	def(&c.Window, d.Window)
	def(&c.Conns, d.Conns)
	def(&c.Rounds, d.Rounds)
	def(&c.WebhookBatch, d.WebhookBatch)
	def(&c.WebhookPosters, d.WebhookPosters)
	if c.Duration <= 0 {
		c.Duration = d.Duration
	}
	if c.PhoneNumberID == "" {
		c.PhoneNumberID = d.PhoneNumberID
	}
	if c.History < 0 || c.Fresh < 0 || c.History+c.Fresh > 1 {
		return fmt.Errorf("history %v and fresh %v: want fractions that add up to at most 1", c.History, c.Fresh)
	}
	if c.Numbers > MaxNumbers {
		return fmt.Errorf("numbers %d: at most %d", c.Numbers, MaxNumbers)
	}
	for _, w := range c.Workloads {
		if !slices.Contains(knownWorkloads, w) {
			return fmt.Errorf("unknown workload %q (have %s)", w, strings.Join(knownWorkloads, ", "))
		}
	}
	if c.RecordCache < 0 {
		return fmt.Errorf("record cache %d: want 0 (none) or a size", c.RecordCache)
	}
	if c.wants(WFlow) {
		if err := c.validateFlow(); err != nil {
			return err
		}
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

func (c *Config) wants(w string) bool {
	if w == WFlow {
		return slices.Contains(c.Workloads, w)
	}
	return len(c.Workloads) == 0 || slices.Contains(c.Workloads, w)
}

// target is a server under load: its connections and, in process, the server.
type target struct {
	conns    []*client.Client
	httpAddr string
	apiAddr  string
	secret   []byte
	store    *badger.Store // in process only
	dir      string
	stop     func()
	rr       atomic.Uint64
}

func (t *target) conn() *client.Client { return t.conns[t.rr.Add(1)%uint64(len(t.conns))] }

func (t *target) close() {
	for _, c := range t.conns {
		_ = c.Close() // the run is over; what it measured is kept
	}
	if t.stop != nil {
		t.stop()
	}
}

// startLocal starts a bench-mode server in this process on 127.0.0.1 with the
// store in dir (created if missing).
func startLocal(ctx context.Context, dir, durability string, conns int, recordCache int64, logw io.Writer) (*target, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := badger.Open(badger.Options{Dir: dir, Logger: log, SyncWrites: durability == server.DurabilityStrict, RecordCache: recordCache})
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	_, _ = crand.Read(secret)
	cfg := server.DefaultConfig()
	cfg.DataDir = dir
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.APIAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = log
	cfg.Durability = durability
	cfg.WebhookSecret = []byte(hex.EncodeToString(secret))
	if cfg.HashSecret, err = serve.LoadHashSecret(cfg, st); err != nil {
		return nil, errors.Join(err, st.Close())
	}
	srv, err := server.New(st, cfg)
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		return nil, errors.Join(err, st.Close())
	}
	registerEcho(srv.GRPCServer())
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx) }()
	t := &target{httpAddr: srv.HTTPAddr(), apiAddr: srv.APIAddr(), secret: cfg.WebhookSecret, store: st, dir: dir}
	t.stop = func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(logw, "bench server:", err)
		}
		if err := st.Close(); err != nil {
			fmt.Fprintln(logw, "bench store:", err)
		}
	}
	if err := t.dial(srv.GRPCAddr(), "", conns); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

func (t *target) dial(addr, apiKey string, conns int) error {
	for range conns {
		c, err := client.Dial(addr, client.Options{Insecure: true, APIKey: apiKey, Timeout: 30 * time.Second})
		if err != nil {
			return err
		}
		t.conns = append(t.conns, c)
	}
	return nil
}

// row is one line of the table.
type row struct {
	workload string
	rate     string
	p50      string
	p99      string
	p999     string
	ratio    string
	target   string
	met      string
}

// report collects the table.
type report struct {
	rows  []row
	notes []string
}

func latency(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func rate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2f M/s", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1f k/s", r/1e3)
	}
	return fmt.Sprintf("%.0f /s", r)
}

func (rp *report) add(name string, r *result, ratio, target, met string) {
	rr := row{workload: name, rate: rate(r.rate()), p50: latency(r.lat.quantile(0.5)),
		p99: latency(r.lat.quantile(0.99)), p999: latency(r.lat.quantile(0.999)), ratio: ratio, target: target, met: met}
	if r.errs > 0 {
		rr.workload += fmt.Sprintf(" (%d errors)", r.errs)
	}
	if r.note != "" {
		rr.workload += " " + r.note
	}
	rp.rows = append(rp.rows, rr)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func (rp *report) print(w io.Writer, markdown bool) {
	head := row{"workload", "ops/s", "p50", "p99", "p99.9", "ratio", "target", "met"}
	all := append([]row{head}, rp.rows...)
	cols := func(r row) []string {
		return []string{r.workload, r.rate, r.p50, r.p99, r.p999, r.ratio, r.target, r.met}
	}
	if markdown {
		for i, r := range all {
			fmt.Fprintf(w, "| %s |\n", strings.Join(cols(r), " | "))
			if i == 0 {
				fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|---|---|")
			}
		}
	} else {
		width := make([]int, 8)
		for _, r := range all {
			for i, c := range cols(r) {
				width[i] = max(width[i], len([]rune(c)))
			}
		}
		for _, r := range all {
			for i, c := range cols(r) {
				pad := width[i] - len([]rune(c))
				if i == 0 || i >= 6 {
					fmt.Fprint(w, c+strings.Repeat(" ", pad))
				} else {
					fmt.Fprint(w, strings.Repeat(" ", pad)+c)
				}
				fmt.Fprint(w, "  ")
			}
			fmt.Fprintln(w)
		}
	}
	for _, n := range rp.notes {
		fmt.Fprintln(w, n)
	}
}

// Run runs the load: start or reach the server, seed, run the selected workloads
// and print the table.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	var (
		t   *target
		err error
		rp  = &report{}
	)
	local := cfg.Addr == ""
	if local {
		dir := cfg.DataDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "sendguard-bench-"); err != nil {
				return err
			}
			defer os.RemoveAll(dir)
		}
		if t, err = startLocal(ctx, dir, server.DurabilityDefault, cfg.Conns, cfg.RecordCache, cfg.Log); err != nil {
			return err
		}
		logf("bench server on %s (data %s), %d cores, GOMAXPROCS %d", t.conns[0].Conn().Target(), dir, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	} else {
		t = &target{httpAddr: cfg.HTTPAddr, apiAddr: cfg.APIAddr, secret: cfg.WebhookSecret}
		if err := t.dial(cfg.Addr, cfg.APIKey, cfg.Conns); err != nil {
			return err
		}
		logf("target %s, %d cores here", cfg.Addr, runtime.NumCPU())
	}
	defer t.close()

	seed := func(t *target, from, to int) error {
		if cfg.SkipSeed || from >= to {
			return nil
		}
		start := time.Now()
		last := start
		progress := func(done int) {
			if time.Since(last) > 5*time.Second {
				last = time.Now()
				logf("  seeded %d of %d", from+done, to)
			}
		}
		logf("seeding numbers %d..%d (%.0f %% with history, %.0f %% left unknown)", from, to, cfg.History*100, cfg.Fresh*100)
		var err error
		if t.store != nil {
			err = seedStore(ctx, t.store, from, to, cfg.mix(), cfg.SeedWorkers, progress)
		} else {
			err = seedAPI(ctx, t.conn().API(), from, to, cfg.mix(), cfg.Concurrency, progress)
		}
		if err != nil {
			return err
		}
		el := time.Since(start)
		rp.notes = append(rp.notes, fmt.Sprintf("seeded %d numbers in %s (%s)", to-from, el.Round(time.Second), rate(float64(to-from)/el.Seconds())))
		logf("seeded in %s", el.Round(time.Millisecond))
		if t.store != nil {
			settle(ctx, t.store.DB(), 5*time.Minute, logf)
		}
		return nil
	}

	w := &workloads{cfg: &cfg, t: t, run: strconv.FormatInt(time.Now().UnixNano(), 36), logf: logf, rp: rp}

	// Scale: a second server in this process holds only ScaleBase numbers, so
	// that CheckSend's p99 against it and against the full store can be taken
	// in alternating rounds, like every other ratio.
	var small *target
	if cfg.wants(WScale) && cfg.ScaleBase > 0 && cfg.ScaleBase < cfg.Numbers {
		if !local {
			rp.notes = append(rp.notes, "scale workload skipped: it needs the in-process server (a second, small one runs beside it)")
		} else {
			if small, err = startLocal(ctx, filepath.Join(t.dir, "small"), server.DurabilityDefault, cfg.Conns, cfg.RecordCache, cfg.Log); err != nil {
				return err
			}
			defer small.close()
			if err := seed(small, 0, cfg.ScaleBase); err != nil {
				return err
			}
		}
	}
	if err := seed(t, 0, cfg.Numbers); err != nil {
		return err
	}
	perNumber := ""
	if t.dir != "" {
		used, apparent, err := diskUsage(t.dir, "small", "default", "strict")
		if err == nil {
			stored := cfg.mix().stored(cfg.Numbers)
			perNumber = fmt.Sprintf("%.0f B", float64(used)/float64(max(stored, 1)))
			rp.notes = append(rp.notes, fmt.Sprintf("data directory after seeding %d numbers (%d stored): %s on disk (%s apparent: preallocated memtable and value-log files), %s per stored number",
				cfg.Numbers, stored, mib(used), mib(apparent), perNumber))
		}
	}

	stopProfile, err := startProfiles(cfg.CPUProfile)
	if err != nil {
		return err
	}
	runErr := w.all(ctx, small)
	if err := stopProfile(); err != nil {
		return fmt.Errorf("CPU profile %s: %w", cfg.CPUProfile, err)
	}
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile); err != nil {
			return err
		}
	}

	if local {
		m := w.serving
		if m.RSS == 0 {
			m = readMem()
		}
		rp.notes = append(rp.notes, fmt.Sprintf("memory of this process (server and load generator) serving checks at %d numbers: VmRSS %s = anonymous %s + file-backed %s (Badger's memory-mapped tables); peak VmHWM %s (seeding included)",
			cfg.Numbers, mib(m.RSS), mib(m.Anon), mib(m.File), mib(readMem().HWM)))
		if small != nil {
			rp.rows = append(rp.rows, row{workload: fmt.Sprintf("resident memory at %d numbers (VmRSS; anonymous)", cfg.Numbers),
				rate: mib(m.RSS) + "; " + mib(m.Anon), p50: "—", p99: "—", p999: "—", ratio: "—", target: "< 1 GiB",
				met: yes(m.RSS < 1<<30) + "; " + yes(m.Anon < 1<<30)})
		}
		if perNumber != "" {
			rp.rows = append(rp.rows, row{workload: "bytes on disk per stored number", rate: perNumber,
				p50: "—", p99: "—", p999: "—", ratio: "—", target: "reported", met: "—"})
		}
	} else if t.httpAddr != "" {
		if rss, err := remoteRSS(ctx, t.httpAddr); err == nil {
			rp.notes = append(rp.notes, fmt.Sprintf("server resident memory (its /metrics): %s", mib(rss)))
		}
	}
	rp.notes = append(rp.notes, fmt.Sprintf("machine: %d cores (GOMAXPROCS %d), %s/%s, %s; each workload %s, %d unary callers, %d streams of window %d over %d connection(s)",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), cfg.Duration, cfg.Concurrency, cfg.Streams, cfg.Window, cfg.Conns))
	rp.print(cfg.Out, cfg.Markdown)
	return runErr
}

// workloads runs the measured part.
type workloads struct {
	cfg  *Config
	t    *target
	run  string // unique per run: message ids and refs never repeat across runs
	logf func(string, ...any)
	rp   *report
	seq  atomic.Int64
	// serving is this process's memory once the read workloads have run.
	serving memInfo
}

// round is the length of one round: a workload and its baseline alternate in
// Rounds rounds that share Duration, so that noise from outside (another
// process, a compaction) falls on both.
func (w *workloads) round() time.Duration { return w.cfg.Duration / time.Duration(w.cfg.Rounds) }

// checkRequest is the request of row or call seq over number i: marketing four
// times in five, utility otherwise, with a message_ref as a sending worker sets it.
func (w *workloads) checkRequest(seq int64, i int, reserve bool) *sgv1.CheckSendRequest {
	req := &sgv1.CheckSendRequest{
		BusinessId: Business,
		Phone:      Number(i),
		Category:   sgv1.Category_CATEGORY_MARKETING,
		Template:   "black_friday_2026",
		CampaignId: "cmp-2026-11",
		RequestId:  itoa(seq),
		MessageRef: "ref." + w.run + "." + itoa(w.seq.Add(1)),
		Reserve:    reserve,
	}
	if seq%5 == 4 {
		req.Category, req.Template = sgv1.Category_CATEGORY_UTILITY, "order_shipped"
	}
	return req
}

// gc collects before each round, so that one round's garbage is not collected
// on the next one's time.
func gc() { runtime.GC() }

// unary measures CheckSend (or, with health, the health Check) on t at callers
// callers over numbers [0, n) for d.
func (w *workloads) unary(ctx context.Context, t *target, callers, n int, health bool, d time.Duration) *result {
	gc()
	var call func(ctx context.Context, seq int64) error
	if health {
		call = func(ctx context.Context, _ int64) error {
			_, err := healthpb.NewHealthClient(t.conn().Conn()).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}
	} else {
		call = func(ctx context.Context, seq int64) error {
			_, err := t.conn().API().CheckSend(ctx, w.checkRequest(seq, rand.IntN(n), false))
			return err
		}
	}
	return runUnary(ctx, callers, limits{duration: d}, call)
}

// jsonUnary measures, at Concurrency callers over HTTP/1.1 keep-alive
// connections, CheckSend as JSON on the API port, or (health) GET /healthz on
// the HTTP port: the same HTTP client and server machinery without an RPC.
func (w *workloads) jsonUnary(ctx context.Context, health bool, d time.Duration) *result {
	gc()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: w.cfg.Concurrency}}
	defer hc.CloseIdleConnections()
	do := func(req *http.Request) error {
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close() // read to the end: only the connection's reuse is at stake
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}
	return runUnary(ctx, w.cfg.Concurrency, limits{duration: d}, func(ctx context.Context, seq int64) error {
		if health {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.t.httpAddr+"/healthz", http.NoBody)
			return do(req)
		}
		body, err := protojson.Marshal(w.checkRequest(seq, rand.IntN(w.cfg.Numbers), false))
		if err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+w.t.apiAddr+"/sendguard.v1.SendGuard/CheckSend", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if w.cfg.APIKey != "" {
			req.Header.Set("Authorization", "Bearer "+w.cfg.APIKey)
		}
		return do(req)
	})
}

// stream measures a stream workload for d: the echo, CheckSendStream, or a
// stream where every row reserves; rows walk the numbers in a scattered order,
// numbered by seq (shared by the rounds of a workload, so rows stay distinct).
func (w *workloads) stream(ctx context.Context, echo, reserve bool, d time.Duration, seq *atomic.Int64) (*result, error) {
	gc()
	perm := newPermute(w.cfg.Numbers)
	open := func(ctx context.Context) (grpc.ClientStream, error) {
		c := w.t.conn()
		if echo {
			return c.Conn().NewStream(ctx, &echoStreamDesc, echoMethod)
		}
		return c.API().CheckSendStream(ctx)
	}
	return runStreams(ctx, open, w.cfg.Streams, w.cfg.Window, limits{duration: d, seq: seq}, func(seq int64) *sgv1.CheckSendRequest {
		return w.checkRequest(seq, perm.at(uint64(seq)), reserve)
	})
}

// pair runs a baseline and a workload in alternating rounds and returns both,
// summed over the rounds.
func (w *workloads) pair(name string, base, work func(d time.Duration) (*result, error)) (b, r *result, err error) {
	b, r = &result{}, &result{}
	d := w.round()
	w.logf("%s: %d rounds of %s, alternating with its baseline", name, w.cfg.Rounds, d)
	for i := range w.cfg.Rounds {
		x, err := base(d)
		if err != nil {
			return b, r, err
		}
		b.add(x)
		y, err := work(d)
		if err != nil {
			return b, r, err
		}
		r.add(y)
		w.logf("  round %d: baseline %s, workload %s (%.2f×)", i+1, rate(x.rate()), rate(y.rate()), y.rate()/x.rate())
	}
	return b, r, nil
}

func ratio(a, b *result) (float64, string) {
	if a == nil || b == nil || b.rate() == 0 {
		return 0, "—"
	}
	x := a.rate() / b.rate()
	return x, fmt.Sprintf("%.2f×", x)
}

// all runs the selected workloads and fills the table.
func (w *workloads) all(ctx context.Context, small *target) error {
	cfg, rp := w.cfg, w.rp
	echoAvailable := true
	if cfg.wants(WStream) || cfg.wants(WReserve) {
		// Probe: an empty echo stream ends with io.EOF, a server not in bench mode
		// answers Unimplemented.
		st, err := w.t.conn().Conn().NewStream(ctx, &echoStreamDesc, echoMethod)
		if err == nil {
			_ = st.CloseSend()
			err = st.RecvMsg(new(sgv1.CheckSendResponse))
		}
		if status.Code(err) == codes.Unimplemented {
			echoAvailable = false
			rp.notes = append(rp.notes, "the echo baseline needs a server in bench mode (`sendguard-bench --serve-only`); stream ratios are not available")
		}
	}
	streamPair := func(name string, reserve bool) error {
		var rows atomic.Int64
		work := func(d time.Duration) (*result, error) { return w.stream(ctx, false, reserve, d, &rows) }
		if !echoAvailable {
			r, err := work(cfg.Duration)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			rp.add(name, r, "—", "", "n/a")
			return nil
		}
		var echoRows atomic.Int64
		echo := func(d time.Duration) (*result, error) { return w.stream(ctx, true, false, d, &echoRows) }
		b, r, err := w.pair(name, echo, work)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if r.ops > int64(cfg.Numbers) {
			r.note = fmt.Sprintf("(%d rows over %d numbers: not all distinct)", r.ops, cfg.Numbers)
		}
		target := 0.6
		if reserve {
			target = 0.3
		}
		x, s := ratio(r, b)
		rp.add("no-op echo stream (baseline)", b, "1.00×", "—", "—")
		rp.add(name, r, s, fmt.Sprintf("≥ %.1f× echo", target), yes(x >= target))
		return nil
	}
	unaryPair := func(callers int) *result {
		b, r, _ := w.pair(fmt.Sprintf("CheckSend ×%d", callers),
			func(d time.Duration) (*result, error) { return w.unary(ctx, w.t, callers, cfg.Numbers, true, d), nil },
			func(d time.Duration) (*result, error) { return w.unary(ctx, w.t, callers, cfg.Numbers, false, d), nil })
		x, s := ratio(r, b)
		rp.add(fmt.Sprintf("health Check ×%d (baseline)", callers), b, "1.00×", "—", "—")
		if callers == 1 {
			rp.add("CheckSend ×1", r, s, "p99 < 1 ms", yes(r.lat.quantile(0.99) < time.Millisecond))
		} else {
			rp.add(fmt.Sprintf("CheckSend ×%d", callers), r, s, "≥ 0.75× health", yes(x >= 0.75))
		}
		return r
	}

	if cfg.wants(WStream) {
		if err := streamPair("CheckSendStream", false); err != nil {
			return err
		}
	}
	if cfg.wants(WUnary) {
		unaryPair(cfg.Concurrency)
	}
	if cfg.wants(WUnary1) {
		unaryPair(1)
	}
	if cfg.wants(WJSON) {
		if w.t.apiAddr == "" || w.t.httpAddr == "" {
			rp.notes = append(rp.notes, "json workload skipped: give the target's --api-addr and --http-addr")
		} else {
			b, r, _ := w.pair(fmt.Sprintf("JSON CheckSend ×%d", cfg.Concurrency),
				func(d time.Duration) (*result, error) { return w.jsonUnary(ctx, true, d), nil },
				func(d time.Duration) (*result, error) { return w.jsonUnary(ctx, false, d), nil })
			_, s := ratio(r, b)
			rp.add(fmt.Sprintf("GET /healthz ×%d (baseline)", cfg.Concurrency), b, "1.00×", "—", "—")
			rp.add(fmt.Sprintf("CheckSend as JSON (Connect) ×%d", cfg.Concurrency), r, s, "reported", "—")
		}
	}
	if small != nil {
		a, b, _ := w.pair(fmt.Sprintf("CheckSend ×1 at %d vs %d numbers", cfg.Numbers, cfg.ScaleBase),
			func(d time.Duration) (*result, error) { return w.unary(ctx, small, 1, cfg.ScaleBase, false, d), nil },
			func(d time.Duration) (*result, error) { return w.unary(ctx, w.t, 1, cfg.Numbers, false, d), nil })
		pa, pb := a.lat.quantile(0.99), b.lat.quantile(0.99)
		x := float64(pb) / float64(pa)
		rp.add(fmt.Sprintf("CheckSend ×1, %d numbers stored", cfg.ScaleBase), a, "—", "—", "—")
		rp.add(fmt.Sprintf("CheckSend ×1, %d numbers stored", cfg.Numbers), b, "—", "—", "—")
		rp.rows = append(rp.rows, row{workload: fmt.Sprintf("scale: p99 at %d / p99 at %d numbers", cfg.Numbers, cfg.ScaleBase),
			rate: "—", p50: "—", p99: fmt.Sprintf("%s / %s", latency(pb), latency(pa)), p999: "—",
			ratio: fmt.Sprintf("%.2f×", x), target: "≤ 1.5×", met: yes(x <= 1.5)})
	}
	w.serving = readMem() // after the read workloads, before the writing ones
	if cfg.wants(WReserve) {
		if err := streamPair("reserving stream (every row reserves)", true); err != nil {
			return err
		}
	}
	if cfg.wants(WFlow) {
		if err := w.flow(ctx); err != nil {
			return err
		}
	}
	if cfg.wants(WReport) || cfg.wants(WWebhook) {
		if err := w.reports(ctx, w.t, "default", "the seeded store"); err != nil {
			return err
		}
		if w.t.store != nil {
			// The durability modes compared on equal terms: two fresh servers,
			// one per mode, each starting from an empty store.
			for _, mode := range []string{server.DurabilityDefault, server.DurabilityStrict} {
				fresh, err := startLocal(ctx, filepath.Join(w.t.dir, mode), mode, cfg.Conns, cfg.RecordCache, cfg.Log)
				if err != nil {
					return err
				}
				err = w.reports(ctx, fresh, mode, "an empty store")
				fresh.close()
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// reports measures ReportResult and the webhook on t, whose durability mode is
// mode.
func (w *workloads) reports(ctx context.Context, t *target, mode, store string) error {
	cfg, rp := w.cfg, w.rp
	statuses := []sgv1.MessageStatus{sgv1.MessageStatus_MESSAGE_STATUS_SENT, sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED,
		sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, sgv1.MessageStatus_MESSAGE_STATUS_READ, sgv1.MessageStatus_MESSAGE_STATUS_FAILED}
	if cfg.wants(WReport) {
		gc()
		w.logf("ReportResult (%s durability, %s): %d callers, %s", mode, store, cfg.Concurrency, cfg.Duration)
		r := runUnary(ctx, cfg.Concurrency, limits{duration: cfg.Duration}, func(ctx context.Context, seq int64) error {
			st := statuses[seq%int64(len(statuses))]
			req := &sgv1.ReportResultRequest{
				BusinessId: Business, Phone: Number(rand.IntN(cfg.Numbers)),
				MessageId: "wamid.rr." + w.run + "." + mode + "." + itoa(seq), Status: st,
				Category: sgv1.Category_CATEGORY_MARKETING, Template: "black_friday_2026", Timestamp: timestamppb.Now(),
			}
			if st == sgv1.MessageStatus_MESSAGE_STATUS_FAILED {
				req.ErrorCode = 131049
			}
			_, err := t.conn().API().ReportResult(ctx, req)
			return err
		})
		rp.add(fmt.Sprintf("ReportResult ×%d, %s durability, %s", cfg.Concurrency, mode, store), r, "—", "reported", "—")
	}
	if cfg.wants(WWebhook) {
		if t.httpAddr == "" || len(t.secret) == 0 {
			rp.notes = append(rp.notes, "webhook workload skipped: give the target's --http-addr and its app secret (SENDGUARD_WHATSAPP_APP_SECRET)")
			return nil
		}
		gc()
		w.logf("webhook (%s durability, %s): %d posters of %d statuses, %s", mode, store, cfg.WebhookPosters, cfg.WebhookBatch, cfg.Duration)
		p := &poster{url: "http://" + t.httpAddr + server.WebhookPath, secret: t.secret,
			client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.WebhookPosters}}}
		r := runUnary(ctx, cfg.WebhookPosters, limits{duration: cfg.Duration}, func(ctx context.Context, seq int64) error {
			prefix := "hook." + w.run + "." + mode + "." + itoa(seq)
			body := webhookBody(make([]byte, 0, cfg.WebhookBatch*260), cfg.PhoneNumberID, prefix, cfg.WebhookBatch,
				func(int) int { return rand.IntN(cfg.Numbers) }, time.Now())
			return p.post(ctx, body)
		})
		// The table counts events, not POSTs; latency stays per POST.
		r.ops *= int64(cfg.WebhookBatch)
		rp.add(fmt.Sprintf("webhook events (POSTs of %d), %s durability, %s", cfg.WebhookBatch, mode, store), r, "—", "reported", "—")
	}
	return nil
}

// startProfiles starts the CPU profile into the file cpu (none when cpu is
// empty); stop ends it and returns the error of closing the file.
func startProfiles(cpu string) (stop func() error, err error) {
	if cpu == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(cpu)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return func() error { pprof.StopCPUProfile(); return f.Close() }, nil
}

// writeHeapProfile writes a heap profile (in use as of the last garbage
// collection, and allocated) to a new file that then replaces path, so that path
// always holds a whole profile.
func writeHeapProfile(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	// A profile whose Close failed may be cut short: both errors count.
	err = errors.Join(f.Chmod(0o644), pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return errors.Join(err, os.Remove(f.Name()))
	}
	return nil
}

// ServeOnly starts a bench-mode server (with the echo baseline) on 127.0.0.1,
// seeds it, prints where it listens and its webhook secret, and serves until ctx
// ends: for running the load from another process with --addr.
func ServeOnly(ctx context.Context, cfg Config) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	dir := cfg.DataDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "sendguard-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	t, err := startLocal(ctx, dir, server.DurabilityDefault, 1, cfg.RecordCache, cfg.Log)
	if err != nil {
		return err
	}
	defer t.close()
	if !cfg.SkipSeed {
		if err := seedStore(ctx, t.store, 0, cfg.Numbers, cfg.mix(), cfg.SeedWorkers, nil); err != nil {
			return err
		}
	}
	// With --cpuprofile, the profile covers everything served until the end.
	stopProfile, err := startProfiles(cfg.CPUProfile)
	if err != nil {
		return err
	}
	defer func() {
		if perr := stopProfile(); perr != nil {
			err = errors.Join(err, fmt.Errorf("CPU profile %s: %w", cfg.CPUProfile, perr))
		}
	}()
	// With --memprofile, each SIGUSR1 replaces the file with a heap profile
	// (memcap.sh sends one whenever the server's anonymous memory reaches a new
	// peak). The handler is in place before "ready" is printed, and SIGUSR1 is
	// ignored from the end of serving until the process exits (the store's
	// close included): a SIGUSR1 nobody handles ends the process.
	var snap chan os.Signal
	if cfg.MemProfile != "" {
		snap = make(chan os.Signal, 1)
		signal.Notify(snap, syscall.SIGUSR1)
		defer signal.Ignore(syscall.SIGUSR1)
	}
	fmt.Fprintf(cfg.Out, "bench server ready grpc=%s http=%s numbers=%d data=%s\nSENDGUARD_WHATSAPP_APP_SECRET=%s\n",
		t.conns[0].Conn().Target(), t.httpAddr, cfg.Numbers, dir, t.secret)
	for {
		select {
		case <-snap: // never when nil
			if err := writeHeapProfile(cfg.MemProfile); err != nil {
				fmt.Fprintln(cfg.Log, "heap profile:", err)
			}
		case <-ctx.Done():
			return nil
		}
	}
}
