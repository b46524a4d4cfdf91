package badger

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendguard/sendguard/storage/internal/bloom"
)

// Key filter. Most checks in a campaign are for numbers the store holds nothing
// for, and a Badger read of a missing key still costs a transaction (a global
// lock and two channel sends for its read timestamp) and a search of every
// memtable and level. The store therefore keeps a Bloom filter of the keys it
// holds, and a point read of a key the filter
// rules out does not go to Badger; when it rules out every key a read needs, no
// transaction is opened at all.
//
// The rule that keeps it correct: a key is added to the filter before the write
// that creates it is staged in its transaction, so before that write can be
// seen. Deletes and expiry leave keys in the filter (a false positive only costs
// a read), so the filter holds a superset of the keys any snapshot can see, as
// long as it also holds the keys that were in the store before it was made. At
// Open a goroutine loads those (a keys-only scan); until it has finished, reads
// do not use the filter, and writes already add to it. When more keys were added
// than the filter was sized for, the same goroutine loads a bigger one the same
// way while the full one stays in use.
//
// The states the filter goes through are filterStates, each replaced whole. A
// write registers in the current state for its whole transaction and adds its
// keys to that state's filters; after replacing a state, the loader waits until
// the writes registered in the old one have finished. A load's scan starts after
// that wait, so it sees every key that was added only to older filters. Three
// orderings then make reads exact:
//
//   - a filter is put in use only after its scan, and a read takes the filter
//     in use before its transaction takes its read timestamp: the snapshot is
//     newer than the scan, and every key in it was either seen by the scan or
//     written later by a write that added it to this filter first;
//   - a write that starts after a newer filter was put in use adds its keys to
//     that one only, so a read that finds its key missing checks again that its
//     filter is still the one in use (if not, it reads Badger): a write that
//     skipped the read's filter started after that check, hence after the read
//     timestamp, and is not in the snapshot;
//   - a read that opens no transaction (every key ruled out) takes effect at the
//     moment it took the filter: every key committed before then is in it.
//
// In a read-write transaction, a read skipped is a read Badger does not check for
// conflicts at commit. That is safe because every key a write reads is written
// only under an in-process lock that the writing transaction holds: a contact
// record and the dedup keys of its events under its recipient's stripe lock, a
// business's keys under the business's. (An event of another number may carry
// the same dedup key; whether it is recognised is unspecified by storage.Store,
// and a concurrent one may be applied too.) Dedup keys are held like the rest: a
// store receiving status webhooks holds one for every message of the last
// storage.DedupTTL, and every status checks its own, which is new almost
// always.

const (
	// filterBitsPerKey sizes the filter: 16 bits for each key it is sized for
	// (one false positive in 1,100 lookups of absent keys when full).
	filterBitsPerKey = 16
	// filterMinKeys is the fewest keys a filter is sized for (2 MB).
	filterMinKeys = 1 << 20
	// filterRetry is how long the loader waits after a failed scan.
	filterRetry = time.Minute
)

// filterKeys is the number of keys to size a filter for when the store holds about
// n keys: twice that, so that a filter lasts while the store doubles.
func filterKeys(n, least int) int { return max(least, 2*n) }

// filterState is one state of the key filter. Its fields never change.
type filterState struct {
	// use is the filter that reads consult: nil until the first load finished.
	use *bloom.Filter
	// fill is a filter being loaded (the first one, or a bigger one), nil when
	// none is.
	fill *bloom.Filter
	// writers counts the writes in progress that add their keys to these filters.
	writers atomic.Int64
}

// keyFilter is the store's filter of the keys it holds.
type keyFilter struct {
	cur atomic.Pointer[filterState]
	// grow asks the loader for a bigger filter (capacity 1, never blocks).
	grow chan struct{}
	// least is the fewest keys a filter is sized for (filterMinKeys; smaller in
	// tests).
	least int
	// gate, when not nil, holds each load back until it is closed (tests).
	gate <-chan struct{}

	stop context.CancelFunc
	done sync.WaitGroup
}

// use returns the filter that reads consult, or nil while none is loaded. A read
// must call it before its transaction takes its read timestamp.
func (k *keyFilter) use() *bloom.Filter { return k.cur.Load().use }

// loading tells whether a filter is being loaded (a scan of every table).
func (k *keyFilter) loading() bool { return k.cur.Load().fill != nil }

// stillInUse tells whether f is still the filter in use, after a read found a
// key missing from it.
func (k *keyFilter) stillInUse(f *bloom.Filter) bool { return k.cur.Load().use == f }

// writer registers a write in the current state; it must call st.writers.Add(-1)
// once its transaction has committed or failed.
func (k *keyFilter) writer() *filterState {
	for {
		st := k.cur.Load()
		st.writers.Add(1)
		// The loader replaces the state and then reads the old one's count; we
		// count ourselves in and then read the state. With sequentially consistent
		// atomics, either the loader sees our count and waits for us, or we see
		// its new state here and register there instead.
		if k.cur.Load() == st {
			return st
		}
		st.writers.Add(-1)
	}
}

// add adds key to the filters of st, the state its write registered in, and asks
// for a bigger filter when the one in use is full.
func (k *keyFilter) add(st *filterState, key []byte) {
	if st.fill != nil {
		st.fill.Add(key)
	}
	if st.use != nil && st.use.Add(key) && st.fill == nil && st.use.Full() {
		select {
		case k.grow <- struct{}{}:
		default:
		}
	}
}

// replace puts st in place of the current state and waits until the writes
// registered in the old state have finished (or ctx ends).
func (k *keyFilter) replace(ctx context.Context, st *filterState) error {
	old := k.cur.Swap(st)
	wait := 50 * time.Microsecond
	for old.writers.Load() != 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 10*time.Millisecond)
	}
	return nil
}

// tableKeys is about how many keys the store holds: the key counts of Badger's
// tables. Versions of a key not yet compacted away and deleted or expired keys
// count too; keys still in the memtables (at most 48 MB of writes) do not.
func (s *Store) tableKeys() int {
	var n int
	for _, t := range s.db.Tables() {
		n += int(t.KeyCount)
	}
	return n
}

// startFilter makes the first filter, sized from the key counts of Badger's
// tables (at least least keys; 0: filterMinKeys), and starts the goroutine that
// loads it.
func (s *Store) startFilter(least int, gate <-chan struct{}) {
	if least <= 0 {
		least = filterMinKeys
	}
	s.keys.least, s.keys.gate = least, gate
	s.keys.grow = make(chan struct{}, 1)
	s.keys.cur.Store(&filterState{fill: bloom.New(filterKeys(s.tableKeys(), least), filterBitsPerKey)})
	ctx, cancel := context.WithCancel(context.Background())
	s.keys.stop = cancel
	s.keys.done.Add(1)
	go s.runFilter(ctx)
}

// stopFilter stops the loader and waits for it.
func (s *Store) stopFilter() {
	s.keys.stop()
	s.keys.done.Wait()
}

// runFilter loads the filter being filled and puts it in use, then, whenever the
// filter in use is full, fills a bigger one the same way, until ctx ends.
func (s *Store) runFilter(ctx context.Context) {
	defer s.keys.done.Done()
	for {
		if err := s.loadFilter(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			// The filter being filled stays; writes keep adding to it.
			s.log.Warn("badger key filter not loaded; reads go to the engine until it is", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(filterRetry):
			}
			continue
		}
		// A new filter when this one is full, sized from what the store holds
		// then: the full one also counts keys deleted or expired since its load,
		// which the new one leaves out. When the new one is full as soon as it is
		// loaded (the tables' count missed keys), it is sized from what it holds.
		use := s.keys.use()
		keys := use.Len()
		if !use.Full() {
			select {
			case <-ctx.Done():
				return
			case <-s.keys.grow:
			}
			keys = 0
		}
		next := bloom.New(filterKeys(max(s.tableKeys(), keys), s.keys.least), filterBitsPerKey)
		if err := s.keys.replace(ctx, &filterState{use: use, fill: next}); err != nil {
			return
		}
	}
}

// loadFilter scans every key of the store into the filter being filled and puts
// it in use. The caller has made sure that no write registered before the filter
// was being filled is still in progress.
func (s *Store) loadFilter(ctx context.Context) error {
	if s.keys.gate != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.keys.gate:
		}
	}
	f := s.keys.cur.Load().fill
	start := time.Now()
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			n++
			if n%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			f.Add(it.Item().Key())
		}
		return nil
	})
	if err != nil {
		return unavailable("load key filter", err)
	}
	if err := s.keys.replace(ctx, &filterState{use: f}); err != nil {
		return err
	}
	// A request for a bigger filter made while this one was loading is answered
	// by this one, unless it is full already.
	select {
	case <-s.keys.grow:
	default:
	}
	s.log.Info("badger key filter loaded", "keys", f.Len(), "capacity", f.Cap(),
		"bytes", f.Bytes(), "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}
