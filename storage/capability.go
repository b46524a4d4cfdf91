package storage

import (
	"context"
	"io"
)

// The optional capabilities of a store, beyond Store: a backend implements
// those it has, a decorator (storage/faulty, a test's wrapper) implements
// Unwrapper, and whoever needs one finds it with UnwrapAs, which looks through
// the decorators. They are all here, so that a new decorator needs forward
// none of them by hand.

// Unwrapper is implemented by decorators of a Store: Unwrap returns the store
// they decorate.
type Unwrapper interface {
	Unwrap() Store
}

// UnwrapAs returns the first store of the chain st, st.Unwrap(), … that
// implements T (one of the capabilities below), and whether there is one. A
// decorator that implements T itself is found before the store it decorates.
func UnwrapAs[T any](st Store) (T, bool) {
	for st != nil {
		if c, ok := st.(T); ok {
			return c, true
		}
		u, ok := st.(Unwrapper)
		if !ok {
			break
		}
		st = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Shared is implemented by stores that several server replicas write at once
// (Redis). A server on such a store re-reads what it caches of another
// replica's writes (business state, policies) and decides the rows of a stream
// one number at a time, since another replica may hold the next row's number.
type Shared interface {
	// SharedByReplicas tells whether other replicas may write the store too.
	SharedByReplicas() bool
}

// IsShared tells whether st, or the store it decorates, is shared by replicas.
func IsShared(st Store) bool {
	s, ok := UnwrapAs[Shared](st)
	return ok && s.SharedByReplicas()
}

// SecretKeeper is implemented by stores that keep the secrets their replicas
// share. The secret that keys the hashes a server stores (dedup keys,
// suppressions) must be the same in every replica, so it is kept in the store:
// the first caller creates a random one (at least 32 bytes), every later caller
// gets the same.
type SecretKeeper interface {
	SharedSecret(ctx context.Context, name string) ([]byte, error)
	// SharedValue stores value under name unless a value is stored there
	// already, and returns the stored one: the first replica's value wins, and
	// a replica whose value differs can tell (the hash secret's fingerprint,
	// which replicas configured with different secrets would disagree on).
	SharedValue(ctx context.Context, name string, value []byte) ([]byte, error)
}

// Pinger is implemented by stores reached over a network that can fail in part
// (one Redis master of several): Ping tells whether the store answers at all.
type Pinger interface {
	Ping(ctx context.Context) error
}

// SpaceGuard is implemented by stores that watch the disk under them and refuse
// writes, with an error wrapping ErrNoSpace, while its free space is below the
// headroom the engine needs for its own work (Badger writes through memory
// mappings, where a full disk is a crash rather than an error). Redis manages its
// own disk and has none.
type SpaceGuard interface {
	// Space tells how the disk stood at the store's last look; ok is false when
	// the store does not watch it (in memory, or on a system it cannot ask).
	Space() (sp Space, ok bool)
}

// Space is what a SpaceGuard saw of its disk.
type Space struct {
	// Free is the space available on the filesystem of the store, in bytes.
	Free int64
	// Headroom is the free space the store keeps for its engine; writes are
	// refused while Free is below it.
	Headroom int64
	// Writable is false while writes are refused.
	Writable bool
}

// Backuper is implemented by stores that write an online, consistent backup of
// themselves (Badger): the records changed since version since (0 for all) to
// w, returning the version the backup holds.
type Backuper interface {
	Backup(ctx context.Context, w io.Writer, since uint64) (uint64, error)
}

// RecordCacher is implemented by stores that keep a cache of recipients'
// records in front of their engine (Badger with record_cache): RecordCache
// tells what it has done; ok is false when the store has none.
type RecordCacher interface {
	RecordCache() (st RecordCacheStats, ok bool)
}

// RecordCacheStats is what a store's record cache has done since the store
// opened.
type RecordCacheStats struct {
	// Hits and Misses count the reads of a recipient's record that found it
	// cached and those that did not: a check's (GetContact: the key filter's
	// answers for keys never stored are neither) and the read of every update
	// (a reservation's, a report's), whose misses include numbers not stored
	// yet.
	Hits, Misses uint64
	// Bytes is what the cached records take, by the cache's own count;
	// Limit is the most it holds (record_cache).
	Bytes, Limit int64
}
