package audience

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// ErrInterrupted ends a run stopped before it completed (Ctrl-C).
var ErrInterrupted = errors.New("interrupted")

// Streamer opens CheckSendStream streams (client.Client does).
type Streamer interface {
	CheckStream(ctx context.Context) (sgv1.SendGuard_CheckSendStreamClient, error)
}

// Env is what a run takes from its caller besides the options.
type Env struct {
	Now      func() time.Time // the clock of the summary's timing
	Kill     <-chan struct{}  // closed: stop waiting for answers in flight
	Progress func(int)        // rows written (batched); nil: no progress shown
}

// Run streams the rows of in through CheckSendStream and writes them to w, in
// order, each with its verdict. When stop ends, reading stops; the rows already
// read (at most a window) are still sent and their answers awaited, until
// env.Kill is closed, so that the output holds every row read, and no row is
// reserved without being written. A run that did not complete returns
// ErrInterrupted when it was stopped or killed, else what broke it; the summary
// counts the rows written either way.
func Run(stop context.Context, c Streamer, in *Input, w *csv.Writer, o *Options, env Env) (*Summary, error) {
	p := &pipeline{opts: o, cols: in.cols, env: env, stop: stop}
	return p.run(c, in, w)
}

// pipeline is one run:
//
//	read ──order──────────────────────────────────────────▶ write (Run's goroutine)
//	  └──sendq[i]──▶ send i ──recvq[i]──▶ receive i ──(row.done)──┘
//
// read deals the rows to the streams (every row of one person to the same one:
// see stream); each stream is answered in order, so each receive matches answers
// to its own queue, and write takes the rows in input order from order, waiting
// for each row's answer. Every channel is bounded, so at most about three windows
// of rows are in memory. Each channel is closed by the one method that sends on
// it: read closes order and every sendq, send i closes recvq[i].
type pipeline struct {
	opts *Options
	cols Columns
	env  Env
	stop context.Context // ended: reading stops

	// ctx is the streams' context: it ends with the first failure (fail) or a
	// kill, and then nothing more is sent or awaited.
	ctx    context.Context
	cancel context.CancelCauseFunc

	failMu  sync.Mutex
	failErr error // the first failure

	order chan *row   // read → write, every row in input order
	sendq []chan *row // read → send i, the rows of stream i
	recvq []chan *row // send i → receive i, the rows sent on stream i

	// The reader's own state, read by run once it has ended.
	dealt      int   // rows dealt so far: the last row's number
	rr         int   // the stream of the last row with no recipient digits
	readErr    error // the input broke
	readAll    bool  // the input was read to its end
	emptyLines int   // empty lines skipped
}

func (p *pipeline) run(c Streamer, in *Input, w *csv.Writer) (*Summary, error) {
	start := p.env.Now()
	sum := newSummary(p.opts)
	p.ctx, p.cancel = context.WithCancelCause(context.Background())
	defer p.cancel(nil)
	go func() {
		select {
		case <-p.env.Kill:
			p.cancel(ErrInterrupted)
		case <-p.ctx.Done():
		}
	}()

	n := p.opts.Workers
	streams := make([]sgv1.SendGuard_CheckSendStreamClient, n)
	for i := range streams {
		s, err := c.CheckStream(p.ctx)
		if err != nil {
			return sum, fmt.Errorf("open CheckSendStream: %w", err)
		}
		streams[i] = s
	}
	if err := w.Write(outHeader(p.opts, p.cols)); err != nil {
		return sum, err
	}

	per := max(p.opts.Window/n, 1)
	p.order = make(chan *row, p.opts.Window)
	p.sendq = make([]chan *row, n)
	p.recvq = make([]chan *row, n)
	for i := range n {
		p.sendq[i] = make(chan *row, per)
		p.recvq[i] = make(chan *row, per)
	}

	var wg sync.WaitGroup
	wg.Go(func() { p.read(in) })
	for i, st := range streams {
		wg.Go(func() { p.send(i, st) })
		wg.Go(func() { p.receive(i, st) })
	}
	cut, writeErr := p.write(w, sum)
	wg.Wait()

	sum.elapsed = p.env.Now().Sub(start)
	sum.emptyLines = p.emptyLines
	sum.Complete = p.readAll && !cut && p.failErr == nil && writeErr == nil
	// Interrupted: a stop (Ctrl-C) or a kill ended the run before it completed,
	// whatever else went wrong meanwhile (the exit status says interrupted first).
	sum.Interrupted = !sum.Complete && (p.stop.Err() != nil || errors.Is(p.failErr, ErrInterrupted))
	switch {
	case writeErr != nil:
		return sum, writeErr
	case p.readErr != nil:
		return sum, fmt.Errorf("read: %w", p.readErr)
	case p.failErr != nil && !errors.Is(p.failErr, ErrInterrupted):
		return sum, p.failErr
	case !sum.Complete:
		sum.Interrupted = true
		return sum, ErrInterrupted
	}
	return sum, nil
}

// fail ends the run with err, unless it already failed.
func (p *pipeline) fail(err error) {
	p.failMu.Lock()
	if p.failErr == nil {
		p.failErr = err
	}
	p.failMu.Unlock()
	p.cancel(err)
}

// stopped reports whether reading should stop.
func (p *pipeline) stopped() bool { return p.stop.Err() != nil || p.ctx.Err() != nil }

// read deals the records read ahead, then those of the file, until the file
// ends, the run is stopped, or it failed; it closes order and every sendq.
func (p *pipeline) read(in *Input) {
	defer func() {
		close(p.order)
		for _, q := range p.sendq {
			close(q)
		}
	}()
	for _, rec := range in.ahead {
		if p.stopped() || !p.deal(rec) {
			return
		}
	}
	quit := make(chan struct{})
	defer close(quit)
	records := p.records(in.rd, quit)
	for !p.stopped() {
		var got record
		select {
		case got = <-records:
		case <-p.stop.Done():
			return
		case <-p.ctx.Done():
			return
		}
		switch {
		case errors.Is(got.err, io.EOF):
			p.readAll, p.emptyLines = true, got.empty
			return
		case got.err != nil:
			p.readErr = got.err
			p.fail(got.err)
			return
		}
		if !p.deal(got.rec) {
			return
		}
	}
}

// record is what records hands on: a record, or the error that ended the input.
type record struct {
	rec   Record
	err   error
	empty int // empty lines skipped so far
}

// records reads rd in a goroutine of its own, so that a stop is not held up by
// a read that blocks (standard input from a pipe): read then returns at once and
// leaves that goroutine to end with its read (or when quit is closed).
func (p *pipeline) records(rd *Reader, quit <-chan struct{}) <-chan record {
	records := make(chan record, 64)
	go func() {
		for {
			rec, err := rd.Read()
			select {
			case records <- record{rec, err, rd.Empty()}:
			case <-quit:
				return
			}
			if err != nil {
				return // io.EOF or a read error: the reader has it
			}
		}
	}()
	return records
}

// deal hands a record's row to the writer and, when it is sent, to its stream;
// false when the run failed meanwhile.
func (p *pipeline) deal(rec Record) bool {
	p.dealt++
	r := newRow(p.opts, p.cols, p.dealt, rec)
	select {
	case p.order <- r:
	case <-p.ctx.Done():
		return false
	}
	if r.done == nil {
		return true
	}
	select {
	case p.sendq[stream(r.req, p.opts.Workers, &p.rr)] <- r:
		return true
	case <-p.ctx.Done():
		r.lost = true
		close(r.done)
		return false
	}
}

// send sends the rows of stream i, then closes its sending side and recvq[i].
func (p *pipeline) send(i int, st sgv1.SendGuard_CheckSendStreamClient) {
	defer func() {
		_ = st.CloseSend()
		close(p.recvq[i])
	}()
	for r := range p.sendq[i] {
		// A stop (Ctrl-C) ends the reading; the rows already dealt are still
		// sent, so that the output ends exactly where the reading did. Only a
		// kill or a failure drops them.
		if p.ctx.Err() != nil {
			r.lost = true
			close(r.done)
			continue
		}
		if err := st.Send(r.req); err != nil {
			// io.EOF: the stream ended; its receiver learns why.
			if !errors.Is(err, io.EOF) && p.ctx.Err() == nil {
				p.fail(streamError(err))
			}
			r.lost = true
			close(r.done)
			continue
		}
		r.req = nil
		p.recvq[i] <- r
	}
}

// receive matches the answers of stream i to the rows sent on it, in order;
// once the stream broke, the rows left are lost.
func (p *pipeline) receive(i int, st sgv1.SendGuard_CheckSendStreamClient) {
	broken := false
	for r := range p.recvq[i] {
		if !broken {
			broken = !p.answer(st, r)
		}
		r.lost = r.resp == nil
		close(r.done)
	}
}

// answer receives r's answer from st; false when the stream broke or answered
// another row (the run then failed, unless it had already ended).
func (p *pipeline) answer(st sgv1.SendGuard_CheckSendStreamClient, r *row) bool {
	resp, err := st.Recv()
	switch {
	case err != nil:
		if context.Cause(p.ctx) == nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the server ended the stream early")
			}
			p.fail(streamError(err))
		}
		return false
	case resp.GetRequestId() != strconv.Itoa(r.n):
		p.fail(fmt.Errorf("the server answered row %s where row %d was expected", resp.GetRequestId(), r.n))
		return false
	}
	r.resp = resp
	return true
}

// write writes the rows in input order, up to the first one that has no answer
// (then cut), and counts them in sum; it drains order to its end.
func (p *pipeline) write(w *csv.Writer, sum *Summary) (cut bool, writeErr error) {
	pending := 0
	for r := range p.order {
		if r.done != nil {
			<-r.done
		}
		if cut || writeErr != nil {
			continue
		}
		if r.lost {
			cut = true
			continue
		}
		if err := w.Write(outRecord(p.opts, p.cols, r)); err != nil {
			writeErr = err
			p.fail(err)
			continue
		}
		sum.add(r)
		if p.env.Progress != nil {
			pending++
			if pending == 256 {
				p.env.Progress(pending)
				pending = 0
			}
		}
		if sum.Rows%4096 == 0 {
			if err := w.Error(); err != nil {
				writeErr = err
				p.fail(err)
			}
		}
	}
	if p.env.Progress != nil && pending > 0 {
		p.env.Progress(pending)
	}
	return cut, writeErr
}

// stream is the stream (of n) a row is sent on: every row of one person on the
// same one, so that the earlier row of a person is judged (and reserved) before
// the later, as in the input order, and a later spelling of the same number is
// the DUPLICATE, whatever the number of workers. A person is the last six digits
// of the phone, which every spelling of a number shares (the WhatsApp-ID folds
// and national or international prefixes change only the digits before them);
// the server's stream lanes (server.route) take the same digits, so that within
// the stream, too, the rows of a number are decided in order. A row without a
// phone goes by its user ID; one whose phone has no digit (nobody's) to the
// stream after *rr's, which it advances. (A user ID that the server has linked
// to a number is one person with that number's rows too, which no client can
// see: those two rows are still one send, but which of them is the ALLOW
// depends on the streams' pace.)
func stream(req *sgv1.CheckSendRequest, workers int, rr *int) int {
	n := uint32(workers)
	h, digits := uint32(2166136261), 0 // FNV-1a
	phone := req.GetPhone()
	for i := len(phone) - 1; i >= 0 && digits < 6; i-- {
		if c := phone[i]; c >= '0' && c <= '9' {
			h = (h ^ uint32(c)) * 16777619
			digits++
		}
	}
	if digits == 0 {
		id := req.GetUserId()
		if id == "" {
			*rr = (*rr + 1) % int(n)
			return *rr
		}
		for i := 0; i < len(id); i++ {
			h = (h ^ uint32(id[i])) * 16777619
		}
	}
	return int(h % n)
}

// streamError says what a broken stream means for the user.
func streamError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("CheckSendStream: the server is unavailable: %s", st.Message())
	case codes.Unauthenticated, codes.PermissionDenied:
		return fmt.Errorf("CheckSendStream: %s: %s (set SENDGUARD_API_KEY to a key for this business)", CodeName(st.Code()), st.Message())
	}
	return fmt.Errorf("CheckSendStream: %s: %s", CodeName(st.Code()), st.Message())
}
