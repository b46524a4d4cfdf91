package badger

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// benchNumbers is how many distinct numbers the benchmarks spread over.
const benchNumbers = 10_000

// keptSends is how many sends a benchmark relationship keeps (a typical
// marketing recipient under a 3-per-7-days cap plus utility messages).
const keptSends = 10

func benchKey(i int) storage.ContactKey {
	return storage.ContactKey{Business: "biz-1", ID: fmt.Sprintf("+55119%08d", i%benchNumbers)}
}

// reserve is a check-and-reserve: read the recipient, append a send (keeping
// the last keptSends), advance the pair-rate clock, write the relationship back.
func reserve(now time.Time) func(c *storage.Contact) (storage.Write, error) {
	return func(c *storage.Contact) (storage.Write, error) {
		c.Rel.Sends = append(c.Rel.Sends, validator.Send{
			At: now, Ref: "ref-0001", Category: sgv1.Category_CATEGORY_MARKETING,
			Template: "spring_sale_v2", CampaignID: "cmp-2026-05",
		})
		if n := len(c.Rel.Sends); n > keptSends {
			c.Rel.Sends = c.Rel.Sends[n-keptSends:]
		}
		c.Rel.PairTAT = now.Add(6 * time.Second)
		return storage.Write{Rel: true, RelTTL: 7 * 24 * time.Hour}, nil
	}
}

type benchBackend struct {
	name string
	open func(b *testing.B) *Store
}

var benchBackends = []benchBackend{
	{"mem", func(b *testing.B) *Store { return openMem(b) }},
	{"disk", func(b *testing.B) *Store { return openDisk(b, b.TempDir()) }},
	// On disk with a record cache that holds every bench number: the reads
	// and the reservations' reads are served from it.
	{"disk-cached", func(b *testing.B) *Store { return openCached(b, b.TempDir(), 64<<20) }},
}

// populate gives every bench number a relationship with keptSends sends and
// number facts.
func populate(b *testing.B, s *Store) {
	b.Helper()
	now := time.Unix(1_780_000_000, 0).UTC()
	for i := range benchNumbers {
		err := s.UpdateContact(b.Context(), benchKey(i), "", func(c *storage.Contact) (storage.Write, error) {
			for j := range keptSends {
				_, _ = reserve(now.Add(time.Duration(j) * time.Hour))(c)
			}
			c.Facts.LastDeliveredAt = now
			return storage.Write{Rel: true, Facts: true}, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetContact(b *testing.B) {
	benchGet(b, func(n int64) storage.ContactKey { return benchKey(int(n * 7919)) }, true)
}

// BenchmarkGetContactMissing reads numbers the store holds nothing for (most
// of a campaign's), in a store that holds benchNumbers others.
func BenchmarkGetContactMissing(b *testing.B) {
	benchGet(b, func(n int64) storage.ContactKey {
		return storage.ContactKey{Business: "biz-1", ID: fmt.Sprintf("+55118%08d", n)}
	}, false)
}

// benchGet reads key(1), key(2)… from GOMAXPROCS goroutines in a populated
// store of each backend; found says whether the records must be there.
func benchGet(b *testing.B, key func(n int64) storage.ContactKey, found bool) {
	for _, be := range benchBackends {
		s := be.open(b)
		populate(b, s)
		b.Run(be.name, func(b *testing.B) {
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c, err := s.GetContact(b.Context(), key(next.Add(1)))
					if err != nil || c.RelFound != found || (!found && c.FactsFound) {
						b.Fatalf("GetContact: %v (found %v, %v; want %v)", err, c.RelFound, c.FactsFound, found)
					}
				}
			})
		})
	}
}

// BenchmarkUpdateContactReserve runs check-and-reserves from GOMAXPROCS
// goroutines, spread over benchNumbers numbers or all on one hot number.
func BenchmarkUpdateContactReserve(b *testing.B) {
	now := time.Unix(1_780_000_000, 0).UTC()
	fn := reserve(now)
	for _, be := range benchBackends {
		s := be.open(b)
		populate(b, s)
		for _, shape := range []struct {
			name string
			key  func(i int) storage.ContactKey
		}{
			{"distinct", benchKey},
			{"hot", func(int) storage.ContactKey { return benchKey(0) }},
		} {
			b.Run(be.name+"/"+shape.name, func(b *testing.B) {
				var next atomic.Int64
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := s.UpdateContact(b.Context(), shape.key(int(next.Add(7919))), "", fn); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

// BenchmarkUpdateContactsStatuses applies batches of 200 status events (a
// webhook POST's chunk: a new dedup key each, the delivered time noted) to
// the populated numbers, in a store that already holds the dedup keys of
// 100,000 earlier events, from GOMAXPROCS goroutines.
func BenchmarkUpdateContactsStatuses(b *testing.B) {
	now := time.Unix(1_780_000_000, 0).UTC()
	status := func(c *storage.Contact) (storage.Write, error) {
		c.Facts.LastDeliveredAt = now
		return storage.Write{Facts: true}, nil
	}
	const chunk, earlier = 200, 100_000
	for _, be := range benchBackends {
		s := be.open(b)
		populate(b, s)
		updates := make([]storage.ContactUpdate, 0, chunk)
		for i := range earlier {
			updates = append(updates, storage.ContactUpdate{Key: benchKey(i), Dedup: fmt.Sprint("old.", i), Fn: status})
			if len(updates) == chunk {
				if _, err := s.UpdateContacts(b.Context(), updates); err != nil {
					b.Fatal(err)
				}
				updates = updates[:0]
			}
		}
		if err := s.db.Flatten(2); err != nil { // the keys in tables, not only memtables
			b.Fatal(err)
		}
		var next atomic.Int64 // across the runs of b.N: every event new
		b.Run(be.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				updates := make([]storage.ContactUpdate, chunk)
				for pb.Next() {
					for j := range updates {
						n := int(next.Add(1))
						updates[j] = storage.ContactUpdate{Key: benchKey(n * 7919), Dedup: fmt.Sprint("new.", n), Fn: status}
					}
					results, err := s.UpdateContacts(b.Context(), updates)
					if err != nil {
						b.Fatal(err)
					}
					for _, err := range results {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			})
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*chunk), "ns/event")
		})
	}
}
