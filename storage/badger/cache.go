package badger

import (
	"bytes"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/sendguard/sendguard/storage"
)

// The record cache keeps recipients' records as they are stored (the encoded
// contact record at c\0<id>, record.go), so that a check of a recently seen
// number costs a map lookup and a decode instead of Badger's point read (the
// memtables, every level's bloom filter, a table's block index, the block cache or
// Snappy). It caches bytes, not decoded structs: every read decodes its own
// Contact, so no caller can change what another reads, and the cache does not
// depend on what a relationship holds.
//
// It is coherent by construction on a store that one process owns:
//
//   - every write of a contact record goes through Store.update under the stripe
//     lock of its id (UpdateContact, UpdateContacts, DeleteContact), and the
//     transaction notes each contact key it sets or deletes (txn.set, txn.del);
//     after the commit, still under the lock, the cache takes the new value (or
//     drops the key), and after a failed or uncertain commit it drops every key
//     the attempts touched. So a reader that starts after a write was
//     acknowledged finds the new value or nothing;
//   - a reader that misses fills the cache with what Badger gave it only if no
//     write of that key's slot ran since the miss (a generation counter per slot,
//     read at the miss and compared at the fill under the shard's lock, which a
//     write takes too): an older value read before a write committed can never
//     replace the newer one the write put in;
//   - expiry needs nothing: a record's parts carry their own expiries, which
//     every read checks against the clock as it does for Badger's bytes; a key
//     that Badger expired (its longest-lived part is over) decodes from the cache
//     as a record with no live part, which is what a missing key is;
//   - the store's other writers of contact records run before it serves: the
//     migration of an old layout (in Open, before the cache exists) and Restore
//     (into a directory no open store holds).
//
// Missing keys are not cached: the key filter (filter.go) already answers them
// without a read.
//
// It lives in the backend rather than in a decorator of storage.Store (the
// house style for caches) because its coherence rests on the backend's own
// serialisation: the stripe lock under which each record is written, and the
// transaction that knows which records a batch staged. A decorator would need
// a lock of its own around every update and could not see a batch's writes.

const (
	// cacheShards splits the cache so that the two cores' readers rarely wait for
	// each other's lock. A power of two.
	cacheShards = 64
	// cacheGens is how many generation counters a shard keeps (keys share them:
	// a write makes a concurrent miss of any key of its slot skip its fill).
	cacheGens = 64
	// cacheEntryOverhead is what an entry costs besides its key and value: the
	// map's slot, the entry with its list links and headers.
	cacheEntryOverhead = 128
)

// recordCache is a byte-bounded LRU of contact records, sharded by key.
type recordCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
	hits   atomic.Uint64
	misses atomic.Uint64
	used   atomic.Int64
	limit  int64
}

type cacheShard struct {
	mu    sync.Mutex
	m     map[string]*cacheEntry
	lru   cacheEntry // sentinel: lru.next is the most recently used
	size  int64
	limit int64
	gens  [cacheGens]uint64
	_     [64]byte // keeps neighbouring shards' locks off one cache line
}

type cacheEntry struct {
	key        string
	val        []byte
	prev, next *cacheEntry
}

func (e *cacheEntry) cost() int64 { return int64(len(e.key)+len(e.val)) + cacheEntryOverhead }

// newRecordCache returns a cache of at most limit bytes, or nil (no cache) when
// limit is not positive.
func newRecordCache(limit int64) *recordCache {
	if limit <= 0 {
		return nil
	}
	c := &recordCache{seed: maphash.MakeSeed(), limit: limit}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.m = make(map[string]*cacheEntry)
		sh.lru.next, sh.lru.prev = &sh.lru, &sh.lru
		sh.limit = limit / cacheShards
	}
	return c
}

// cacheToken is what a miss remembers for its fill: the generation of the
// key's slot at the miss.
type cacheToken uint64

func (c *recordCache) locate(key []byte) (*cacheShard, uint8) {
	h := maphash.Bytes(c.seed, key)
	return &c.shards[h&(cacheShards-1)], uint8((h >> 32) & (cacheGens - 1))
}

// get returns the cached record at key (ok true), which the caller must not
// change, and counts the hit; on a miss it returns the token that fill needs
// (the caller counts the miss once it has read Badger: see missed).
func (c *recordCache) get(key []byte) (val []byte, ok bool, tok cacheToken) {
	sh, slot := c.locate(key)
	sh.mu.Lock()
	e := sh.m[string(key)]
	if e == nil {
		tok = cacheToken(sh.gens[slot])
		sh.mu.Unlock()
		return nil, false, tok
	}
	sh.moveFront(e)
	val = e.val
	sh.mu.Unlock()
	c.hits.Add(1)
	return val, true, tok
}

// missed counts a read that missed the cache and read Badger.
func (c *recordCache) missed() { c.misses.Add(1) }

// peek is get for a writer holding the key's stripe lock (a reservation's or a
// report's read): it counts the hit or the miss too, but needs no token (the
// writer's own commit updates the cache).
func (c *recordCache) peek(key []byte) ([]byte, bool) {
	sh, _ := c.locate(key)
	sh.mu.Lock()
	e := sh.m[string(key)]
	if e == nil {
		sh.mu.Unlock()
		c.misses.Add(1)
		return nil, false
	}
	sh.moveFront(e)
	val := e.val
	sh.mu.Unlock()
	c.hits.Add(1)
	return val, true
}

// fill caches val, read from Badger after the miss that returned tok, unless a
// write of the key's slot ran since. val must be the caller's own copy.
func (c *recordCache) fill(key, val []byte, tok cacheToken) {
	sh, slot := c.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gens[slot] != uint64(tok) {
		return
	}
	c.putLocked(sh, key, val)
}

// set records a committed write: key now holds val (nil: the key was deleted).
// The caller holds the key's stripe lock, so writes of one key reach the cache
// in their commits' order.
func (c *recordCache) set(key, val []byte) {
	sh, slot := c.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gens[slot]++
	if val == nil {
		c.removeLocked(sh, key)
		return
	}
	c.putLocked(sh, key, bytes.Clone(val))
}

// invalidate drops key, after a write whose outcome is not known.
func (c *recordCache) invalidate(key []byte) { c.set(key, nil) }

func (c *recordCache) putLocked(sh *cacheShard, key, val []byte) {
	c.removeLocked(sh, key)
	e := &cacheEntry{key: string(key), val: val}
	cost := e.cost()
	if cost > sh.limit/4 {
		return // a record this large would push out too many others
	}
	sh.m[e.key] = e
	e.prev, e.next = &sh.lru, sh.lru.next
	e.prev.next, e.next.prev = e, e
	sh.size += cost
	c.used.Add(cost)
	for sh.size > sh.limit {
		c.unlinkLocked(sh, sh.lru.prev)
	}
}

func (c *recordCache) removeLocked(sh *cacheShard, key []byte) {
	if e := sh.m[string(key)]; e != nil {
		c.unlinkLocked(sh, e)
	}
}

func (c *recordCache) unlinkLocked(sh *cacheShard, e *cacheEntry) {
	delete(sh.m, e.key)
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	cost := e.cost()
	sh.size -= cost
	c.used.Add(-cost)
}

func (sh *cacheShard) moveFront(e *cacheEntry) {
	if sh.lru.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = &sh.lru, sh.lru.next
	e.prev.next, e.next.prev = e, e
}

// RecordCache implements storage.RecordCacher: the record cache's counters; ok
// is false when the store has none (Options.RecordCache 0).
func (s *Store) RecordCache() (st storage.RecordCacheStats, ok bool) {
	c := s.cache
	if c == nil {
		return storage.RecordCacheStats{}, false
	}
	return storage.RecordCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Bytes: c.used.Load(), Limit: c.limit}, true
}
