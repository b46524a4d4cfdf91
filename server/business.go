package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
	"github.com/sendguard/sendguard/validator/keyword"
)

// business caches one business's policy and business-level state. Checks read an
// immutable snapshot without locks; writers hold mu and publish a new snapshot.
// In one process the cache is the only writer of a business's state; on a store
// shared by replicas, refresh reads back what the others wrote.
type business struct {
	id   string
	mu   sync.Mutex // serialises writes of policy and state, and messaging-limit reservations
	snap atomic.Pointer[bizSnapshot]
}

type bizSnapshot struct {
	policy    validator.Policy
	overrides *sgv1.Policy
	optOut    *keyword.Matcher
	optIn     *keyword.Matcher
	state     validator.Business // never mutated once published
}

func newSnapshot(defaults validator.Policy, overrides *sgv1.Policy, state validator.Business) (*bizSnapshot, error) {
	p, err := mergePolicy(defaults, overrides)
	if err != nil {
		return nil, err
	}
	if overrides == nil {
		overrides = &sgv1.Policy{}
	}
	return &bizSnapshot{
		policy:    p,
		overrides: overrides,
		optOut:    keyword.NewMatcher(p.OptOutKeywords),
		optIn:     keyword.NewMatcher(p.OptInKeywords),
		state:     state,
	}, nil
}

type businesses struct {
	store    storage.Store
	defaults validator.Policy
	shared   bool // other replicas write the store too
	log      *slog.Logger
	mu       sync.RWMutex
	m        map[string]*business
}

// get returns the cached business, loading its policy and state on first use.
func (bs *businesses) get(ctx context.Context, id string) (*business, error) {
	bs.mu.RLock()
	b := bs.m[id]
	bs.mu.RUnlock()
	if b != nil {
		return b, nil
	}
	snap, err := bs.load(ctx, id)
	if err != nil {
		return nil, err
	}
	nb := &business{id: id}
	nb.snap.Store(snap)
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b := bs.m[id]; b != nil {
		return b, nil
	}
	bs.m[id] = nb
	return nb, nil
}

// load reads a business's policy and state from the store.
func (bs *businesses) load(ctx context.Context, id string) (*bizSnapshot, error) {
	overrides, err := storedOverrides(ctx, bs.store, id)
	if err != nil {
		return nil, err
	}
	state, err := bs.store.GetBusiness(ctx, id)
	if err != nil {
		return nil, err
	}
	snap, err := newSnapshot(bs.defaults, overrides, state)
	if err != nil {
		// A stored policy that no longer validates (e.g. stricter limits): fall back
		// to the defaults rather than refusing every check of the business.
		bs.log.WarnContext(ctx, "stored policy no longer validates: using the deployment defaults until SetPolicy", "business_id", id, "err", err)
		snap, _ = newSnapshot(bs.defaults, nil, state)
	}
	return snap, nil
}

// refresh reloads every cached business from the store and publishes what it
// read, unless a writer of this process published in the meantime (its snapshot
// is at least as new). The store is read without holding the business's lock, so
// a slow store does not hold up reservations, and refreshConcurrency businesses
// at a time, so that a platform with thousands of businesses is refreshed within
// its interval. A business whose reload fails keeps its snapshot; the first error
// is returned after the others were tried.
func (bs *businesses) refresh(ctx context.Context) error {
	bs.mu.RLock()
	all := make([]*business, 0, len(bs.m))
	for _, b := range bs.m {
		all = append(all, b)
	}
	bs.mu.RUnlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, refreshConcurrency)
	errs := make([]error, len(all))
	for i, b := range all {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			old := b.snap.Load()
			snap, err := bs.load(ctx, b.id)
			if err != nil {
				errs[i] = err
				return
			}
			b.snap.CompareAndSwap(old, snap) // not over a snapshot a writer published meanwhile
		})
	}
	wg.Wait()
	return cmp.Or(errs...)
}

// refreshConcurrency bounds the businesses one refresh reads at once.
const refreshConcurrency = 16

// setPolicy computes new overrides from the current ones, stores them and publishes
// them.
func (bs *businesses) setPolicy(ctx context.Context, b *business, change func(cur *sgv1.Policy) (*sgv1.Policy, error)) (*bizSnapshot, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.snap.Load()
	base := cur.overrides
	if bs.shared {
		// Another replica may have changed the policy since this one cached it:
		// start from the stored overrides, not the cached ones.
		stored, err := storedOverrides(ctx, bs.store, b.id)
		if err != nil {
			return nil, err
		}
		base = stored
	}
	overrides, err := change(base)
	if err != nil {
		return nil, err
	}
	snap, err := newSnapshot(bs.defaults, overrides, cur.state)
	if err != nil {
		return nil, invalidArg("policy.%v", err)
	}
	raw, err := proto.Marshal(overrides)
	if err != nil {
		return nil, err
	}
	if err := bs.store.PutPolicy(ctx, b.id, raw); err != nil {
		return nil, err
	}
	b.snap.Store(snap)
	return snap, nil
}

// updateState changes the business-level state in the store and publishes it.
func (bs *businesses) updateState(ctx context.Context, b *business, fn func(*validator.Business)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bs.updateStateLocked(ctx, b, fn)
}

func (bs *businesses) updateStateLocked(ctx context.Context, b *business, fn func(*validator.Business)) error {
	next, err := bs.store.UpdateBusiness(ctx, b.id, func(st *validator.Business) error {
		fn(st)
		return nil
	})
	if err != nil {
		return err
	}
	ns := *b.snap.Load()
	ns.state = next
	b.snap.Store(&ns)
	return nil
}

// storedOverrides reads a business's policy overrides from the store (empty when
// none are stored).
func storedOverrides(ctx context.Context, store storage.Store, id string) (*sgv1.Policy, error) {
	raw, err := store.GetPolicy(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return &sgv1.Policy{}, nil
	case err != nil:
		return nil, err
	}
	overrides := &sgv1.Policy{}
	if err := proto.Unmarshal(raw, overrides); err != nil {
		return nil, fmt.Errorf("stored policy of %q is corrupt: %w", id, err)
	}
	return overrides, nil
}
