package server

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
)

// CheckSendStream is a pipeline, so that one stream keeps every core busy: a
// reader takes rows off the wire, a few lanes decide them concurrently, and the
// handler sends the answers strictly in request order. What is in flight (read,
// not yet answered) is bounded by rows and by bytes, so a client that sends
// without reading is held by gRPC's flow control, never buffered without limit:
// the reader stops reading once the window is full, and the window drains only as
// answers go out.
//
// Rows are decided in the order they arrive wherever the order can matter:
//   - rows for the same number go to the same lane (routed by the last six
//     digits of the phone, which every spelling of a number shares: the
//     WhatsApp-ID folds and national prefixes change only the digits before
//     them), and a lane decides its rows one after another;
//   - a row that names a user_id (whose number is known only after a lookup),
//     and the first row of a business this server has not loaded yet, wait for
//     every earlier row to be answered and are decided before any later row is
//     read;
//   - the rows of a business with a messaging limit (reservations there count
//     against one business-wide budget) all go to the first lane.
//
// So a stream answers as if its rows were decided one by one, in order (a
// policy changed while it runs takes effect from some row on, as it would then).
//
// What streams hold is bounded twice: each stream's rows in flight by
// streamWindow (remoteStreamWindow) and streamWindowBytes, and every stream's together by the
// server's rowBudget (Config.StreamBudget), so that many streams whose clients
// never read cannot add up to more. A stream past the budget still takes one
// row whenever it holds none, so that every stream goes on, one row at a time,
// while the budget is spent.
const (
	// streamWindow bounds the rows of one stream in flight on an embedded store
	// (eight a lane at most: enough to keep every lane busy while the sender
	// waits for the earliest); remoteStreamWindow on a networked one, whose 32
	// lanes each wait for a round trip.
	streamWindow       = 64
	remoteStreamWindow = 256
	// streamWindowBytes bounds their cost: the reader takes no new row while
	// the rows in flight cost this much.
	streamWindowBytes = 2 << 20
	// rowOverhead is what a row costs beyond its encoded request: its answer,
	// its place in the pipeline.
	rowOverhead = 1 << 10
)

// rowBudget is the bytes that every stream's rows in flight may cost together.
type rowBudget struct {
	max  int64
	used atomic.Int64
	// waiting counts readers waiting for bytes to be released; freed is closed
	// (and replaced) when bytes are released while one waits.
	waiting atomic.Int32
	mu      sync.Mutex
	freed   chan struct{}
}

func newRowBudget(limit int64) *rowBudget {
	return &rowBudget{max: limit, freed: make(chan struct{})}
}

// spent reports whether the rows in flight cost the whole budget.
func (b *rowBudget) spent() bool { return b.used.Load() >= b.max }

func (b *rowBudget) take(n int64) { b.used.Add(n) }

// release gives n bytes back and wakes the readers waiting for them.
func (b *rowBudget) release(n int64) {
	if b.used.Add(-n) < b.max && b.waiting.Load() > 0 {
		b.mu.Lock()
		close(b.freed)
		b.freed = make(chan struct{})
		b.mu.Unlock()
	}
}

// wait returns a channel closed at the next release; call done when no longer
// waiting.
func (b *rowBudget) wait() (freed <-chan struct{}, done func()) {
	b.waiting.Add(1)
	b.mu.Lock()
	freed = b.freed
	b.mu.Unlock()
	return freed, func() { b.waiting.Add(-1) }
}

// streamCost is the cost of one stream's rows in flight, charged to the
// server's budget as well. Once the stream ends, what it still held is given
// back, and rows read after that are not charged.
type streamCost struct {
	budget *rowBudget
	mu     sync.Mutex
	bytes  int64
	ended  bool
}

func (c *streamCost) add(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended {
		c.bytes += n
		c.budget.take(n)
	}
}

func (c *streamCost) sub(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended {
		c.bytes -= n
		c.budget.release(n)
	}
}

func (c *streamCost) load() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

func (c *streamCost) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = true
	c.budget.release(c.bytes)
	c.bytes = 0
}

// streamLanes is how many rows of one stream are decided at once: enough to keep
// every core busy on an embedded store; on a store shared over the network
// (Redis), where a decision mostly waits for a round trip, enough to hide it.
func (s *Server) streamLanes() int {
	if s.shared {
		return remoteStreamLanes
	}
	return min(max(runtime.GOMAXPROCS(0), 2), 8)
}

// remoteStreamLanes is streamLanes on a networked store: with a round trip of
// ~0.2–1 ms, 32 lanes keep a stream at tens of thousands of decisions/s.
const remoteStreamLanes = 32

// streamRow is one row of a stream on its way through the pipeline; the handler
// recycles it once its answer is sent.
type streamRow struct {
	req    *sgv1.CheckSendRequest
	resp   *sgv1.CheckSendResponse
	size   int64
	inline bool          // decided by the sender once every earlier row is answered
	done   chan struct{} // a lane decided it; for an inline row, its answer was sent
}

// CheckSendStream judges a stream of planned sends, answering each in order. A row
// that cannot be judged gets a response carrying error; the stream goes on.
func (s *Server) CheckSendStream(stream sgv1.SendGuard_CheckSendStreamServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	window := streamWindow
	if s.shared {
		window = remoteStreamWindow
	}
	free := make(chan *streamRow, window) // rows answered, to be reused
	order := make(chan *streamRow, window)
	lanes := make([]chan *streamRow, s.streamLanes())
	for i := range lanes {
		lanes[i] = make(chan *streamRow, window)
		go s.runLane(ctx, lanes[i])
	}
	var (
		inFlight = &streamCost{budget: s.rows} // the rows in flight
		drained  = make(chan struct{}, 1)      // the sender released bytes
		recvErr  error                         // why the reader stopped, if not io.EOF; read after order is closed
	)
	defer inFlight.end()

	// The reader.
	go func() {
		defer func() {
			close(order)
			for _, l := range lanes {
				close(l)
			}
		}()
		for rows := 0; ; {
			// A row to read into: a recycled one, a new one while fewer than
			// window exist, else wait for the sender to free one.
			var r *streamRow
			select {
			case r = <-free:
			default:
				if rows < window {
					r = &streamRow{req: new(sgv1.CheckSendRequest), done: make(chan struct{}, 1)}
					rows++
					break
				}
				select {
				case r = <-free:
				case <-ctx.Done():
					return
				}
			}
			if !s.mayRead(ctx, inFlight, drained) {
				return
			}
			if err := stream.RecvMsg(r.req); err != nil {
				if !errors.Is(err, io.EOF) {
					recvErr = err
				}
				return
			}
			r.size = int64(proto.Size(r.req)) + rowOverhead
			inFlight.add(r.size)
			lane, inline := s.route(r.req, len(lanes))
			r.inline = inline
			order <- r // never blocks: at most window rows exist
			if inline {
				select {
				case <-r.done:
				case <-ctx.Done():
					return
				}
				continue
			}
			lanes[lane] <- r // never blocks either
		}
	}()

	// The sender: answers in request order.
	for r := range order {
		if r.inline {
			if !s.slots.take(ctx) {
				return ctx.Err()
			}
			r.resp = s.checkRow(ctx, r.req)
			s.slots.give()
		} else {
			select {
			case <-r.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := stream.Send(r.resp)
		r.resp = nil
		inFlight.sub(r.size)
		select {
		case drained <- struct{}{}:
		default:
		}
		if r.inline {
			r.done <- struct{}{}
		}
		if err != nil {
			return err
		}
		free <- r
	}
	return recvErr
}

// mayRead waits until the stream may read another row: while its rows in flight
// cost less than streamWindowBytes, and either the server's budget is not spent
// or the stream holds no row. It returns false when ctx ends first.
func (s *Server) mayRead(ctx context.Context, inFlight *streamCost, drained <-chan struct{}) bool {
	for {
		held := inFlight.load()
		if held == 0 || held < streamWindowBytes && !s.rows.spent() {
			return true
		}
		var freed <-chan struct{}
		done := func() {}
		if held < streamWindowBytes {
			// Past the budget: wait for any stream to release bytes, or for
			// this one to answer what it holds. (Registered before looking
			// again, so that a release in between is not missed.)
			freed, done = s.rows.wait()
			if !s.rows.spent() {
				done()
				continue
			}
		}
		select {
		case <-drained:
		case <-freed:
		case <-ctx.Done():
			done()
			return false
		}
		done()
	}
}

// decisionSlots bounds the rows that every stream decides at once: about one
// per core on an embedded store. A row is decided while its stream holds a slot;
// unary calls and health checks take none. So however many streams run, only a
// few of their goroutines compete for the cores at a time (the others wait for
// a slot, parked), and a health check or a unary call on another connection
// waits behind a few of them, not behind every stream's: hundreds of busy
// streams left health checks waiting 0.5-4 s without slots. Streams share the
// slots, a lane giving its slot up after slotRows rows.
type decisionSlots chan struct{}

// slotRows is the most rows a lane decides on one slot while others wait.
const slotRows = 32

func newDecisionSlots(shared bool) decisionSlots {
	n := runtime.GOMAXPROCS(0)
	if shared {
		// A decision on a networked store mostly waits for a round trip.
		n *= remoteStreamLanes
	}
	return make(decisionSlots, max(n, 2))
}

// take waits for a slot; false when ctx ended first.
func (d decisionSlots) take(ctx context.Context) bool {
	select {
	case d <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (d decisionSlots) give() { <-d }

// runLane decides the rows of one lane, in order, until the lane is closed:
// on a slot, the rows waiting (up to slotRows) at a time, as decideRows does.
func (s *Server) runLane(ctx context.Context, lane <-chan *streamRow) {
	rows := make([]*streamRow, 0, slotRows)
	var batch laneBatch
	for r := range lane {
		if !s.slots.take(ctx) {
			for range lane { // the stream has ended: let the reader finish
			}
			return
		}
		rows = append(rows[:0], r)
	gather:
		for len(rows) < slotRows {
			select {
			case next, ok := <-lane:
				if !ok {
					break gather // closed: the range above ends
				}
				rows = append(rows, next)
			default:
				break gather
			}
		}
		s.decideRows(ctx, rows, &batch)
		s.slots.give()
	}
}

// laneBatch is a lane's reservations waiting to be written together (their
// rows, in order), kept between slots for its memory.
type laneBatch struct {
	held    []batchedRow
	updates []storage.ContactUpdate
}

// batchedRow is a row held in a lane's batch, with its prepared reservation.
type batchedRow struct {
	row *streamRow
	v   *pendingReservation
}

// holds tells whether the batch holds a reservation of the recipient id (a
// linear scan: a batch holds at most slotRows).
func (b *laneBatch) holds(id string) bool {
	for _, h := range b.held {
		if h.v.r.key.ID == id {
			return true
		}
	}
	return false
}

// decideRows decides a lane's rows, in order. Reservations of distinct numbers
// whose business has no messaging limit are written together, in one
// UpdateContacts (one transaction on Badger, one round trip of commits on
// Redis) instead of one commit each; every other row is decided alone, after
// the reservations before it are written. A row's answer is released as soon
// as it is decided.
//
// The rows a batch holds are decided in order among themselves (UpdateContacts
// applies them in order), and every other row is decided after the batch before
// it is written; a batch's rows are only decided after rows that came later if
// those fail before the store (an invalid request), which reads nothing. A
// second reservation of a number already in the batch writes the batch first.
// A business where reservations count against one budget (a messaging limit)
// is never batched. The reads of a batch run in its lane, so the lanes still
// read in parallel; only the commits are shared.
func (s *Server) decideRows(ctx context.Context, rows []*streamRow, batch *laneBatch) {
	for _, r := range rows {
		p, err := s.prepareRow(ctx, r.req)
		if err != nil {
			r.resp = s.rowError(ctx, r.req, err)
			r.done <- struct{}{}
			continue
		}
		var v *pendingReservation
		if p.reserves() && p.snap.policy.MessagingLimit == 0 {
			if v, err = s.newReservation(ctx, p); err != nil {
				r.resp = s.rowError(ctx, r.req, err)
				r.done <- struct{}{}
				continue
			}
		}
		if v == nil {
			s.writeBatch(ctx, batch)
			r.resp = s.decidePrepared(ctx, p)
			r.done <- struct{}{}
			continue
		}
		if batch.holds(v.r.key.ID) {
			s.writeBatch(ctx, batch)
		}
		batch.held = append(batch.held, batchedRow{row: r, v: v})
	}
	s.writeBatch(ctx, batch)
}

// prepareRow checks a row's request and prepares its check.
func (s *Server) prepareRow(ctx context.Context, req *sgv1.CheckSendRequest) (preparedCheck, error) {
	if err := s.rowRequest(ctx, req); err != nil {
		return preparedCheck{}, err
	}
	return s.prepareCheck(ctx, req)
}

// decidePrepared answers a prepared row alone.
func (s *Server) decidePrepared(ctx context.Context, p preparedCheck) *sgv1.CheckSendResponse {
	var (
		resp *sgv1.CheckSendResponse
		err  error
	)
	if p.reserves() {
		resp, err = s.reserve(ctx, p)
	} else {
		resp, err = s.judge(ctx, p)
	}
	if err != nil {
		return s.rowError(ctx, p.req, err)
	}
	return resp
}

// writeBatch writes a lane's batched reservations and releases their answers.
// One that meets a messaging limit set meanwhile is made again alone, under
// the business lock (its update wrote nothing).
func (s *Server) writeBatch(ctx context.Context, batch *laneBatch) {
	if len(batch.held) == 0 {
		return
	}
	var (
		results []error
		err     error
	)
	if len(batch.held) == 1 {
		v := batch.held[0].v
		results = []error{s.store.UpdateContact(ctx, v.r.key, v.dedup, v.fn)}
		s.metrics.reservationBatch.Observe(1)
	} else {
		batch.updates = batch.updates[:0]
		for _, h := range batch.held {
			batch.updates = append(batch.updates, storage.ContactUpdate{Key: h.v.r.key, Dedup: h.v.dedup, Fn: h.v.fn})
		}
		results, err = s.store.UpdateContacts(ctx, batch.updates)
		if errors.Is(err, storage.ErrNoSpace) {
			// A nearly full disk refuses a transaction that writes anything,
			// so the batch went whole. Each goes again alone: a row whose
			// update writes nothing (DEFER, DENY, a duplicate) gets the answer
			// it gets alone, and only those that write are refused. (A lane's
			// batch is one transaction on Badger, so nothing of it was
			// applied; a store that applied a part would answer those rows
			// DUPLICATE, the safe side.)
			results, err = make([]error, len(batch.held)), nil
			for i, h := range batch.held {
				if results[i] = s.store.UpdateContact(ctx, h.v.r.key, h.v.dedup, h.v.fn); results[i] == nil {
					s.metrics.reservationBatch.Observe(1)
				}
			}
		} else if err == nil {
			s.metrics.reservationBatch.Observe(float64(len(batch.held)))
		}
	}
	for i, h := range batch.held {
		var resp *sgv1.CheckSendResponse
		switch res := batchResult(results, i, err); {
		case errors.Is(res, errNeedLock):
			resp = s.decidePrepared(ctx, h.v.preparedCheck)
		default:
			if resp, res = s.reserved(ctx, h.v, res); res != nil {
				resp = s.rowError(ctx, h.row.req, res)
			}
		}
		h.row.resp = resp
		h.row.done <- struct{}{}
	}
	clear(batch.held)
	batch.held = batch.held[:0]
	clear(batch.updates) // no fn kept alive past its batch
}

// batchResult is update i's outcome in a batch whose call returned results and
// err (an error of the whole batch is every update's).
func batchResult(results []error, i int, err error) error {
	if err != nil {
		return err
	}
	return results[i]
}

// route picks the lane of a row, or inline for a row that must be decided alone
// (see CheckSendStream).
func (s *Server) route(req *sgv1.CheckSendRequest, lanes int) (lane int, inline bool) {
	if req.GetUserId() != "" {
		return 0, true
	}
	b := s.biz.peek(req.GetBusinessId())
	if b == nil {
		return 0, true
	}
	if b.snap.Load().policy.MessagingLimit > 0 {
		return 0, false
	}
	// FNV-1a over the last six digits of the phone.
	phone := req.GetPhone()
	h := uint32(2166136261)
	for i, n := len(phone)-1, 0; i >= 0 && n < 6; i-- {
		if c := phone[i]; c >= '0' && c <= '9' {
			h = (h ^ uint32(c)) * 16777619
			n++
		}
	}
	return int(h % uint32(lanes)), false
}

// checkRow answers one row of a stream: a verdict, or the row's error.
func (s *Server) checkRow(ctx context.Context, req *sgv1.CheckSendRequest) *sgv1.CheckSendResponse {
	p, err := s.prepareRow(ctx, req)
	if err != nil {
		return s.rowError(ctx, req, err)
	}
	return s.decidePrepared(ctx, p)
}

// rowRequest checks a row's request before it is decided: well formed, allowed
// to the caller, valid.
func (s *Server) rowRequest(ctx context.Context, req *sgv1.CheckSendRequest) error {
	if why := badRequest(req); why != "" {
		return status.Error(codes.InvalidArgument, why)
	}
	if err := s.authorize(ctx, req.GetBusinessId(), false); err != nil {
		return err
	}
	return validateCheck(req)
}

// rowError is the answer of a row that could not be decided, counted in the
// metrics.
func (s *Server) rowError(ctx context.Context, req *sgv1.CheckSendRequest, err error) *sgv1.CheckSendResponse {
	st := status.Convert(s.toStatus(ctx, err))
	s.metrics.rowErrors.WithLabelValues(st.Code().String()).Inc()
	return &sgv1.CheckSendResponse{
		RequestId: req.GetRequestId(),
		Error:     &sgv1.RowError{Code: int32(st.Code()), Message: st.Message()},
	}
}
