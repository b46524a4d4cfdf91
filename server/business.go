package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
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
	id string
	// mu serialises writes of policy and state, and messaging-limit
	// reservations. It is one of businesses.locks, shared by every entry the
	// business ever has in the cache, so that an entry evicted while a writer
	// holds it cannot be written beside its replacement.
	mu   *sync.Mutex
	snap atomic.Pointer[bizSnapshot]
}

type bizSnapshot struct {
	policy    validator.Policy
	overrides *sgv1.Policy
	optOut    *keyword.Matcher
	optIn     *keyword.Matcher
	state     validator.Business // never mutated once published
	// tierApplies is set when neither the business's policy nor the
	// deployment's sets a messaging limit: Meta's tier (state.Tier, learned
	// from business_capability_update) is then the limit.
	tierApplies bool
}

// withTier makes Meta's tier the snapshot's messaging limit where it applies.
func (s *bizSnapshot) withTier() {
	if s.tierApplies {
		s.policy.MessagingLimit = max(s.state.Tier, 0) // -1: unlimited
	}
}

func newSnapshot(defaults validator.Policy, overrides *sgv1.Policy, state validator.Business) (*bizSnapshot, error) {
	p, err := mergePolicy(defaults, overrides)
	if err != nil {
		return nil, err
	}
	if overrides == nil {
		overrides = &sgv1.Policy{}
	}
	snap := &bizSnapshot{
		policy:      p,
		overrides:   overrides,
		optOut:      keyword.NewMatcher(p.OptOutKeywords),
		optIn:       keyword.NewMatcher(p.OptInKeywords),
		state:       state,
		tierApplies: overrides.MessagingLimit == nil && defaults.MessagingLimit == 0,
	}
	snap.withTier()
	return snap, nil
}

// businessLocks is the number of write locks businesses share (a power of two).
const businessLocks = 256

// DefaultBusinessCache is how many businesses are cached when
// Config.BusinessCache is 0.
const DefaultBusinessCache = 10_000

// businesses is the cache of businesses: bounded, so that calls naming ever new
// business_ids cannot grow it. A business with stored state (a policy, template
// pauses, messaging-limit counts) is cached with it; one with none shares the
// defaults' snapshot and is cached apart, so that a flood of unknown ids evicts
// only other unknown ids. Each part keeps about the size most recently used.
//
// An entry is loaded, and a business written, only under the business's lock,
// and writers take the entry that is cached once they hold it (lock): so an
// entry evicted while being written is not replaced by one read before the write.
type businesses struct {
	store    storage.Store
	defaults validator.Policy
	shared   bool // other replicas write the store too
	log      *slog.Logger
	blank    *bizSnapshot // every business with nothing stored
	seed     maphash.Seed
	locks    [businessLocks]sync.Mutex

	mu       sync.RWMutex
	stored   lruMap
	unstored lruMap
	loads    atomic.Int64 // entries read from the store
}

func newBusinesses(store storage.Store, defaults validator.Policy, shared bool, size int, log *slog.Logger) (*businesses, error) {
	blank, err := newSnapshot(defaults, nil, validator.Business{})
	if err != nil {
		return nil, err
	}
	return &businesses{
		store: store, defaults: defaults, shared: shared, log: log, blank: blank,
		seed: maphash.MakeSeed(), stored: newLRUMap(size), unstored: newLRUMap(size),
	}, nil
}

// lockOf is the write lock of business id.
func (bs *businesses) lockOf(id string) *sync.Mutex {
	return &bs.locks[maphash.String(bs.seed, id)&(businessLocks-1)]
}

// get returns the cached business, loading its policy and state on first use.
func (bs *businesses) get(ctx context.Context, id string) (*business, error) {
	if b := bs.peek(id); b != nil {
		return b, nil
	}
	mu := bs.lockOf(id)
	mu.Lock()
	defer mu.Unlock()
	return bs.current(ctx, id)
}

// peek returns the cached business, or nil when it is not cached.
func (bs *businesses) peek(id string) *business {
	bs.mu.RLock()
	b, old := bs.stored.get(id)
	if b == nil {
		b, old = bs.unstored.get(id)
	}
	bs.mu.RUnlock()
	if old {
		bs.mu.Lock()
		bs.stored.use(id)
		bs.unstored.use(id)
		bs.mu.Unlock()
	}
	return b
}

// current returns the cached business, or loads it and caches it; the caller
// holds its lock.
func (bs *businesses) current(ctx context.Context, id string) (*business, error) {
	if b := bs.peek(id); b != nil {
		return b, nil
	}
	snap, stored, err := bs.load(ctx, id)
	if err != nil {
		return nil, err
	}
	b := &business{id: id, mu: bs.lockOf(id)}
	b.snap.Store(snap)
	bs.loads.Add(1)
	bs.cache(b, stored)
	return b, nil
}

// cache puts b in the part of the cache its state belongs to.
func (bs *businesses) cache(b *business, stored bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if stored {
		bs.unstored.remove(b.id)
		bs.stored.put(b)
	} else {
		bs.stored.remove(b.id)
		bs.unstored.put(b)
	}
}

// lock takes b's write lock and returns the business's cached entry: b, or the
// one that replaced it after b was evicted. Unlock its mu when done.
func (bs *businesses) lock(ctx context.Context, b *business) (*business, error) {
	b.mu.Lock()
	cur, err := bs.current(ctx, b.id)
	if err != nil {
		b.mu.Unlock()
		return nil, err
	}
	return cur, nil
}

// load reads a business's policy and state from the store; stored tells whether
// there is any.
func (bs *businesses) load(ctx context.Context, id string) (snap *bizSnapshot, stored bool, err error) {
	overrides, found, err := storedOverrides(ctx, bs.store, id)
	if err != nil {
		return nil, false, err
	}
	state, err := bs.store.GetBusiness(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if !found && len(state.Templates) == 0 && len(state.Reached) == 0 && len(state.Restrictions) == 0 && state.Tier == 0 {
		return bs.blank, false, nil
	}
	snap, err = newSnapshot(bs.defaults, overrides, state)
	if err != nil {
		// A stored policy that no longer validates (e.g. stricter limits): fall back
		// to the defaults rather than refusing every check of the business.
		bs.log.WarnContext(ctx, "stored policy no longer validates: using the deployment defaults until SetPolicy", "business_id", id, "err", err)
		snap, _ = newSnapshot(bs.defaults, nil, state)
	}
	return snap, true, nil
}

// size is the number of cached businesses.
func (bs *businesses) size() int {
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	return bs.stored.len() + bs.unstored.len()
}

// refresh reloads every cached business with stored state from the store and
// publishes what it read (and forgets those without, which another writer may
// have given state since: they are read again when next used), unless a writer of this process published in the meantime (its snapshot
// is at least as new). The store is read without holding the business's lock, so
// a slow store does not hold up reservations, and refreshConcurrency businesses
// at a time, so that a platform with thousands of businesses is refreshed within
// its interval. A business whose reload fails keeps its snapshot; the first error
// is returned after the others were tried.
func (bs *businesses) refresh(ctx context.Context) error {
	bs.mu.Lock()
	all := bs.stored.all()
	bs.unstored.clear()
	bs.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, refreshConcurrency)
	errs := make([]error, len(all))
	for i, b := range all {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			old := b.snap.Load()
			snap, _, err := bs.load(ctx, b.id)
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
	b, err := bs.lock(ctx, b)
	if err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	cur := b.snap.Load()
	base := cur.overrides
	if bs.shared {
		// Another replica may have changed the policy since this one cached it:
		// start from the stored overrides, not the cached ones.
		stored, _, err := storedOverrides(ctx, bs.store, b.id)
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
	bs.cache(b, true)
	return snap, nil
}

// updateState changes the business-level state in the store and publishes it.
func (bs *businesses) updateState(ctx context.Context, b *business, fn func(*validator.Business)) error {
	b, err := bs.lock(ctx, b)
	if err != nil {
		return err
	}
	defer b.mu.Unlock()
	return bs.updateStateLocked(ctx, b, fn)
}

// updateStateLocked is updateState for a caller that holds the business's lock
// and got b from lock.
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
	ns.withTier()
	b.snap.Store(&ns)
	bs.cache(b, true)
	return nil
}

// storedOverrides reads a business's policy overrides from the store (empty, and
// found false, when none are stored).
func storedOverrides(ctx context.Context, store storage.Store, id string) (*sgv1.Policy, bool, error) {
	raw, err := store.GetPolicy(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return &sgv1.Policy{}, false, nil
	case err != nil:
		return nil, false, err
	}
	overrides := &sgv1.Policy{}
	if err := proto.Unmarshal(raw, overrides); err != nil {
		return nil, false, fmt.Errorf("stored policy of %q is corrupt: %w", id, err)
	}
	return overrides, true, nil
}

// lruMap is a map bounded to about size entries that keeps the recently used
// ones: entries go into a current generation; when it holds half the size, it
// becomes the old generation and the one before is dropped, so an entry stays
// while it is used at least once a generation (use moves an old entry back into
// the current one). Its user locks it.
type lruMap struct {
	half     int
	cur, old map[string]*business
}

func newLRUMap(size int) lruMap {
	half := max(size/2, 1)
	return lruMap{half: half, cur: make(map[string]*business), old: map[string]*business{}}
}

// get returns the entry of id, and whether it is in the old generation (then
// call use, under a write lock, to keep it).
func (m *lruMap) get(id string) (*business, bool) {
	if b := m.cur[id]; b != nil {
		return b, false
	}
	b := m.old[id]
	return b, b != nil
}

// use moves id's entry from the old generation to the current one.
func (m *lruMap) use(id string) {
	if b := m.old[id]; b != nil {
		delete(m.old, id)
		m.put(b)
	}
}

func (m *lruMap) put(b *business) {
	delete(m.old, b.id)
	m.cur[b.id] = b
	if len(m.cur) >= m.half {
		m.old, m.cur = m.cur, make(map[string]*business, m.half)
	}
}

func (m *lruMap) remove(id string) {
	delete(m.cur, id)
	delete(m.old, id)
}

func (m *lruMap) clear() {
	m.cur, m.old = make(map[string]*business), map[string]*business{}
}

func (m *lruMap) len() int { return len(m.cur) + len(m.old) }

func (m *lruMap) all() []*business {
	out := make([]*business, 0, m.len())
	for _, g := range []map[string]*business{m.cur, m.old} {
		for _, b := range g {
			out = append(out, b)
		}
	}
	return out
}
