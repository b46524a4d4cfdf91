package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/webhook"
)

// The flow workload: a sender's campaign as it really goes. A campaign is
// Campaign numbers of the population (Numbers), drawn without replacement; it
// is validated (CheckSendStream, no reservation), every ALLOW is reserved (a
// stream of reserving rows: the guarded sends), and each guarded send's
// statuses come back as Meta sends them, in webhook POSTs of up to
// WebhookBatch statuses, signed: SENT, DELIVERED and READ, or FAILED with one
// of Meta's codes for FailRate of them. A second campaign follows over an
// audience that overlaps the first by Overlap.
//
// By default the whole campaign is validated and reserved before its first
// status, and each wave of statuses (SENT, DELIVERED, READ) covers all of its
// sends: the pessimistic order, in which a status finds its record as long
// gone from any cache as it can be. In life statuses come back while the
// campaign is still going out (how soon, Meta does not say; seconds to minutes
// is assumed); Slice models that: the campaign goes out in slices of Slice
// numbers, and a slice's statuses come back before the next slice starts.
//
// Each campaign runs twice, alternately: against sendguard, then as the same
// flow with the rules replaced by a no-op — the echo stream for both streams
// (every row ALLOW) and a webhook receiver in this process that checks the
// signature and parses the body (webhook.Parse) and stores nothing. The no-op
// flow reserves and reports exactly the sends sendguard allowed, so both
// carry the same guarded sends and their rates compare the cost of guarding
// them.

// FailCode is one of Meta's error codes of a FAILED status and its share of
// the failed sends.
type FailCode struct {
	Code  int
	Share float64
}

// DefaultFailCodes are the flow's assumed failure mix: Meta publishes none.
// 131049 (not delivered to keep the ecosystem healthy) is the failure a
// marketing campaign meets most; 131026 (undeliverable: no WhatsApp, old app,
// terms not accepted) next; 131050 (the user stopped marketing messages) and
// 130472 (Meta's experiment) are rarer.
var DefaultFailCodes = []FailCode{{131049, 0.5}, {131026, 0.3}, {131050, 0.15}, {130472, 0.05}}

// ParseFailCodes parses "131049:0.5,131026:0.3,…" (shares are normalised).
func ParseFailCodes(s string) ([]FailCode, error) {
	var out []FailCode
	for part := range strings.SplitSeq(s, ",") {
		code, share, ok := strings.Cut(strings.TrimSpace(part), ":")
		c, err1 := strconv.Atoi(code)
		f, err2 := strconv.ParseFloat(share, 64)
		if !ok || err1 != nil || err2 != nil || c <= 0 || f <= 0 {
			return nil, fmt.Errorf("fail codes %q: want code:share[,code:share…], such as 131049:0.5,131026:0.5", s)
		}
		out = append(out, FailCode{c, f})
	}
	return out, nil
}

// FormatFailCodes is the inverse of ParseFailCodes.
func FormatFailCodes(fc []FailCode) string {
	var parts []string
	for _, c := range fc {
		parts = append(parts, fmt.Sprintf("%d:%g", c.Code, c.Share))
	}
	return strings.Join(parts, ",")
}

// flowStep is one step of a campaign, measured.
type flowStep struct {
	name string
	r    *result
}

// flowRun is a campaign's measurement, against sendguard or the no-op.
type flowRun struct {
	steps   []flowStep
	guarded int64 // sends reserved (for the no-op: the same sends)
	total   time.Duration
}

func (f *flowRun) add(o *flowRun) {
	if f.steps == nil {
		f.steps = make([]flowStep, len(o.steps))
		for i, s := range o.steps {
			f.steps[i] = flowStep{s.name, &result{}}
		}
	}
	for i, s := range o.steps {
		f.steps[i].r.add(s.r)
	}
	f.guarded += o.guarded
	f.total += o.total
}

func (f *flowRun) rate() float64 {
	if f.total <= 0 {
		return 0
	}
	return float64(f.guarded) / f.total.Seconds()
}

// flowStatus is one status of a webhook POST.
type flowStatus struct {
	number int
	status string
	code   int
	send   int // the guarded send's index in its campaign (ids and refs)
}

// flowAudience returns campaign c's numbers (c = 0, 1): the first Campaign of a
// scattered order of the population, the second shifted so that Overlap of it
// is the first's tail.
func (w *workloads) flowAudience(c int) []int {
	m := w.cfg.Campaign
	start := 0
	if c > 0 {
		start = int(float64(m) * (1 - w.cfg.Overlap))
	}
	p := newPermute(w.cfg.Numbers)
	out := make([]int, m)
	for k := range out {
		out[k] = p.at(uint64(start + k))
	}
	return out
}

func (w *workloads) flowRequest(c, number int, ref string) *sgv1.CheckSendRequest {
	return &sgv1.CheckSendRequest{
		BusinessId: Business, Phone: Number(number), Category: sgv1.Category_CATEGORY_MARKETING,
		Template: "black_friday_2026", CampaignId: "flow-" + w.run + "-" + strconv.Itoa(c),
		RequestId: ref, MessageRef: ref, Reserve: ref != "",
	}
}

// flowRef is the message_ref of campaign c's k-th guarded send (the webhook's
// biz_opaque_callback_data carries it back).
func (w *workloads) flowRef(c, k int) string {
	return "flow." + w.run + "." + strconv.Itoa(c) + "." + strconv.Itoa(k)
}

// flowSend is a send of a campaign: its number and its index among the
// campaign's rows to reserve, which names its message_ref and its status
// (failCode).
type flowSend struct {
	number, index int
}

// flowCampaign runs campaign c against sendguard (allowed nil), or as the no-op
// flow over the sends sendguard allowed (allowed: per slice, in order). It
// sends the audience in slices of Slice numbers (flowSlice), and returns the
// measurement and, per slice, the sends whose reservation was allowed.
func (w *workloads) flowCampaign(ctx context.Context, c int, audience []int, allowed [][]flowSend, noop *noopHook) (*flowRun, [][]flowSend, error) {
	cfg := w.cfg
	size := cfg.Slice
	if size <= 0 || size > len(audience) {
		size = len(audience)
	}
	url, secret := "http://"+w.t.httpAddr+server.WebhookPath, w.t.secret
	if noop != nil {
		url, secret = noop.url, noop.secret
	}
	p := &poster{url: url, secret: secret,
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.WebhookPosters}}}
	defer p.client.CloseIdleConnections()
	gc()
	run := &flowRun{}
	var (
		out  [][]flowSend
		cuts [3]flowCut // per step
	)
	start := time.Now()
	first := 0 // the campaign's index of the slice's first row to reserve
	parts := (len(audience) + size - 1) / size
	for i, from := 0, 0; from < len(audience); i, from = i+1, from+size {
		var al []flowSend
		if allowed != nil {
			al = allowed[i]
		}
		r, sends, rows, err := w.flowSlice(ctx, c, audience[from:min(len(audience), from+size)], allowed != nil, al, first, p, &cuts)
		if err != nil {
			return nil, nil, err
		}
		run.add(r)
		out = append(out, sends)
		first += rows
	}
	run.total = time.Since(start)
	for k, cut := range cuts {
		if cut.slices > 0 {
			run.steps[k].r.note = fmt.Sprintf("(cut at %s in %d of %d slices: %d of %d rows)", cfg.FlowTimeout, cut.slices, parts, cut.done, cut.want)
		}
	}
	return run, out, nil
}

// flowCut counts a step's slices that FlowTimeout cut, and their rows.
type flowCut struct {
	slices     int
	done, want int64
}

func (f *flowCut) add(done, want int64) {
	if done < want {
		f.slices++
		f.done += done
		f.want += want
	}
}

// flowSlice runs one slice of campaign c: validate the audience, reserve each
// ALLOW, and post their statuses with p; against sendguard, or as the no-op
// (noop: the echo stream answers every row ALLOW, and allowed, the sends
// sendguard allowed, are reserved). Against sendguard, first is the campaign's
// index of the slice's first ALLOW. It counts the steps FlowTimeout cut in
// cuts, and returns the measurement, the sends whose reservation was allowed
// and how many rows it reserved.
func (w *workloads) flowSlice(ctx context.Context, c int, audience []int, noop bool, allowed []flowSend, first int, p *poster, cuts *[3]flowCut) (*flowRun, []flowSend, int, error) {
	cfg := w.cfg
	run := &flowRun{}
	open := func(ctx context.Context) (grpc.ClientStream, error) {
		if noop {
			return w.t.conn().Conn().NewStream(ctx, &echoStreamDesc, echoMethod)
		}
		return w.t.conn().API().CheckSendStream(ctx)
	}
	stream := func(n int, answer func(int64, *sgv1.CheckSendResponse), mk func(int64) *sgv1.CheckSendRequest) (*result, error) {
		if n == 0 {
			return &result{}, nil // no rows (maxOps 0 would not bound the streams)
		}
		return runStreams(ctx, open, cfg.Streams, cfg.Window, limits{duration: cfg.FlowTimeout, maxOps: int64(n), answer: answer}, mk)
	}

	// 1. Validate the audience.
	var ok []bool
	if !noop {
		ok = make([]bool, len(audience))
	}
	r, err := stream(len(audience), func(seq int64, resp *sgv1.CheckSendResponse) {
		if ok != nil && resp.GetVerdict() == sgv1.Verdict_VERDICT_ALLOW {
			ok[seq] = true
		}
	}, func(seq int64) *sgv1.CheckSendRequest { return w.flowRequest(c, audience[seq], "") })
	if err != nil {
		return nil, nil, 0, fmt.Errorf("validate: %w", err)
	}
	cuts[0].add(r.ops, int64(len(audience)))
	run.steps = append(run.steps, flowStep{"validate (stream)", r})
	if !noop {
		for k, n := range audience {
			if ok[k] {
				allowed = append(allowed, flowSend{n, first + len(allowed)})
			}
		}
	}

	// 2. Reserve each ALLOW.
	reserved := make([]bool, len(allowed)) // each row's answer sets its own element

	r, err = stream(len(allowed), func(seq int64, resp *sgv1.CheckSendResponse) {
		if resp.GetVerdict() == sgv1.Verdict_VERDICT_ALLOW {
			reserved[seq] = true
		}
	}, func(seq int64) *sgv1.CheckSendRequest {
		s := allowed[seq]
		return w.flowRequest(c, s.number, w.flowRef(c, s.index))
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("reserve: %w", err)
	}
	cuts[1].add(r.ops, int64(len(allowed)))
	run.steps = append(run.steps, flowStep{"reserve each ALLOW (stream)", r})
	var sends []flowSend
	for k, ok := range reserved {
		if ok {
			sends = append(sends, allowed[k])
		}
	}
	run.guarded = int64(len(sends))

	// 3. Their statuses, as Meta sends them: a wave of SENT (or FAILED), then
	// DELIVERED, then READ.
	var waves [3][]flowStatus
	for _, s := range sends {
		if code := w.failCode(c, s.index); code != 0 {
			waves[0] = append(waves[0], flowStatus{s.number, "failed", code, s.index})
			continue
		}
		waves[0] = append(waves[0], flowStatus{s.number, "sent", 0, s.index})
		waves[1] = append(waves[1], flowStatus{s.number, "delivered", 0, s.index})
		waves[2] = append(waves[2], flowStatus{s.number, "read", 0, s.index})
	}
	statuses := &result{}
	var want int64
	for _, wave := range waves {
		if len(wave) == 0 {
			continue // nothing to post (maxOps 0 would not bound the posters)
		}
		batches := (len(wave) + cfg.WebhookBatch - 1) / cfg.WebhookBatch
		r := runUnary(ctx, cfg.WebhookPosters, limits{duration: cfg.FlowTimeout, maxOps: int64(batches)}, func(ctx context.Context, seq int64) error {
			part := wave[int(seq)*cfg.WebhookBatch : min(len(wave), int(seq+1)*cfg.WebhookBatch)]
			return p.post(ctx, w.flowBody(c, part))
		})
		// Events, not POSTs (the latency stays per POST); a cut wave counts
		// the events of the POSTs it made.
		r.ops = min(int64(len(wave)), r.ops*int64(cfg.WebhookBatch))
		want += int64(len(wave))
		statuses.add(r)
	}
	cuts[2].add(statuses.ops, want)
	run.steps = append(run.steps, flowStep{fmt.Sprintf("statuses (webhook POSTs of %d)", cfg.WebhookBatch), statuses})
	return run, sends, len(allowed), nil
}

// failCode is the error code of campaign c's k-th send's status, or 0 when it
// is delivered: FailRate of the sends fail, with the codes in their shares.
func (w *workloads) failCode(c, k int) int {
	x := float64(mix64(uint64(c)<<40|uint64(k))%1_000_000) / 1_000_000
	if x >= w.cfg.FailRate {
		return 0
	}
	x /= w.cfg.FailRate // uniform in [0, 1) again
	var total float64
	for _, fc := range w.cfg.FailCodes {
		total += fc.Share
	}
	for _, fc := range w.cfg.FailCodes {
		x -= fc.Share / total
		if x < 0 {
			return fc.Code
		}
	}
	return w.cfg.FailCodes[len(w.cfg.FailCodes)-1].Code
}

// flowBody is a webhook POST of statuses, as Meta sends it: one entry, one
// change, the statuses of one phone_number_id.
func (w *workloads) flowBody(c int, part []flowStatus) []byte {
	b := make([]byte, 0, len(part)*300+400)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	b = append(b, `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":`...)
	b = strconv.AppendQuote(b, w.cfg.PhoneNumberID)
	b = append(b, `},"statuses":[`...)
	for i, s := range part {
		if i > 0 {
			b = append(b, ',')
		}
		ref := w.flowRef(c, s.send)
		b = append(b, `{"id":"wamid.`...)
		b = append(b, ref...)
		b = append(b, `","status":"`...)
		b = append(b, s.status...)
		b = append(b, `","timestamp":"`...)
		b = append(b, ts...)
		b = append(b, `","recipient_id":"`...)
		b = appendDigits(b, s.number)
		b = append(b, `","biz_opaque_callback_data":"`...)
		b = append(b, ref...)
		b = append(b, '"')
		if s.status != "failed" {
			b = append(b, `,"pricing":{"billable":true,"pricing_model":"PMP","category":"marketing","type":"regular"}`...)
		}
		if s.code != 0 {
			b = append(b, `,"errors":[{"code":`...)
			b = strconv.AppendInt(b, int64(s.code), 10)
			b = append(b, `,"title":"`...)
			b = append(b, failTitle(s.code)...)
			b = append(b, `"}]`...)
		}
		b = append(b, '}')
	}
	return append(b, `]}}]}]}`...)
}

func failTitle(code int) string {
	switch code {
	case 131049:
		return "This message was not delivered to maintain healthy ecosystem engagement."
	case 131026:
		return "Message undeliverable"
	case 131050:
		return "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business"
	case 130472:
		return "User's number is part of an experiment"
	}
	return "Failure"
}

// noopHook is the no-op flow's webhook receiver: it checks the signature and
// parses the body as sendguard does, and stores nothing but a count of the
// statuses it took.
type noopHook struct {
	url    string
	secret []byte
	srv    *http.Server
	taken  atomic.Int64
}

func startNoopHook(secret []byte) (*noopHook, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &noopHook{url: "http://" + lis.Addr().String() + server.WebhookPath, secret: secret}
	h.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil || !webhook.Verify(body, r.Header.Get("X-Hub-Signature-256"), secret) {
			http.Error(rw, "bad signature", http.StatusUnauthorized)
			return
		}
		events, _, err := webhook.Parse(body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		h.taken.Add(int64(len(events)))
	})}
	go func() { _ = h.srv.Serve(lis) }()
	return h, nil
}

func (h *noopHook) close() { _ = h.srv.Close() }

// flow runs the flow workload: two campaigns, each against sendguard and then
// as the no-op flow, and fills the table.
func (w *workloads) flow(ctx context.Context) error {
	cfg, rp := w.cfg, w.rp
	if w.t.httpAddr == "" || len(w.t.secret) == 0 {
		rp.notes = append(rp.notes, "flow workload skipped: give the target's --http-addr and its app secret (SENDGUARD_WHATSAPP_APP_SECRET)")
		return nil
	}
	noop, err := startNoopHook([]byte("noop-flow-secret"))
	if err != nil {
		return err
	}
	defer noop.close()
	var guarded, base flowRun
	statsBefore, cached := w.recordCache(ctx)
	for c := range 2 {
		audience := w.flowAudience(c)
		w.logf("flow: campaign %d of %d numbers (of %d%s), against sendguard", c+1, len(audience), cfg.Numbers, w.sliceNote())
		r, allowed, err := w.flowCampaign(ctx, c, audience, nil, nil)
		if err != nil {
			return fmt.Errorf("flow campaign %d: %w", c+1, err)
		}
		w.logf("flow: campaign %d as the no-op flow (%d guarded sends)", c+1, r.guarded)
		b, _, err := w.flowCampaign(ctx, c, audience, allowed, noop)
		if err != nil {
			return fmt.Errorf("flow campaign %d (no-op): %w", c+1, err)
		}
		w.logf("  campaign %d: %d guarded sends in %s (no-op %s): %.2f×", c+1, r.guarded, r.total.Round(time.Millisecond), b.total.Round(time.Millisecond), r.rate()/b.rate())
		rp.notes = append(rp.notes, fmt.Sprintf("flow campaign %d: %d numbers, %d guarded sends, %s (no-op flow %s), %.2f×",
			c+1, len(audience), r.guarded, r.total.Round(time.Millisecond), b.total.Round(time.Millisecond), r.rate()/b.rate()))
		guarded.add(r)
		base.add(b)
	}
	if st, ok := w.recordCache(ctx); ok && cached && st.Hits >= statsBefore.Hits && st.Misses >= statsBefore.Misses {
		// (Counters that went back: a separate server restarted, and the
		// counts are not the flow's.)
		hits, misses := st.Hits-statsBefore.Hits, st.Misses-statsBefore.Misses
		rp.notes = append(rp.notes, fmt.Sprintf("record cache during the flow: %d hits, %d misses (%.0f %% hits), %s held of %s",
			hits, misses, 100*float64(hits)/float64(max(hits+misses, 1)), mib(st.Bytes), mib(st.Limit)))
	} else {
		rp.notes = append(rp.notes, "record cache off (--record-cache 0; a server's record_cache: 0), or its counters unreadable or reset during the flow")
	}
	if w.t.store != nil {
		m := readMem()
		rp.notes = append(rp.notes, fmt.Sprintf("memory of this process (server and load generator) after the flow at %d numbers: VmRSS %s = anonymous %s + file-backed %s",
			cfg.Numbers, mib(m.RSS), mib(m.Anon), mib(m.File)))
	}
	for i, s := range guarded.steps {
		bs := base.steps[i]
		_, x := ratio(s.r, bs.r)
		rp.add("flow: "+s.name+", no-op (baseline)", bs.r, "1.00×", "—", "—")
		rp.add("flow: "+s.name, s.r, x, "reported", "—")
	}
	x := guarded.rate() / max(base.rate(), 1e-9)
	rp.rows = append(rp.rows,
		row{workload: "flow: guarded sends end to end, no-op (baseline)", rate: rate(base.rate()), p50: "—", p99: "—", p999: "—", ratio: "1.00×", target: "—", met: "—"},
		row{workload: fmt.Sprintf("flow: guarded sends end to end (%d campaigns of %d of %d numbers%s)", 2, cfg.Campaign, cfg.Numbers, w.sliceNote()),
			rate: rate(guarded.rate()), p50: "—", p99: "—", p999: "—", ratio: fmt.Sprintf("%.2f×", x), target: "≥ 0.6× no-op", met: yes(x >= 0.6)})
	return nil
}

// sliceNote says how a campaign is sent, when it is sent in slices.
func (w *workloads) sliceNote() string {
	if w.cfg.Slice <= 0 || w.cfg.Slice >= w.cfg.Campaign {
		return ""
	}
	return fmt.Sprintf(", in slices of %d", w.cfg.Slice)
}

// recordCache reads the target's record cache counters: the in-process
// store's, or a separate server's from its /metrics (ok false when it has no
// cache, or they cannot be read).
func (w *workloads) recordCache(ctx context.Context) (storage.RecordCacheStats, bool) {
	if w.t.store != nil {
		return w.t.store.RecordCache()
	}
	m, err := remoteMetrics(ctx, w.t.httpAddr)
	if err != nil {
		return storage.RecordCacheStats{}, false
	}
	limit, ok := m["sendguard_record_cache_limit_bytes"]
	if !ok {
		return storage.RecordCacheStats{}, false
	}
	return storage.RecordCacheStats{
		Hits: uint64(m["sendguard_record_cache_hits_total"]), Misses: uint64(m["sendguard_record_cache_misses_total"]),
		Bytes: int64(m["sendguard_record_cache_bytes"]), Limit: int64(limit),
	}, true
}

var errFlowConfig = errors.New("flow")

// validateFlow checks the flow's settings, after giving Campaign its default.
func (c *Config) validateFlow() error {
	if c.Campaign == 0 {
		c.Campaign = max(1, c.Numbers/10)
	}
	switch {
	case c.Campaign < 0:
		return fmt.Errorf("%w: campaign %d: want a positive size", errFlowConfig, c.Campaign)
	case c.Slice < 0:
		return fmt.Errorf("%w: slice %d: want a positive size, or 0 for the whole campaign", errFlowConfig, c.Slice)
	case c.Overlap < 0 || c.Overlap > 1:
		return fmt.Errorf("%w: overlap %v: want a fraction", errFlowConfig, c.Overlap)
	case float64(c.Campaign)*(2-c.Overlap) > float64(c.Numbers):
		return fmt.Errorf("%w: two campaigns of %d numbers overlapping by %v need %d numbers; --numbers is %d",
			errFlowConfig, c.Campaign, c.Overlap, int(float64(c.Campaign)*(2-c.Overlap)), c.Numbers)
	case c.FailRate < 0 || c.FailRate > 1:
		return fmt.Errorf("%w: failed %v: want a fraction", errFlowConfig, c.FailRate)
	case len(c.FailCodes) == 0 || slices.ContainsFunc(c.FailCodes, func(f FailCode) bool { return f.Share <= 0 }):
		return fmt.Errorf("%w: fail codes: want at least one code with a positive share", errFlowConfig)
	case c.FlowTimeout <= 0:
		return fmt.Errorf("%w: flow timeout %s: want a positive duration", errFlowConfig, c.FlowTimeout)
	}
	return nil
}
