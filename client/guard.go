package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// GuardOptions tune a Guard. The zero value is a good default.
type GuardOptions struct {
	// AttemptTimeout is the deadline of one attempt (default 2s). The whole call
	// is bounded by the caller's context too: no attempt and no backoff outlives it.
	AttemptTimeout time.Duration
	// MaxAttempts bounds the attempts of one call (default 4: the first and three
	// retries).
	MaxAttempts int
	// InitialBackoff is the wait before the first retry (default 50ms); each
	// retry doubles it, up to MaxBackoff (default 1s), with jitter.
	InitialBackoff, MaxBackoff time.Duration
	// RetryResourceExhausted also retries RESOURCE_EXHAUSTED. Off by default: it
	// means a quota or a message-size limit, which retrying right away makes worse
	// or never fixes; a sending worker should rather DEFER its own send.
	RetryResourceExhausted bool
	// CampaignID is recorded with every check and reservation (optional).
	CampaignID string
	// Region (ISO 3166 alpha-2, e.g. "BR") reads the phones this Guard is given
	// in national format, such as "(31) 99551-1909"; empty: the business
	// policy's default_region. Phones with + or 00 are read as international
	// whatever it says. A Report's own Region, when set, wins.
	Region string
}

// Guard is what a sending worker holds: the questions it asks before and after
// each send, for one business, with deadlines and retries. It shares the Client's
// connection (one HTTP/2 connection for every call) and is safe for concurrent use:
// make one per process and business.
//
// Retries: an attempt that fails with UNAVAILABLE (the server is restarting or
// unreachable), ABORTED (a storage conflict the server gave up on) or
// DEADLINE_EXCEEDED of the attempt (not of the caller's context) is tried again
// after an exponential backoff with jitter, at most MaxAttempts times, never past
// the caller's deadline. That is safe for every Guard call: Check without a
// reservation only reads; Reserve is idempotent through its message_ref (a repeat
// records nothing new); Report is idempotent by its keys (message_id or
// message_ref, and status). Any other error (INVALID_ARGUMENT, PERMISSION_DENIED…)
// is returned at once: trying again would give the same answer.
type Guard struct {
	c        *Client
	business string
	o        GuardOptions
}

// NewGuard returns a Guard for business on c. The Guard does not own c: close c
// when every Guard on it is done.
func NewGuard(c *Client, business string, opts GuardOptions) *Guard {
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 2 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 4
	}
	if opts.InitialBackoff <= 0 {
		opts.InitialBackoff = 50 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Second
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.InitialBackoff)
	return &Guard{c: c, business: business, o: opts}
}

// Check asks whether a message may be sent to phone now. It records nothing: use
// Reserve to claim the send. category is sgv1.Category_CATEGORY_MARKETING,
// _UTILITY, _AUTHENTICATION or _SERVICE; template may be empty for service
// messages. Send only on VERDICT_ALLOW; on VERDICT_DEFER try again at RetryAt.
func (g *Guard) Check(ctx context.Context, phone string, category sgv1.Category, template string) (*sgv1.CheckSendResponse, error) {
	req := &sgv1.CheckSendRequest{
		BusinessId: g.business, Phone: phone, Category: category, Template: template, CampaignId: g.o.CampaignID,
		Region: g.o.Region,
	}
	return retry(ctx, g, func(ctx context.Context) (*sgv1.CheckSendResponse, error) { return g.c.api.CheckSend(ctx, req) })
}

// ErrNoMessageRef is returned by Reserve without a message_ref: a reservation
// without one could not be retried safely.
var ErrNoMessageRef = errors.New("client: Reserve needs a messageRef (your id for the send)")

// Reserve asks like Check and, on VERDICT_ALLOW, records the send at once
// (atomically per number), so that concurrent workers cannot both pass a cap.
// messageRef is your id for this send (e.g. the outbox row's id): pass it to Meta
// as biz_opaque_callback_data and in Report, so that outcomes find the send.
//
// Send only when the verdict is ALLOW and Duplicate is false. Duplicate means the
// messageRef was reserved before — by another worker, an earlier run of this job,
// or an earlier attempt of this very call whose answer was lost (a retry after a
// timeout): sendguard cannot tell these apart, so the safe reading is "someone
// already has this send" (at most once). A messageRef that got DEFER or DENY
// reserved nothing and may be used again.
func (g *Guard) Reserve(ctx context.Context, phone string, category sgv1.Category, template, messageRef string) (*sgv1.CheckSendResponse, error) {
	if messageRef == "" {
		return nil, ErrNoMessageRef
	}
	req := &sgv1.CheckSendRequest{
		BusinessId: g.business, Phone: phone, Category: category, Template: template, CampaignId: g.o.CampaignID,
		Reserve: true, MessageRef: messageRef, Region: g.o.Region,
	}
	return retry(ctx, g, func(ctx context.Context) (*sgv1.CheckSendResponse, error) { return g.c.api.CheckSend(ctx, req) })
}

// Report records what happened to a send (the send API's answer, a status
// webhook). An empty BusinessId is the Guard's business. Reports are idempotent:
// a retried one is recorded once (the answer then says Duplicate).
func (g *Guard) Report(ctx context.Context, req *sgv1.ReportResultRequest) (*sgv1.ReportResultResponse, error) {
	if req.GetBusinessId() == "" || (req.GetRegion() == "" && g.o.Region != "") {
		req = proto.CloneOf(req) // the caller's message stays as it was
		if req.GetBusinessId() == "" {
			req.BusinessId = g.business
		}
		if req.GetRegion() == "" {
			req.Region = g.o.Region
		}
	}
	return retry(ctx, g, func(ctx context.Context) (*sgv1.ReportResultResponse, error) { return g.c.api.ReportResult(ctx, req) })
}

// retryable reports whether an attempt's error may be tried again: ctx is the
// caller's context (its own deadline is final).
func (g *Guard) retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted:
		return true
	case codes.DeadlineExceeded:
		// The attempt's deadline, not the caller's (checked above).
		return true
	case codes.ResourceExhausted:
		return g.o.RetryResourceExhausted
	}
	return false
}

// retry runs call with a deadline per attempt until it succeeds, fails for good,
// runs out of attempts, or the caller's context ends.
func retry[T any](ctx context.Context, g *Guard, call func(context.Context) (T, error)) (T, error) {
	backoff := g.o.InitialBackoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, g.o.AttemptTimeout)
		resp, err := call(actx)
		cancel()
		if err == nil || attempt >= g.o.MaxAttempts || !g.retryable(ctx, err) {
			return resp, err
		}
		// Equal jitter: half the backoff, plus up to the other half at random, so
		// that workers that failed together do not retry together.
		wait := backoff/2 + rand.N(backoff/2+1)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return resp, err // the caller's deadline comes first: no point waiting
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, err
		case <-t.C:
		}
		backoff = min(2*backoff, g.o.MaxBackoff)
	}
}
