package badger

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/storagetest"
	"github.com/sendguard/sendguard/validator"
)

func openWith(t testing.TB, o Options) *Store {
	t.Helper()
	o.Logger = quietLogger()
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitLoaded waits until the key filter is in use, no load is in progress, and
// none is about to start (the filter in use is not full).
func waitLoaded(t testing.TB, s *Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := s.keys.cur.Load()
		if st.use != nil && st.fill == nil && !st.use.Full() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("key filter not loaded after 30 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConformanceKeyFilter runs the conformance suite with the key filter in
// use from the first call, never in use (its load held back), and sized for a
// handful of keys so that it grows while the suite runs.
func TestConformanceKeyFilter(t *testing.T) {
	t.Run("loaded", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Store {
			s := openMem(t)
			waitLoaded(t, s)
			return s
		})
	})
	t.Run("loading", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Store {
			return openWith(t, Options{InMemory: true, loadGate: make(chan struct{})})
		})
	})
	t.Run("growing", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Store {
			return openWith(t, Options{InMemory: true, filterLeast: 4})
		})
	})
}

// record is one record of every kind the filter is consulted for, written by
// write and looked up by find (which reports whether every part was found).
type kind struct {
	write func(t testing.TB, s *Store, i int)
	find  func(t testing.TB, s *Store, i int) bool
}

func fresh(i int) storage.ContactKey {
	return storage.ContactKey{Business: "biz", ID: fmt.Sprintf("+5511%09d", i)}
}

// filteredPerRecord is how many keys the filter holds per record index i of
// every kind: one each (dedup's is written by contact's update).
var filteredPerRecord = len(kinds)

var kinds = map[string]kind{
	"contact": {
		write: func(t testing.TB, s *Store, i int) {
			err := s.UpdateContact(t.Context(), fresh(i), fmt.Sprint("wamid.", i), func(c *storage.Contact) (storage.Write, error) {
				c.Rel.PairStreak, c.Facts.EcoStreak = 1, 1
				return storage.Write{Rel: true, Facts: true, RelTTL: time.Hour}, nil
			})
			if err != nil {
				t.Error(err)
			}
		},
		find: func(t testing.TB, s *Store, i int) bool {
			c, err := s.GetContact(t.Context(), fresh(i))
			if err != nil {
				t.Error(err)
			}
			return c.RelFound && c.FactsFound && c.Rel.PairStreak == 1 && c.Facts.EcoStreak == 1
		},
	},
	"dedup": {
		// The dedup key of a contact's update (written by "contact").
		write: func(testing.TB, *Store, int) {},
		find: func(t testing.TB, s *Store, i int) bool {
			err := s.UpdateContact(t.Context(), fresh(i), fmt.Sprint("wamid.", i), func(*storage.Contact) (storage.Write, error) {
				return storage.Write{}, nil
			})
			if err != nil && !errors.Is(err, storage.ErrDuplicate) {
				t.Error(err)
			}
			return errors.Is(err, storage.ErrDuplicate)
		},
	},
	"link": {
		write: func(t testing.TB, s *Store, i int) {
			if err := s.SetLink(t.Context(), "biz", fmt.Sprint("BR.", i), fresh(i).ID); err != nil {
				t.Error(err)
			}
		},
		find: func(t testing.TB, s *Store, i int) bool {
			n, err := s.GetLink(t.Context(), "biz", fmt.Sprint("BR.", i))
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				t.Error(err)
			}
			return n == fresh(i).ID
		},
	},
	"suppression": {
		write: func(t testing.TB, s *Store, i int) {
			if err := s.PutSuppression(t.Context(), "biz", fmt.Sprint("h", i)); err != nil {
				t.Error(err)
			}
		},
		find: func(t testing.TB, s *Store, i int) bool {
			ok, err := s.HasSuppression(t.Context(), "biz", fmt.Sprint("h", i))
			if err != nil {
				t.Error(err)
			}
			return ok
		},
	},
	"policy": {
		write: func(t testing.TB, s *Store, i int) {
			if err := s.PutPolicy(t.Context(), fmt.Sprint("biz-", i), []byte{8, 1}); err != nil {
				t.Error(err)
			}
		},
		find: func(t testing.TB, s *Store, i int) bool {
			p, err := s.GetPolicy(t.Context(), fmt.Sprint("biz-", i))
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				t.Error(err)
			}
			return len(p) == 2
		},
	},
	"business": {
		write: func(t testing.TB, s *Store, i int) {
			if _, err := s.UpdateBusiness(t.Context(), fmt.Sprint("biz-", i), func(b *validator.Business) error {
				b.Templates = map[string][]validator.TemplateState{"t": {{Pauses: 1}}}
				return nil
			}); err != nil {
				t.Error(err)
			}
		},
		find: func(t testing.TB, s *Store, i int) bool {
			b, err := s.GetBusiness(t.Context(), fmt.Sprint("biz-", i))
			if err != nil {
				t.Error(err)
			}
			return len(b.Templates["t"]) == 1 && b.Templates["t"][0].Pauses == 1
		},
	},
}

// writeAll writes record i of every kind.
func writeAll(t testing.TB, s *Store, i int) {
	for _, r := range kinds {
		r.write(t, s, i)
	}
}

// checkAll checks that records [from, to) of every kind are found, and that
// record to (never written) is not.
func checkAll(t *testing.T, s *Store, from, to int) {
	t.Helper()
	for name, r := range kinds {
		for i := from; i < to; i++ {
			if !r.find(t, s, i) {
				t.Fatalf("%s %d written but not found", name, i)
			}
		}
		if name != "dedup" && r.find(t, s, to) { // a dedup lookup records the key
			t.Fatalf("%s %d found but never written", name, to)
		}
	}
}

// TestKeyFilterFindsWrites writes records of every kind before, while and
// after the filter loads (its load held back, then let go) and finds each.
func TestKeyFilterFindsWrites(t *testing.T) {
	gate := make(chan struct{})
	s := openWith(t, Options{InMemory: true, loadGate: gate})
	for i := range 20 {
		writeAll(t, s, i)
	}
	if s.keys.use() != nil {
		t.Fatal("key filter in use before its load")
	}
	checkAll(t, s, 0, 20)
	close(gate)
	for i := 20; i < 40; i++ {
		writeAll(t, s, i)
	}
	waitLoaded(t, s)
	for i := 40; i < 60; i++ {
		writeAll(t, s, i)
	}
	checkAll(t, s, 0, 60)
}

// TestKeyFilterSkipsEngine shows that reads rely on the filter once it is
// loaded: a key written behind the store's back (through DB) is not found,
// and a key written through the store is.
func TestKeyFilterSkipsEngine(t *testing.T) {
	s := openMem(t)
	waitLoaded(t, s)
	k := fresh(1)
	if err := s.DB().Update(func(txn *badger.Txn) error { return txn.Set(contactKey(k.ID), []byte{0xff}) }); err != nil {
		t.Fatal(err)
	}
	// The record does not even decode: were it read, GetContact would fail.
	if c, err := s.GetContact(t.Context(), k); err != nil || c.RelFound {
		t.Fatalf("GetContact of a key the filter never saw: %+v, %v; want not found without a read", c, err)
	}
	writeAll(t, s, 2)
	checkAll(t, s, 2, 3)
}

// TestKeyFilterReopen reopens a store and finds every record before its filter
// is loaded (reads go to Badger), while writes are added, and after.
func TestKeyFilterReopen(t *testing.T) {
	dir := t.TempDir()
	s := openWith(t, Options{Dir: dir, filterLeast: 64})
	for i := range 300 {
		writeAll(t, s, i)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	gate := make(chan struct{})
	s = openWith(t, Options{Dir: dir, filterLeast: 64, loadGate: gate})
	checkAll(t, s, 0, 300)
	for i := 300; i < 320; i++ {
		writeAll(t, s, i)
	}
	close(gate)
	waitLoaded(t, s)
	checkAll(t, s, 0, 320)
	// Sized from Badger's key counts or, when those missed the memtables, grown
	// after the scan: either way large enough for what the store holds.
	if use := s.keys.use(); use.Full() || use.Cap() < 300*filteredPerRecord {
		t.Fatalf("filter for %d keys holds %d after reopening %d records", use.Cap(), use.Len(), 320*filteredPerRecord)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Once more, with the load let go at once.
	s = openWith(t, Options{Dir: dir})
	checkAll(t, s, 0, 320)
	waitLoaded(t, s)
	checkAll(t, s, 0, 320)
}

// TestKeyFilterGrows writes many times more keys than the filter was sized for:
// it is replaced by bigger ones, and every record stays found.
func TestKeyFilterGrows(t *testing.T) {
	s := openWith(t, Options{InMemory: true, filterLeast: 16})
	waitLoaded(t, s)
	first := s.keys.use()
	for i := range 500 {
		writeAll(t, s, i)
		if i%50 == 49 {
			checkAll(t, s, 0, i+1)
		}
	}
	waitLoaded(t, s)
	checkAll(t, s, 0, 500)
	if use := s.keys.use(); use == first || use.Cap() < 500*filteredPerRecord || use.Full() {
		t.Fatalf("after 500 records: filter for %d keys holding %d (first one for %d)", use.Cap(), use.Len(), first.Cap())
	}
}

// TestKeyFilterRace has writers create fresh records of every kind while readers
// look up records at random, on a reopened store whose filter loads during the
// race and is sized for a few keys, so that it is replaced by bigger ones while
// the race runs. A record whose write had returned before its read started must
// be found. Run with -race.
func TestKeyFilterRace(t *testing.T) {
	dir := t.TempDir()
	const before, writers, perWriter = 200, 4, 150
	s := openWith(t, Options{Dir: dir})
	for i := range before {
		writeAll(t, s, i)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openWith(t, Options{Dir: dir, filterLeast: 32})

	var done [before + writers*perWriter]atomic.Bool
	for i := range before {
		done[i].Store(true)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := before + w; i < len(done); i += writers {
				writeAll(t, s, i)
				done[i].Store(true)
			}
		})
	}
	var stop atomic.Bool
	var reads, found atomic.Int64
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for !stop.Load() && !t.Failed() {
				i := rand.IntN(len(done))
				for name, r := range kinds {
					if name == "dedup" {
						continue // its lookup writes
					}
					written := done[i].Load() // before the read starts
					ok := r.find(t, s, i)
					reads.Add(1)
					if ok {
						found.Add(1)
					}
					if written && !ok {
						t.Errorf("%s %d written before the read started, not found", name, i)
					}
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	readers.Wait()
	t.Logf("%d reads, %d found; filter for %d keys", reads.Load(), found.Load(), s.keys.use().Cap())
	waitLoaded(t, s)
	checkAll(t, s, 0, len(done))
}

// TestKeyFilterReplacedDuringRead is a read that took the filter in use just
// before a bigger one replaced it, and whose snapshot holds writes made after
// that (which added their keys to the new filter only): it must find them.
func TestKeyFilterReplacedDuringRead(t *testing.T) {
	s := openWith(t, Options{InMemory: true, filterLeast: 16})
	waitLoaded(t, s)
	old := s.keys.use()
	s.keys.grow <- struct{}{} // a bigger filter, as when the old one is full
	for s.keys.use() == old {
		time.Sleep(time.Millisecond)
	}
	waitLoaded(t, s)
	for i := range 50 {
		kinds["suppression"].write(t, s, i)
	}
	err := s.db.View(func(bt *badger.Txn) error {
		tx := txn{Txn: bt, keys: &s.keys, use: old}
		for i := range 50 {
			if ok, err := tx.exists(suppressionKey("biz", fmt.Sprint("h", i))); err != nil || !ok {
				t.Fatalf("suppression %d, written after its read's filter was replaced: found %v, %v", i, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
