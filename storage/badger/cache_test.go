package badger

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// bump is an update that adds one to the number's EcoStreak and writes the facts.
func bump(c *storage.Contact) (storage.Write, error) {
	c.Facts.EcoStreak++
	return storage.Write{Facts: true}, nil
}

func TestRecordCacheServesReadsAndTakesWrites(t *testing.T) {
	ctx := context.Background()
	s := openCached(t, "", 1<<20)
	k := storage.ContactKey{Business: "b", ID: "+5511987654321"}
	if err := s.UpdateContact(ctx, k, "", func(c *storage.Contact) (storage.Write, error) {
		c.Rel.Senders = []validator.SenderState{{Sender: "s1"}}
		c.Facts.EcoStreak = 1
		return storage.Write{Rel: true, Facts: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	// The write went into the cache: the first read is a hit.
	c, err := s.GetContact(ctx, k)
	if err != nil || !c.RelFound || c.Facts.EcoStreak != 1 {
		t.Fatalf("GetContact = %+v, %v", c, err)
	}
	st, _ := s.RecordCache()
	if st.Hits != 1 || st.Misses != 1 || st.Bytes <= 0 {
		t.Fatalf("after a new number's write and its read: %+v, want one miss (the write's read) and one hit", st)
	}
	// What a read returns is its own: changing it changes no later read.
	c.Rel.Senders[0].Sender = "changed"
	c.Facts.EcoStreak = 99
	if c, _ := s.GetContact(ctx, k); c.Rel.Senders[0].Sender != "s1" || c.Facts.EcoStreak != 1 {
		t.Fatalf("a read's changes reached the cache: %+v", c)
	}
	// Updates and batches are seen at once.
	if err := s.UpdateContact(ctx, k, "", bump); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateContacts(ctx, []storage.ContactUpdate{{Key: k, Fn: bump}, {Key: k, Fn: bump}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.GetContact(ctx, k); c.Facts.EcoStreak != 4 {
		t.Fatalf("EcoStreak = %d after three bumps, want 4", c.Facts.EcoStreak)
	}
	// A deletion drops it: the read finds nothing.
	if _, found, err := s.DeleteContact(ctx, k); err != nil || !found {
		t.Fatalf("DeleteContact = %v, %v", found, err)
	}
	if c, err := s.GetContact(ctx, k); err != nil || c.RelFound || c.FactsFound {
		t.Fatalf("after DeleteContact: %+v, %v", c, err)
	}
}

func TestRecordCacheFillsOnRead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openDisk(t, dir)
	k := storage.ContactKey{Business: "b", ID: "+5511987654321"}
	if err := s.UpdateContact(ctx, k, "", bump); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s = openCached(t, dir, 1<<20)
	for i := range 3 {
		if c, err := s.GetContact(ctx, k); err != nil || c.Facts.EcoStreak != 1 {
			t.Fatalf("read %d: %+v, %v", i, c, err)
		}
	}
	if st, _ := s.RecordCache(); st.Misses != 1 || st.Hits != 2 {
		t.Fatalf("three reads of a stored record: %+v, want one miss and two hits", st)
	}
	// A number never stored is ruled out by the key filter (once it is loaded):
	// neither a hit nor a miss, and nothing is cached.
	waitFilter(t, s)
	before, _ := s.RecordCache()
	if c, err := s.GetContact(ctx, storage.ContactKey{Business: "b", ID: "+5511900000000"}); err != nil || c.FactsFound {
		t.Fatalf("unknown number: %+v, %v", c, err)
	}
	if st, _ := s.RecordCache(); st != before {
		t.Fatalf("an unknown number changed the cache: %+v → %+v", before, st)
	}
}

// waitFilter waits (bounded) until the store's key filter is loaded.
func waitFilter(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.keys.use() == nil {
		if time.Now().After(deadline) {
			t.Fatal("key filter not loaded within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A read that missed, and read Badger before a write committed, must not put
// what it read into the cache after the write did.
func TestRecordCacheFillLosesToWrite(t *testing.T) {
	c := newRecordCache(1 << 20)
	key := contactKey("+5511987654321")
	if _, ok, _ := c.get(key); ok {
		t.Fatal("hit in an empty cache")
	}
	_, _, tok := c.get(key)         // the reader misses …
	c.set(key, []byte("new"))       // … a write commits and reaches the cache …
	c.fill(key, []byte("old"), tok) // … and the reader's older value arrives.
	if v, ok, _ := c.get(key); !ok || string(v) != "new" {
		t.Fatalf("cached %q, %v; want the write's value", v, ok)
	}
	// The same when the write deleted the key.
	_, _, tok = c.get(contactKey("+5511900000001"))
	c.set(contactKey("+5511900000001"), nil)
	c.fill(contactKey("+5511900000001"), []byte("old"), tok)
	if v, ok, _ := c.get(contactKey("+5511900000001")); ok {
		t.Fatalf("cached %q after a deletion", v)
	}
	// Without a write in between the fill is taken.
	_, _, tok = c.get(contactKey("+5511900000002"))
	c.fill(contactKey("+5511900000002"), []byte("read"), tok)
	if v, ok, _ := c.get(contactKey("+5511900000002")); !ok || string(v) != "read" {
		t.Fatalf("cached %q, %v; want the read's value", v, ok)
	}
}

func TestRecordCacheIsBounded(t *testing.T) {
	const limit = 256 << 10
	c := newRecordCache(limit)
	val := make([]byte, 300)
	for i := range 20000 {
		c.set(contactKey(fmt.Sprintf("+55119%08d", i)), val)
		if u := c.used.Load(); u > limit {
			t.Fatalf("after %d records the cache holds %d bytes, over its %d", i+1, u, limit)
		}
	}
	// The most recent records are kept, the oldest evicted.
	if _, ok, _ := c.get(contactKey(fmt.Sprintf("+55119%08d", 19999))); !ok {
		t.Fatal("the last record written was evicted")
	}
	if _, ok, _ := c.get(contactKey(fmt.Sprintf("+55119%08d", 0))); ok {
		t.Fatal("the first of 20,000 records is still cached in 256 KB")
	}
	var sum int64
	for i := range c.shards {
		sh := &c.shards[i]
		n := 0
		for e := sh.lru.next; e != &sh.lru; e = e.next {
			sum += e.cost()
			n++
		}
		if n != len(sh.m) {
			t.Fatalf("shard %d: %d entries listed, %d mapped", i, n, len(sh.m))
		}
	}
	if sum != c.used.Load() {
		t.Fatalf("entries cost %d bytes, the cache counts %d", sum, c.used.Load())
	}
	if newRecordCache(0) != nil {
		t.Fatal("a cache of 0 bytes exists")
	}
}

// Concurrent writers and readers of the same numbers: a read that starts after
// an update was acknowledged sees it (EcoStreak never goes back from what the
// writer had acknowledged when the read began), on a cache small enough to
// evict all the time.
func TestRecordCacheNeverStale(t *testing.T) {
	ctx := context.Background()
	s := openCached(t, "", 16<<10)
	const numbers, rounds = 64, 50
	acked := make([]atomic.Int64, numbers)
	key := func(i int) storage.ContactKey {
		return storage.ContactKey{Business: "b", ID: fmt.Sprintf("+551198765%04d", i)}
	}
	var (
		wg   sync.WaitGroup
		errs = make(chan error, 16)
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				for i := w; i < numbers; i += 2 {
					var err error
					if r%3 == 0 {
						_, err = s.UpdateContacts(ctx, []storage.ContactUpdate{{Key: key(i), Fn: bump}})
					} else {
						err = s.UpdateContact(ctx, key(i), "", bump)
					}
					if err != nil {
						errs <- err
						return
					}
					acked[i].Add(1)
				}
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds * 4 {
				i := (r * 7) % numbers
				want := acked[i].Load()
				c, err := s.GetContact(ctx, key(i))
				if err != nil {
					errs <- err
					return
				}
				if int64(c.Facts.EcoStreak) < want {
					errs <- fmt.Errorf("number %d: read %d after %d updates were acknowledged", i, c.Facts.EcoStreak, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range numbers {
		if c, _ := s.GetContact(ctx, key(i)); c.Facts.EcoStreak != rounds {
			t.Errorf("number %d: EcoStreak %d after %d updates", i, c.Facts.EcoStreak, rounds)
		}
	}
}

func TestRecordCacheOption(t *testing.T) {
	if _, err := Open(Options{InMemory: true, RecordCache: -1}); err == nil {
		t.Fatal("a negative RecordCache was taken")
	}
	s := openMem(t)
	if _, ok := s.RecordCache(); ok {
		t.Fatal("a store opened without RecordCache has a cache")
	}
}
