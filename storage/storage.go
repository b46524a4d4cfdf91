package storage

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/sendguard/sendguard/validator"
)

var (
	// ErrNotFound is returned by the Get methods that name a single optional record
	// (GetLink, GetPolicy) when it does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrDuplicate is returned by UpdateContact when its dedup key was already
	// recorded: the event was applied before and nothing was changed.
	ErrDuplicate = errors.New("storage: duplicate event")
	// ErrUnavailable wraps every failure of the underlying engine (disk full, I/O
	// error, closed store). The server maps it to codes.Unavailable.
	ErrUnavailable = errors.New("storage: unavailable")
	// ErrConflict is returned when an atomic update kept conflicting with concurrent
	// writers after bounded retries. The server maps it to codes.Aborted.
	ErrConflict = errors.New("storage: conflict after retries")
	// ErrNoSpace is wrapped, together with ErrUnavailable, by every write a store
	// refuses because the disk under it is nearly full (see SpaceGuard). Nothing
	// failed: reads go on, and writes are taken again once space is freed.
	ErrNoSpace = errors.New("storage: disk nearly full")
)

// DedupTTL is how long UpdateContact remembers a dedup key (Meta retries webhooks for
// 7 days; DESIGN.md asks for at least 8).
const DedupTTL = 8 * 24 * time.Hour

// ContactKey names one recipient of one business.
type ContactKey struct {
	Business string
	// ID is the canonical E.164 number ("+5511987654321"), or UserIDPrefix + BSUID when
	// no number is known for the user.
	ID string
}

// Number returns the E.164 number of the key, or "" when the key is a BSUID.
func (k ContactKey) Number() string {
	if strings.HasPrefix(k.ID, UserIDPrefix) {
		return ""
	}
	return k.ID
}

// Contact is the stored state of one recipient of one business.
type Contact struct {
	// Rel is the business's relationship with the recipient; zero when RelFound is false.
	Rel      validator.Relationship
	RelFound bool
	// Facts are the number-wide facts shared by every business; zero when FactsFound
	// is false, and always zero for a key that is not a number.
	Facts      validator.NumberFacts
	FactsFound bool
}

// Write tells UpdateContact what to write back. A TTL of zero means the record never
// expires (opt-outs, consent); a positive TTL is rounded up to whole seconds; the
// caller computes TTLs from the state and policy.
type Write struct {
	Rel      bool
	RelTTL   time.Duration
	Facts    bool
	FactsTTL time.Duration
	// SkipDedup leaves the update's dedup key unrecorded, while Rel and Facts are
	// written as asked: the update did not do what the key stands for (a
	// reservation that was not allowed), so the same key may come again.
	SkipDedup bool
}

// TTLUntil turns the time a record stops mattering into a Write TTL: zero (keep
// forever) stays zero; a time already past, or less than an hour away, keeps the
// record an hour, so that a backfill of old events does not write records that
// vanish at once.
func TTLUntil(expires, now time.Time) time.Duration {
	if expires.IsZero() {
		return 0
	}
	if d := expires.Sub(now); d > time.Hour {
		return d
	}
	return time.Hour
}

// ContactUpdate is one update of UpdateContacts: UpdateContact's arguments.
type ContactUpdate struct {
	Key   ContactKey
	Dedup string
	Fn    func(c *Contact) (Write, error)
}

// Store keeps sendguard's state. Every method is safe for concurrent use. Errors from
// the engine wrap ErrUnavailable; a canceled or expired context is returned as
// ctx.Err(), unwrapped.
type Store interface {
	// GetContact reads one recipient: the business's relationship and the
	// number-wide facts, in at most two point reads (one in Badger and in Redis).
	// Missing records are returned as zero values with the Found flags false, not
	// as an error.
	GetContact(ctx context.Context, k ContactKey) (Contact, error)

	// UpdateContact reads the recipient, calls fn and writes back what fn asks for,
	// atomically per number: no concurrent UpdateContact on the same number (for any
	// business) interleaves with it, so a check-and-reserve never loses an update.
	// fn may be called more than once (on a retried conflict) and must not keep
	// pointers into c. If dedupKey is not empty and was recorded before (within
	// DedupTTL), UpdateContact returns ErrDuplicate without calling fn; otherwise the
	// key is recorded in the same atomic write as fn's changes, even when fn writes
	// nothing, unless fn's Write says SkipDedup. An error from fn
	// aborts the update (nothing is written, the dedup key is not recorded) and is
	// returned as is. A dedup key is certain to be recognised when it comes again
	// for the same ContactKey; whether it is for another recipient of the same
	// business is unspecified, so callers put in it what identifies the event (a
	// message id), not the recipient alone. fn may read the store but must not
	// update it (a nested update may wait on the one in progress). Facts in the
	// Write of a key that is not a number are ignored.
	UpdateContact(ctx context.Context, k ContactKey, dedupKey string, fn func(c *Contact) (Write, error)) error

	// UpdateContacts applies several updates as UpdateContact would, in order (an
	// update sees the writes of the updates before it, on the same number too), and
	// commits them in as few atomic writes as the engine allows: a webhook POST of
	// 1,000 events is a handful of writes, not 1,000. It returns one result per
	// update: nil, ErrDuplicate (its dedup key was recorded before, in this batch
	// or earlier), or fn's own error (that update alone is skipped). An engine
	// error fails the call: what was committed before it stays applied (Badger
	// commits a chunk in one transaction, so the failed chunk is not applied at
	// all; Redis commits each update on its own, so part of it may be); applying
	// the batch again is safe when every update carries a dedup key.
	UpdateContacts(ctx context.Context, updates []ContactUpdate) ([]error, error)

	// DeleteContact removes the business's relationship with the recipient, and the
	// number-wide facts too when no other business holds a relationship for that
	// number, atomically per number. It returns the contact as it was just before
	// (read in the same atomic step, so nothing written concurrently is lost
	// unseen) and whether anything existed.
	DeleteContact(ctx context.Context, k ContactKey) (Contact, bool, error)

	// GetLink returns the number linked to a business-scoped user ID for a business,
	// or ErrNotFound.
	GetLink(ctx context.Context, business, userID string) (string, error)
	// SetLink links a business-scoped user ID to a number for a business (no expiry).
	SetLink(ctx context.Context, business, userID, number string) error
	// DeleteLink removes a link; removing a missing link is not an error.
	DeleteLink(ctx context.Context, business, userID string) error

	// PutSuppression records a keyed hash of a forgotten, opted-out recipient (no
	// expiry); HasSuppression tells whether one is recorded; DeleteSuppression
	// removes it (missing is not an error).
	PutSuppression(ctx context.Context, business, hash string) error
	HasSuppression(ctx context.Context, business, hash string) (bool, error)
	DeleteSuppression(ctx context.Context, business, hash string) error

	// GetBusiness returns a business's business-level state (templates, messaging
	// limit counters); the zero value when none is stored.
	GetBusiness(ctx context.Context, business string) (validator.Business, error)
	// UpdateBusiness atomically reads, changes (fn) and writes a business's state;
	// like UpdateContact's, fn may be called more than once and must not update the
	// store. It returns the state as stored after the write: on a store that
	// replicas share, that includes what others added meanwhile (messaging-limit
	// reach counts are added to the stored ones, not compared and set).
	UpdateBusiness(ctx context.Context, business string, fn func(b *validator.Business) error) (validator.Business, error)

	// GetPolicy returns a business's stored policy overrides (an encoded
	// sendguard.v1.Policy), or ErrNotFound. PutPolicy stores them (no expiry).
	GetPolicy(ctx context.Context, business string) ([]byte, error)
	PutPolicy(ctx context.Context, business string, policy []byte) error

	// Close stops background work and closes the store; later calls return
	// ErrUnavailable.
	Close() error
}
