package server

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/sendguard/sendguard/webhook"
)

// DefaultWebhookBodyBudget is the default of Config.WebhookBodyBudget: four
// bodies of the largest size, or about ninety of Meta's fullest batches
// (1,000 statuses, about 350 KB), may be held at once.
const DefaultWebhookBodyBudget = 32 << 20

// bodyChunk is the unit webhook bodies are read, pooled and charged in.
const bodyChunk = 32 << 10

// bodyBudget is the server-wide budget of bytes held by webhook bodies. Every
// POST, signed or not, reads its body into chunks taken from the budget as the
// bytes arrive and gives them back when it is answered, so that however many
// strangers send bodies at once, and however slowly, they hold no more than
// the budget. Chunks, and the contiguous copies made of verified bodies, are
// pooled so that steady traffic reuses the same memory.
type bodyBudget struct {
	limit  int64
	used   atomic.Int64
	chunks sync.Pool // of *[bodyChunk]byte
	flats  sync.Pool // of *[]byte: verified bodies of more than one chunk
}

func newBodyBudget(limit int64) *bodyBudget {
	b := &bodyBudget{limit: limit}
	b.chunks.New = func() any { return new([bodyChunk]byte) }
	return b
}

// take charges n bytes, or reports false when that would pass the limit.
func (b *bodyBudget) take(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// give returns n bytes taken with take.
func (b *bodyBudget) give(n int64) { b.used.Add(-n) }

// webhookBody is a request body read into chunks charged to a bodyBudget.
// Release it once nothing refers to its bytes any more.
type webhookBody struct {
	budget  *bodyBudget
	chunks  []*[bodyChunk]byte
	n       int   // bytes read
	charged int64 // bytes taken from the budget
	flat    *[]byte
}

// errBudgetSpent: the webhook bodies being read already hold the budget (503).
var errBudgetSpent = errors.New("webhook body budget spent")

// readWebhookBody reads r's body, at most maxBytes bytes, charging the budget a
// chunk at a time as the bytes arrive (a client that declares a large
// Content-Length and sends nothing holds one chunk). On failure it returns the
// HTTP status to answer, having released what it took: 413 for a body over
// maxBytes, 503 when the budget is spent, 408 when the client did not send the body
// before the read deadline, 400 for a broken body.
func readWebhookBody(w http.ResponseWriter, r *http.Request, budget *bodyBudget, maxBytes int64) (*webhookBody, int) {
	if r.ContentLength > maxBytes {
		return nil, http.StatusRequestEntityTooLarge
	}
	b := &webhookBody{budget: budget}
	if err := b.readFrom(http.MaxBytesReader(w, r.Body, maxBytes), r.ContentLength); err != nil {
		b.release()
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return nil, http.StatusRequestEntityTooLarge
		case errors.Is(err, errBudgetSpent):
			return nil, http.StatusServiceUnavailable
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, http.StatusRequestTimeout
		}
		return nil, http.StatusBadRequest
	}
	return b, 0
}

// readFrom reads rd to its end into chunks; length is the declared length, or
// -1 when unknown.
func (b *webhookBody) readFrom(rd io.Reader, length int64) error {
	for {
		if b.n == len(b.chunks)*bodyChunk { // no room left: a new chunk
			if int64(b.n) == length { // all declared bytes are in: no chunk for the EOF
				return nil
			}
			if !b.budget.take(bodyChunk) {
				return errBudgetSpent
			}
			b.charged += bodyChunk
			b.chunks = append(b.chunks, b.budget.chunks.Get().(*[bodyChunk]byte))
		}
		k, err := rd.Read(b.chunks[len(b.chunks)-1][b.n%bodyChunk:])
		b.n += k
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// parts returns the body as the slices of its chunks, in order.
func (b *webhookBody) parts() [][]byte {
	parts := make([][]byte, len(b.chunks))
	for i, c := range b.chunks {
		parts[i] = c[:min(bodyChunk, b.n-i*bodyChunk)]
	}
	return parts
}

// verify reports whether the body carries Meta's signature.
func (b *webhookBody) verify(header string, secret []byte) bool {
	return webhook.VerifyParts(header, secret, b.parts()...)
}

// bytes returns the body in one slice: its only chunk, or a pooled copy (then
// the chunks go back to the pool at once; the charge stays until release).
func (b *webhookBody) bytes() []byte {
	switch {
	case b.flat != nil:
		return (*b.flat)[:b.n]
	case len(b.chunks) == 0:
		return nil
	case len(b.chunks) == 1:
		return b.chunks[0][:b.n]
	}
	flat, _ := b.budget.flats.Get().(*[]byte)
	if flat == nil || cap(*flat) < b.n {
		buf := make([]byte, 0, b.n)
		flat = &buf
	}
	*flat = (*flat)[:0]
	for _, p := range b.parts() {
		*flat = append(*flat, p...)
	}
	b.flat = flat
	b.putChunks()
	return *flat
}

// release gives the body's memory back to the pools and its charge back to
// the budget. The body's bytes must not be used afterwards.
func (b *webhookBody) release() {
	b.putChunks()
	if b.flat != nil {
		b.budget.flats.Put(b.flat)
		b.flat = nil
	}
	b.budget.give(b.charged)
	b.charged = 0
}

func (b *webhookBody) putChunks() {
	for _, c := range b.chunks {
		b.budget.chunks.Put(c)
	}
	b.chunks = nil
}
