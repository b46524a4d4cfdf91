package badger

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/internal/bloom"
	"github.com/sendguard/sendguard/storage/internal/stripe"
)

var (
	_ storage.Store      = (*Store)(nil)
	_ storage.Backuper   = (*Store)(nil)
	_ storage.SpaceGuard = (*Store)(nil)
)

// DefaultGCInterval is how often the value-log GC runs when Options.GCInterval is 0.
const DefaultGCInterval = 5 * time.Minute

// Options configure Open.
type Options struct {
	// Dir is the directory of the database (created if missing). Required unless
	// InMemory.
	Dir string
	// InMemory keeps everything in memory (tests); Dir must be empty.
	InMemory bool
	// Logger receives Badger's warnings and errors and the store's own; nil means
	// slog.Default().
	Logger *slog.Logger
	// SyncWrites makes every commit wait for an fsync. Off, a commit survives a
	// process crash but not a power loss or kernel panic.
	SyncWrites bool
	// GCInterval is how often value-log GC runs: 0 means DefaultGCInterval, a
	// negative value turns it off. It never runs in memory.
	GCInterval time.Duration
	// DiskHeadroom is the free space (bytes) below which writes are refused with
	// storage.ErrNoSpace, so that Badger never writes to a full disk through its
	// memory mappings (space.go); 0 computes it from the store's size.
	DiskHeadroom int64
	// RecordCache is the size in bytes of the cache of recipients' records
	// (cache.go) that reads of recently seen numbers are served from; 0 means
	// none.
	RecordCache int64

	// disk, when not nil, replaces the filesystem the space guard asks (tests).
	disk disk
	// filterLeast is the fewest keys the key filter is sized for: 0 means
	// filterMinKeys (tests set a few, to make the filter grow).
	filterLeast int
	// loadGate, when not nil, holds back the loading of the key filter until it is
	// closed (tests).
	loadGate <-chan struct{}
}

const (
	// contactStripes and businessStripes are the numbers of in-process locks that
	// serialise updates of one number (one business): enough that unrelated
	// numbers rarely share one. Powers of two.
	contactStripes  = 1024
	businessStripes = 64
	// maxAttempts bounds the retries of a transaction that conflicts with a
	// concurrent one (possible despite the stripes: two numbers' updates may share
	// a dedup key, and another process may open the same database in a test).
	maxAttempts = 8

	// memTableSize and valueLogFileSize are Badger's (badgerOptions); the space
	// guard sizes its headroom from them.
	memTableSize     = 16 << 20
	valueLogFileSize = 64 << 20
)

// Store is a storage.Store on Badger. Create it with Open; it is safe for
// concurrent use.
type Store struct {
	db  *badger.DB
	log *slog.Logger

	seed     maphash.Seed
	contacts stripe.Locks
	business stripe.Locks

	// mu guards closed. Every method registers in inflight under mu.RLock (only for
	// that instant, so a method may be called from inside another's callback);
	// Close sets closed and then waits for inflight to drain.
	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	// stopBackground ends the value-log GC and the table advice (runGC,
	// runAdvise); background waits for them.
	stopBackground context.CancelFunc
	background     sync.WaitGroup

	// keys is the filter of the keys the store holds (filter.go).
	keys keyFilter

	// space refuses writes while the disk is nearly full (space.go); nil in
	// memory and where the disk cannot be asked.
	space *spaceGuard

	// cache holds recently read and written contact records (cache.go); nil
	// when Options.RecordCache is 0.
	cache *recordCache
}

// Open opens (or creates) a store and starts its value-log GC and the loading of
// its key filter (filter.go).
func Open(opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.InMemory != (opts.Dir == "") {
		return nil, errors.New("storage/badger: set exactly one of Options.Dir and Options.InMemory")
	}
	if opts.RecordCache < 0 {
		return nil, errors.New("storage/badger: Options.RecordCache is negative")
	}
	if opts.DiskHeadroom < 0 {
		return nil, errors.New("storage/badger: Options.DiskHeadroom is negative")
	}
	if !opts.InMemory {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("%w: create %q: %w", storage.ErrUnavailable, opts.Dir, err)
		}
	}
	d, err := diskOf(opts)
	if err != nil {
		return nil, err
	}
	db, err := badger.Open(badgerOptions(opts, log))
	if err != nil {
		return nil, fmt.Errorf("%w: open badger in %q: %w", storage.ErrUnavailable, opts.Dir, err)
	}
	var space *spaceGuard
	if d != nil {
		space = newSpaceGuard(d, tableSizes(db), opts.DiskHeadroom, log)
	}
	if err := migrate(db, log, space); err != nil {
		_ = db.Close()
		return nil, err
	}
	s := &Store{
		db:             db,
		log:            log,
		seed:           maphash.MakeSeed(),
		contacts:       stripe.New(contactStripes),
		business:       stripe.New(businessStripes),
		stopBackground: func() {},
		space:          space,
		cache:          newRecordCache(opts.RecordCache),
	}
	s.startFilter(opts.filterLeast, opts.loadGate)
	every := opts.GCInterval
	if every == 0 {
		every = DefaultGCInterval
	}
	if !opts.InMemory {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopBackground = cancel
		if every > 0 {
			s.background.Add(1)
			go s.runGC(ctx, every)
		}
		if space != nil {
			s.background.Add(1)
			go func() {
				defer s.background.Done()
				space.run(ctx)
			}()
		}
		s.startAdvise(ctx, opts.Dir)
	}
	return s, nil
}

// badgerOptions tunes Badger for sendguard: many small values (a relationship is
// a few hundred bytes to a few KB, rewritten on every send) on a small machine
// (2 cores, a few hundred MB of RAM for the whole service).
func badgerOptions(opts Options, log *slog.Logger) badger.Options {
	o := badger.DefaultOptions(opts.Dir)
	if opts.InMemory {
		o = badger.DefaultOptions("").WithInMemory(true)
	}
	o = o.
		// Badger's logs go to slog, warnings and errors only (its INFO is a line per
		// compaction and flush).
		WithLogger(slogAdapter{log}).
		WithSyncWrites(opts.SyncWrites).
		// 16 MB memtables (default 64 MB), at most 3 of them (default 5): 48 MB of
		// write buffer instead of 320 MB. Each flush makes a small L0 table, which
		// is cheap with values this small.
		WithMemTableSize(memTableSize).
		WithNumMemtables(3).
		// Values up to 1 MB (Badger v4's default and its most) stay in the LSM
		// tree next to their keys: a read is one lookup with no value-log
		// indirection, and a rewritten relationship's old versions are dropped by
		// compaction rather than left in the value log for GC. A record is a few
		// hundred bytes to a few KB; the longest history a policy keeps
		// (validator.MaxSends sends with long refs) is a few hundred KB, and an
		// in-memory store refuses any value over the threshold.
		WithValueThreshold(1 << 20).
		// The value log then only holds the rare oversized value; 64 MB files
		// (default 1 GB) let GC reclaim space in small steps.
		WithValueLogFileSize(valueLogFileSize).
		// Snappy compression (the default) with a 32 MB block cache (default 256
		// MB; compression needs one) for decompressed blocks of the hot numbers.
		// Measured with `sendguard bench` (docs/performance.md): records compress
		// 3.3 times (96 instead of 319 bytes per stored number at 10 M), so the
		// tables the page cache must hold for reads to stay off the disk are 0.9
		// instead of 3 GB. Without compression a check costs less CPU at 1 M
		// numbers (stream +40 %), but at 10 M the p99 is the same and the
		// stream gains little; a 256 MB cache gained under 10 % for 224 MB.
		WithBlockCacheSize(32 << 20).
		// Badger's own expvar counters (gets, bloom hits per level) take a lock
		// on every read; sendguard exports its own metrics and reads none of them.
		WithMetricsEnabled(false).
		// Tables of 2 MB (Badger's default for the base level) at L1 and below
		// (TableSizeMultiplier 1, below), where Badger doubles them at each
		// level below the base (16 MB at the bottom of a 10 M store). A
		// compaction holds each table it builds in memory until it is written:
		// its blocks uncompressed and, beside them, room for each block's
		// worst-case compression (a table's size counts its compressed blocks,
		// so that is about 7 times its size at our 3.3:1, in buffers that
		// double as they grow), with up to 8 more builders in flight per
		// compaction. With 16 MB tables the builders of the flow at 10 M
		// numbers held 1.55 to 1.75 GB of heap at its peaks; with 2 MB, about
		// 0.5 GB (docs/performance.md, Update 10). L0 is unchanged: its tables
		// are flushed memtables, and an L0-to-L0 compaction builds one table of
		// all it merges.
		WithBaseTableSize(2 << 20).
		// Two compactors for two cores (default 4; Badger needs at least 2).
		WithNumCompactors(2).
		// Goroutines used by Stream (backups): one per core (default 8).
		WithNumGoroutines(2)
	o.TableSizeMultiplier = 1 // no option method
	return o
}

// slogAdapter routes Badger's Logger to slog at warning level and above.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Errorf(format string, args ...any) {
	a.l.Error(strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
}

func (a slogAdapter) Warningf(format string, args ...any) {
	a.l.Warn(strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
}

func (slogAdapter) Infof(string, ...any)  {}
func (slogAdapter) Debugf(string, ...any) {}

// runGC runs value-log GC every interval until ctx ends. Each round rewrites
// value-log files while at least half of a file is garbage, and while the disk
// has room above the headroom for a file's rewrite (GC writes through Badger, not
// through the space guard).
func (s *Store) runGC(ctx context.Context, every time.Duration) {
	defer s.background.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for ctx.Err() == nil && s.space.allows(valueLogFileSize) {
			err := s.db.RunValueLogGC(0.5)
			if err == nil {
				continue // a file was rewritten; try the next
			}
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				s.log.Warn("badger value-log GC failed", "err", err)
			}
			break
		}
	}
}

// Close stops the GC and the key filter's loader, waits for calls in progress, and
// closes the database. It is idempotent; every later call of a method returns an
// error wrapping storage.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()

	s.stopBackground()
	s.background.Wait()
	s.stopFilter()
	s.inflight.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("%w: close badger: %w", storage.ErrUnavailable, err)
	}
	return nil
}

// DB returns the underlying database (for backups). It must not be used after
// Close, nor to write: a key written through it bypasses the store's key filter,
// and the store's reads may not find it.
func (s *Store) DB() *badger.DB { return s.db }

var errClosed = fmt.Errorf("%w: store is closed", storage.ErrUnavailable)

// enter registers a call in progress; the caller must call s.inflight.Done().
func (s *Store) enter() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	s.inflight.Add(1)
	return nil
}

// unavailable wraps an engine error.
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: badger %s: %w", storage.ErrUnavailable, op, err)
}

// txn is a transaction of the store: reads skip the keys its key filter rules
// out, and writes add their keys to the filter before staging them (filter.go).
type txn struct {
	// Txn is nil when view ruled out the key f reads: then nothing is read.
	*badger.Txn
	keys *keyFilter
	// use is the filter a write's reads consult, taken before the transaction's
	// read timestamp; nil when none is loaded yet, and in a read (view asked
	// the filter already).
	use *bloom.Filter
	// st is the filter state a write registered in; nil in a read.
	st *filterState
	// staged counts the bytes a write has staged, for the space guard; nil in a
	// read. Writes stage through set and del only, which count them.
	staged *int64
	// cache is the store's record cache in a write (nil in a read, and when the
	// store has none); records notes the contact keys the write staged, with
	// their new values (nil: deleted), for the cache to take after the commit.
	cache   *recordCache
	records *[]recordWrite
}

// recordWrite is a contact record a write staged: its key and new value (nil
// when deleted).
type recordWrite struct {
	key, val []byte
}

// mayHave tells whether key may be in the transaction's snapshot; false means it
// is certainly not.
func (t txn) mayHave(key []byte) bool {
	switch {
	case t.Txn == nil:
		return false
	case t.use == nil || t.use.MayContain(key):
		return true
	default:
		// Ruled out, unless a newer filter was put in use meanwhile: a write that
		// added its key only to that one may be in the snapshot.
		return !t.keys.stillInUse(t.use)
	}
}

// view runs f in a read transaction that reads key only (nil: f reads what it
// likes, such as a scan). When the key filter rules key out, f runs without a
// transaction (t.Txn nil: f finds nothing); otherwise key is read from Badger
// without asking the filter again (its bits are never cleared: it would say
// "maybe" again). f's own errors are returned as they are (f wraps engine errors
// itself); an error of Badger's View is wrapped.
func (s *Store) view(op string, key []byte, f func(t txn) error) error {
	t := txn{keys: &s.keys}
	if use := s.keys.use(); key != nil && use != nil && !use.MayContain(key) {
		// No such key was committed when the filter was taken (filter.go): the
		// read takes effect then, without a transaction.
		return f(t)
	}
	var inner error
	err := s.db.View(func(bt *badger.Txn) error {
		t.Txn = bt
		inner = f(t)
		return inner
	})
	if inner != nil {
		return inner
	}
	if err != nil {
		return unavailable(op, err)
	}
	return nil
}

// update runs f in a read-write transaction and commits it, retrying a conflicting
// commit up to maxAttempts times (f is called again each time). f's own errors
// are returned as they are (f wraps engine errors itself; an error of a caller's
// callback passes through untouched); commit errors are wrapped. The write is
// registered with the key filter until it has committed or failed.
//
// A transaction that staged writes is admitted by the space guard before it
// commits: while the disk is nearly full it is dropped and errNoSpace returned.
// One that staged nothing (a duplicate event, a check that reserved nothing)
// commits as a read does.
func (s *Store) update(ctx context.Context, op string, f func(t txn) error) error {
	st := s.keys.writer()
	defer st.writers.Add(-1)
	// The contact records every attempt staged: after the commit the cache takes
	// the last attempt's; otherwise it drops them all (a failed commit may have
	// been applied in part, as far as this process knows).
	var records, touched []recordWrite
	if s.cache != nil {
		defer func() {
			for _, r := range touched {
				s.cache.invalidate(r.key)
			}
		}()
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		var inner error
		err := s.db.Update(func(bt *badger.Txn) error {
			var staged int64
			records = records[:0]
			t := txn{Txn: bt, keys: &s.keys, use: st.use, st: st, staged: &staged}
			if s.cache != nil {
				t.cache, t.records = s.cache, &records
			}
			inner = f(t)
			if inner == nil && staged > 0 {
				inner = s.space.admit(staged + txnOverhead)
			}
			return inner
		})
		if err == nil && inner == nil {
			for _, r := range records {
				s.cache.set(r.key, r.val)
			}
			return nil
		}
		touched = append(touched, records...)
		switch {
		case inner != nil:
			return inner
		case !errors.Is(err, badger.ErrConflict):
			return unavailable(op, err)
		case attempt == maxAttempts:
			return fmt.Errorf("%w: badger %s: %d attempts: %w", storage.ErrConflict, op, attempt, err)
		}
		// Back off a little, more each time, so that the conflicting writer can
		// finish.
		t := time.NewTimer(time.Duration(attempt) * 100 * time.Microsecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
