// Package faulty wraps a storage.Store with injectable faults, so that tests can
// show what the server does when its disk fills up or its store fails.
package faulty

import (
	"context"
	"fmt"
	"sync"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// Store fails every call while a fault is set, and passes calls through otherwise.
type Store struct {
	inner storage.Store
	mu    sync.RWMutex
	fault error
	calls int // calls refused while failing
}

var _ storage.Store = (*Store)(nil)

// Wrap returns s with fault injection.
func Wrap(s storage.Store) *Store { return &Store{inner: s} }

// Unwrap implements storage.Unwrapper: the optional capabilities of the store
// it wraps (storage.UnwrapAs) are found through it, and a fault does not touch
// them (a Pinger's Ping, a SpaceGuard's Space answer as the store's own).
func (f *Store) Unwrap() storage.Store { return f.inner }

// Fail makes every later call return cause wrapped in storage.ErrUnavailable, as a
// backend reports an engine failure; Fail(nil) clears the fault.
func (f *Store) Fail(cause error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cause == nil {
		f.fault = nil
		return
	}
	f.fault = fmt.Errorf("%w: injected: %w", storage.ErrUnavailable, cause)
}

// Refused returns how many calls the fault refused.
func (f *Store) Refused() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.calls
}

func (f *Store) check() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fault != nil {
		f.calls++
	}
	return f.fault
}

// GetContact is the wrapped store's, refused while a fault is set.
func (f *Store) GetContact(ctx context.Context, k storage.ContactKey) (storage.Contact, error) {
	if err := f.check(); err != nil {
		return storage.Contact{}, err
	}
	return f.inner.GetContact(ctx, k)
}

// UpdateContact is the wrapped store's, refused while a fault is set.
func (f *Store) UpdateContact(ctx context.Context, k storage.ContactKey, dedup string, fn func(*storage.Contact) (storage.Write, error)) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.inner.UpdateContact(ctx, k, dedup, fn)
}

// UpdateContacts is the wrapped store's, refused while a fault is set.
func (f *Store) UpdateContacts(ctx context.Context, updates []storage.ContactUpdate) ([]error, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	return f.inner.UpdateContacts(ctx, updates)
}

// DeleteContact is the wrapped store's, refused while a fault is set.
func (f *Store) DeleteContact(ctx context.Context, k storage.ContactKey) (storage.Contact, bool, error) {
	if err := f.check(); err != nil {
		return storage.Contact{}, false, err
	}
	return f.inner.DeleteContact(ctx, k)
}

// GetLink is the wrapped store's, refused while a fault is set.
func (f *Store) GetLink(ctx context.Context, business, userID string) (string, error) {
	if err := f.check(); err != nil {
		return "", err
	}
	return f.inner.GetLink(ctx, business, userID)
}

// SetLink is the wrapped store's, refused while a fault is set.
func (f *Store) SetLink(ctx context.Context, business, userID, number string) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.inner.SetLink(ctx, business, userID, number)
}

// DeleteLink is the wrapped store's, refused while a fault is set.
func (f *Store) DeleteLink(ctx context.Context, business, userID string) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.inner.DeleteLink(ctx, business, userID)
}

// PutSuppression is the wrapped store's, refused while a fault is set.
func (f *Store) PutSuppression(ctx context.Context, business, hash string) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.inner.PutSuppression(ctx, business, hash)
}

// HasSuppression is the wrapped store's, refused while a fault is set.
func (f *Store) HasSuppression(ctx context.Context, business, hash string) (bool, error) {
	if err := f.check(); err != nil {
		return false, err
	}
	return f.inner.HasSuppression(ctx, business, hash)
}

// DeleteSuppression is the wrapped store's, refused while a fault is set.
func (f *Store) DeleteSuppression(ctx context.Context, business, hash string) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.inner.DeleteSuppression(ctx, business, hash)
}

// GetBusiness is the wrapped store's, refused while a fault is set.
func (f *Store) GetBusiness(ctx context.Context, business string) (validator.Business, error) {
	if err := f.check(); err != nil {
		return validator.Business{}, err
	}
	return f.inner.GetBusiness(ctx, business)
}

// UpdateBusiness is the wrapped store's, refused while a fault is set.
func (f *Store) UpdateBusiness(ctx context.Context, business string, fn func(*validator.Business) error) (validator.Business, error) {
	if err := f.check(); err != nil {
		return validator.Business{}, err
	}
	return f.inner.UpdateBusiness(ctx, business, fn)
}

// GetPolicy is the wrapped store's, refused while a fault is set.
func (f *Store) GetPolicy(ctx context.Context, business string) ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	return f.inner.GetPolicy(ctx, business)
}

// PutPolicy is the wrapped store's, refused while a fault is set.
func (f *Store) PutPolicy(ctx context.Context, business string, policy []byte) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.inner.PutPolicy(ctx, business, policy)
}

// Close closes the wrapped store (a fault does not stop it closing).
func (f *Store) Close() error { return f.inner.Close() }
