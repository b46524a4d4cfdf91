package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// result is one workload's measurement.
type result struct {
	ops     int64 // answered calls, rows or events
	errs    int64 // calls that failed, or stream rows answered with an error
	elapsed time.Duration
	lat     hist // per call, row (send to answer) or POST
	note    string
}

func (r *result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// add merges o (another round of the same workload) into r.
func (r *result) add(o *result) {
	r.ops += o.ops
	r.errs += o.errs
	r.elapsed += o.elapsed
	r.lat.merge(&o.lat)
	if o.note != "" {
		r.note = o.note
	}
}

// limits bound a workload: it stops at whichever comes first.
type limits struct {
	duration time.Duration
	maxOps   int64
	// seq, when set, numbers the calls or rows across rounds of a workload
	// (so that a stream's rows stay distinct from one round to the next).
	seq *atomic.Int64
	// answer, when set, is called with each stream row's seq and answer (from
	// the streams' receivers, concurrently).
	answer func(seq int64, resp *sgv1.CheckSendResponse)
}

func (l limits) counter() *atomic.Int64 {
	if l.seq != nil {
		return l.seq
	}
	return new(atomic.Int64)
}

// runUnary runs call from callers goroutines until the limits are reached; calls
// in flight then finish (they are not cut). seq numbers the calls from 0 across
// all callers.
func runUnary(ctx context.Context, callers int, lim limits, call func(ctx context.Context, seq int64) error) *result {
	var (
		next  = lim.counter()
		errs  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		total = &result{}
	)
	start := time.Now()
	stopAt := start.Add(lim.duration)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := new(hist)
			var ops int64
			for ctx.Err() == nil && time.Now().Before(stopAt) {
				seq := next.Add(1) - 1
				if lim.maxOps > 0 && seq >= lim.maxOps {
					break
				}
				t := time.Now()
				if err := call(ctx, seq); err != nil {
					errs.Add(1)
					continue
				}
				h.record(time.Since(t))
				ops++
			}
			mu.Lock()
			total.lat.merge(h)
			total.ops += ops
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	total.errs = errs.Load()
	return total
}

// streamOpener opens one bidirectional stream of CheckSendRequest →
// CheckSendResponse (CheckSendStream or the bench echo).
type streamOpener func(ctx context.Context) (grpc.ClientStream, error)

// runStreams runs streams concurrent streams, each with at most window rows in
// flight (sent, not yet answered), until the limits are reached; then each stream
// is half-closed and drained. mk builds the request of row seq (numbered across
// all streams); every answer must carry its request's request_id, in order.
func runStreams(ctx context.Context, open streamOpener, streams, window int, lim limits, mk func(seq int64) *sgv1.CheckSendRequest) (*result, error) {
	var (
		next  = lim.counter()
		mu    sync.Mutex
		total = &result{}
		wg    sync.WaitGroup
		errc  = make(chan error, streams)
	)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopAt := time.Now().Add(lim.duration)
	start := time.Now()
	for range streams {
		st, err := open(sctx)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := runStream(st, window, stopAt, lim.maxOps, next, mk, lim.answer)
			if err != nil {
				errc <- err
				cancel()
			}
			mu.Lock()
			total.lat.merge(&r.lat)
			total.ops += r.ops
			total.errs += r.errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	close(errc)
	return total, <-errc
}

func runStream(st grpc.ClientStream, window int, stopAt time.Time, maxOps int64, next *atomic.Int64, mk func(seq int64) *sgv1.CheckSendRequest,
	answer func(seq int64, resp *sgv1.CheckSendResponse)) (*result, error) {
	r := &result{}
	tokens := make(chan struct{}, window)
	// Rows are answered in order, so the k-th answer is for the k-th row sent:
	// its request_id and send time wait in slot k%window.
	ids := make([]string, window)
	seqs := make([]int64, window)
	sentAt := make([]atomic.Int64, window)
	sent := make(chan struct{}, window) // one token per row sent, for the receiver
	sendErr := make(chan error, 1)
	done := make(chan struct{}) // the receiver gave up
	defer close(done)
	go func() {
		defer close(sent)
		for k := 0; time.Now().Before(stopAt); k++ {
			seq := next.Add(1) - 1
			if maxOps > 0 && seq >= maxOps {
				break
			}
			select {
			case tokens <- struct{}{}:
			case <-done:
				return
			}
			req := mk(seq)
			ids[k%window] = req.GetRequestId()
			seqs[k%window] = seq
			sentAt[k%window].Store(time.Now().UnixNano())
			sent <- struct{}{}
			if err := st.SendMsg(req); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- st.CloseSend()
	}()
	for k := 0; ; k++ {
		resp := new(sgv1.CheckSendResponse)
		err := st.RecvMsg(resp)
		if errors.Is(err, io.EOF) {
			if _, more := <-sent; more {
				return r, fmt.Errorf("stream ended after %d answers with rows unanswered", k)
			}
			return r, <-sendErr
		}
		if err != nil {
			return r, err
		}
		if _, ok := <-sent; !ok {
			return r, fmt.Errorf("answer %d for a row never sent", k)
		}
		slot := k % window
		if resp.GetRequestId() != ids[slot] {
			return r, fmt.Errorf("answer %d carries request_id %q, want %q: answers out of order", k, resp.GetRequestId(), ids[slot])
		}
		r.lat.record(time.Duration(time.Now().UnixNano() - sentAt[slot].Load()))
		if answer != nil {
			answer(seqs[slot], resp)
		}
		<-tokens
		r.ops++
		if resp.GetError() != nil {
			r.errs++
		}
	}
}
