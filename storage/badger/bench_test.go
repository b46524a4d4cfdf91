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
