package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// Run runs the conformance suite. newStore must return a new, empty store for
// each call; Run closes it when the subtest ends (so Close must tolerate a
// second call: it may return nil or an error wrapping storage.ErrUnavailable).
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	open := func(t *testing.T) storage.Store {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil && !errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	for _, tc := range []struct {
		name string
		test func(t *testing.T, s storage.Store)
	}{
		{"MissingContact", testMissingContact},
		{"UpdateThenGet", testUpdateThenGet},
		{"WriteFlags", testWriteFlags},
		{"PerSenderState", testPerSenderState},
		{"FactsSharedAcrossBusinesses", testFactsShared},
		{"UserIDKeyHasNoFacts", testUserIDKey},
		{"Dedup", testDedup},
		{"DedupSkipped", testDedupSkipped},
		{"DedupConcurrent", testDedupConcurrent},
		{"LongHistory", testLongHistory},
		{"FnErrorAborts", testFnErrorAborts},
		{"ConcurrentReserveAllowsOne", testConcurrentReserve},
		{"ConcurrentIncrementsLoseNothing", testConcurrentIncrements},
		{"BatchUpdates", testBatch},
		{"BatchConcurrentWithSingles", testBatchConcurrent},
		{"DeleteContact", testDeleteContact},
		{"Links", testLinks},
		{"Suppressions", testSuppressions},
		{"Business", testBusiness},
		{"BusinessConcurrentUpdates", testBusinessConcurrent},
		{"BusinessRestrictions", testBusinessRestrictions},
		{"BusinessRestrictionsConcurrent", testBusinessRestrictionsConcurrent},
		{"Policies", testPolicies},
		{"AfterClose", testAfterClose},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open(t)) })
	}
	// The TTL test waits on the wall clock; it runs in parallel with nothing else
	// of the suite but keeps its own store.
	t.Run("TTL", func(t *testing.T) { testTTL(t, open(t)) })
}

// at builds a UTC time without a monotonic reading, as decoded values are, so
// that reflect.DeepEqual compares stored and read values equal.
func at(sec int64) time.Time { return time.Unix(sec, 500).UTC() }

const base = 1_780_000_000 // 2026-05-28

const (
	bizA = "biz-a"
	bizB = "biz-b"
)

func relationship() validator.Relationship {
	return validator.Relationship{
		SenderState: validator.SenderState{
			LastInboundAt: at(base - 50),
			PairTAT:       at(base + 6),
		},
		// A keyword lift apart from an earlier consent, and a send that took a
		// messaging-limit slot (issue 14), round-trip too.
		OwnStopAt:      at(base - 150),
		OwnStopReason:  `button "Stop promotions"`,
		OwnStartAt:     at(base - 100),
		OwnStartReason: `keyword "START"`,
		ConsentAt:      at(base - 200),
		ConsentReason:  "web form",
		Sends: []validator.Send{
			{At: at(base - 20), Ref: "r1", MessageID: "wamid.1", Category: sgv1.Category_CATEGORY_MARKETING, Template: "sale", CampaignID: "c1", Reached: true, Slot: true},
			{At: at(base - 10), Ref: "r2", Category: sgv1.Category_CATEGORY_UTILITY, Template: "receipt", Failed: true},
		},
		UserID: "BR.1502576394655843",
		Local:  validator.NumberFacts{ExperimentAt: at(base - 5)},
		Events: []validator.Event{{At: at(base - 10), Text: "failed 131026"}},
	}
}

func facts() validator.NumberFacts {
	return validator.NumberFacts{
		EcoAt:               at(base - 30),
		EcoStreak:           2,
		UndeliverableAt:     at(base - 40),
		UndeliverableStreak: 1,
		LastDeliveredAt:     at(base - 60),
		WaID:                "5215512345678",
	}
}

// set returns an UpdateContact callback that stores rel and f with w.
func set(rel validator.Relationship, f validator.NumberFacts, w storage.Write) func(*storage.Contact) (storage.Write, error) {
	return func(c *storage.Contact) (storage.Write, error) {
		c.Rel, c.Facts = rel, f
		return w, nil
	}
}

var both = storage.Write{Rel: true, Facts: true}

func mustGet(t *testing.T, s storage.Store, k storage.ContactKey) storage.Contact {
	t.Helper()
	c, err := s.GetContact(t.Context(), k)
	if err != nil {
		t.Fatalf("GetContact(%v): %v", k, err)
	}
	return c
}

func mustUpdate(t *testing.T, s storage.Store, k storage.ContactKey, dedup string, fn func(*storage.Contact) (storage.Write, error)) {
	t.Helper()
	if err := s.UpdateContact(t.Context(), k, dedup, fn); err != nil {
		t.Fatalf("UpdateContact(%v, %q): %v", k, dedup, err)
	}
}

func wantContact(t *testing.T, got, want storage.Contact) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("contact:\n got %+v\nwant %+v", got, want)
	}
}

func testMissingContact(t *testing.T, s storage.Store) {
	for _, k := range []storage.ContactKey{
		{Business: bizA, ID: "+5511987654321"},
		{Business: bizA, ID: storage.UserIDPrefix + "BR.123"},
	} {
		wantContact(t, mustGet(t, s, k), storage.Contact{})
	}
	// UpdateContact on a missing contact hands fn the zero Contact.
	k := storage.ContactKey{Business: bizA, ID: "+5511987654321"}
	mustUpdate(t, s, k, "", func(c *storage.Contact) (storage.Write, error) {
		if !reflect.DeepEqual(*c, storage.Contact{}) {
			t.Errorf("fn got %+v for a missing contact, want the zero Contact", *c)
		}
		return storage.Write{}, nil
	})
}

func testUpdateThenGet(t *testing.T, s storage.Store) {
	k := storage.ContactKey{Business: bizA, ID: "+5511987654321"}
	mustUpdate(t, s, k, "", set(relationship(), facts(), both))
	want := storage.Contact{Rel: relationship(), RelFound: true, Facts: facts(), FactsFound: true}
	wantContact(t, mustGet(t, s, k), want)

	// The next update reads what the last one wrote.
	mustUpdate(t, s, k, "", func(c *storage.Contact) (storage.Write, error) {
		wantContact(t, *c, want)
		c.Rel.Sends = append(c.Rel.Sends, validator.Send{At: at(base), Ref: "r3"})
		c.Facts.EcoStreak++
		return both, nil
	})
	want.Rel.Sends = append(want.Rel.Sends, validator.Send{At: at(base), Ref: "r3"})
	want.Facts.EcoStreak++
	wantContact(t, mustGet(t, s, k), want)
}

// testPerSenderState: a relationship's per-sender state (window, free entry
// point, pair rate, Meta's opt-out record, each send's sender) is stored and
// read back whole, and an update that names a new sender keeps the others'.
func testPerSenderState(t *testing.T, s storage.Store) {
	k := storage.ContactKey{Business: bizA, ID: "+5511987654321"}
	rel := relationship()
	rel.ReferralAt, rel.FreeEntryAt = at(base-40), at(base-30)
	rel.Senders = []validator.SenderState{
		{Sender: "106540352242922", MetaStopAt: at(base - 20), LastInboundAt: at(base - 10), PairTAT: at(base + 6), PairStreak: 1, PairLimitedAt: at(base - 5)},
		{Sender: "301234567890123", MetaResumeAt: at(base - 15), ReferralAt: at(base - 12), FreeEntryAt: at(base - 11)},
	}
	rel.Sends[1].Sender = "301234567890123"
	mustUpdate(t, s, k, "", set(rel, facts(), both))
	want := storage.Contact{Rel: rel, RelFound: true, Facts: facts(), FactsFound: true}
	wantContact(t, mustGet(t, s, k), want)

	mustUpdate(t, s, k, "", func(c *storage.Contact) (storage.Write, error) {
		wantContact(t, *c, want)
		c.Rel.State("201234567890123").LastInboundAt = at(base)
		return storage.Write{Rel: true}, nil
	})
	want.Rel.Senders = []validator.SenderState{rel.Senders[0], {Sender: "201234567890123", LastInboundAt: at(base)}, rel.Senders[1]}
	wantContact(t, mustGet(t, s, k), want)
}

func testWriteFlags(t *testing.T, s storage.Store) {
	k := storage.ContactKey{Business: bizA, ID: "+5511987654321"}

	// Write{}: nothing is written.
	mustUpdate(t, s, k, "", set(relationship(), facts(), storage.Write{}))
	wantContact(t, mustGet(t, s, k), storage.Contact{})

	// Only Rel.
	mustUpdate(t, s, k, "", set(relationship(), facts(), storage.Write{Rel: true}))
	wantContact(t, mustGet(t, s, k), storage.Contact{Rel: relationship(), RelFound: true})

	// Only Facts: the relationship keeps its stored value although fn changed c.Rel.
	mustUpdate(t, s, k, "", set(validator.Relationship{OwnStopReason: "not written"}, facts(), storage.Write{Facts: true}))
	wantContact(t, mustGet(t, s, k), storage.Contact{Rel: relationship(), RelFound: true, Facts: facts(), FactsFound: true})
}

func testFactsShared(t *testing.T, s storage.Store) {
	const number = "+5511987654321"
	a := storage.ContactKey{Business: bizA, ID: number}
	b := storage.ContactKey{Business: bizB, ID: number}
	mustUpdate(t, s, a, "", set(relationship(), facts(), both))

	// B has no relationship but sees the number's facts, in GetContact and in fn.
	wantContact(t, mustGet(t, s, b), storage.Contact{Facts: facts(), FactsFound: true})
	mustUpdate(t, s, b, "", func(c *storage.Contact) (storage.Write, error) {
		if !c.FactsFound || !reflect.DeepEqual(c.Facts, facts()) {
			t.Errorf("B's fn got facts %+v (found %v), want A's", c.Facts, c.FactsFound)
		}
		c.Facts.ExperimentAt = at(base)
		return storage.Write{Facts: true}, nil
	})

	// B's change to the facts is A's too; A's relationship is untouched.
	want := facts()
	want.ExperimentAt = at(base)
	wantContact(t, mustGet(t, s, a), storage.Contact{Rel: relationship(), RelFound: true, Facts: want, FactsFound: true})
	// Another number shares nothing.
	wantContact(t, mustGet(t, s, storage.ContactKey{Business: bizA, ID: "+5511987654322"}), storage.Contact{})
}

func testUserIDKey(t *testing.T, s storage.Store) {
	const number = "+5511987654321"
	mustUpdate(t, s, storage.ContactKey{Business: bizA, ID: number}, "", set(relationship(), facts(), both))

	k := storage.ContactKey{Business: bizA, ID: storage.UserIDPrefix + "BR.123"}
	if k.Number() != "" {
		t.Fatalf("Number() of a BSUID key = %q", k.Number())
	}
	// Facts asked for a BSUID key are not written and never read.
	rel := relationship()
	rel.UserID = "BR.123"
	mustUpdate(t, s, k, "", func(c *storage.Contact) (storage.Write, error) {
		if c.FactsFound {
			t.Errorf("fn got facts for a BSUID key")
		}
		c.Rel, c.Facts = rel, facts()
		return both, nil
	})
	wantContact(t, mustGet(t, s, k), storage.Contact{Rel: rel, RelFound: true})
	// The number's own state is untouched.
	wantContact(t, mustGet(t, s, storage.ContactKey{Business: bizA, ID: number}),
		storage.Contact{Rel: relationship(), RelFound: true, Facts: facts(), FactsFound: true})
}

func testDedup(t *testing.T, s storage.Store) {
	k := storage.ContactKey{Business: bizA, ID: "+5511987654321"}
	increment := func(c *storage.Contact) (storage.Write, error) {
		c.Rel.PairStreak++
		return storage.Write{Rel: true}, nil
	}
	mustUpdate(t, s, k, "wamid.1/delivered", increment)

	called := false
	err := s.UpdateContact(t.Context(), k, "wamid.1/delivered", func(c *storage.Contact) (storage.Write, error) {
		called = true
		return increment(c)
	})
	if !errors.Is(err, storage.ErrDuplicate) {
		t.Fatalf("second UpdateContact with one dedup key: err = %v, want ErrDuplicate", err)
	}
	if called {
		t.Fatal("fn was called for a duplicate")
	}

	// Another dedup key, and no dedup key (twice), each apply.
	mustUpdate(t, s, k, "wamid.1/read", increment)
	mustUpdate(t, s, k, "", increment)
	mustUpdate(t, s, k, "", increment)
	if got := mustGet(t, s, k).Rel.PairStreak; got != 4 {
		t.Fatalf("counter = %d after 4 applied updates and a duplicate, want 4", got)
	}

	// The key is remembered even when fn wrote nothing.
	mustUpdate(t, s, k, "wamid.2/sent", func(*storage.Contact) (storage.Write, error) { return storage.Write{}, nil })
	if err := s.UpdateContact(t.Context(), k, "wamid.2/sent", increment); !errors.Is(err, storage.ErrDuplicate) {
		t.Fatalf("dedup key of an update that wrote nothing: err = %v, want ErrDuplicate", err)
	}
}

// testDedupSkipped: an update whose Write says SkipDedup is applied but leaves
// its dedup key free (a reservation that was not allowed may be tried again),
// alone and in a batch.
func testDedupSkipped(t *testing.T, s storage.Store) {
	k := storage.ContactKey{Business: bizA, ID: "+5511987654321"}
	skip := func(c *storage.Contact) (storage.Write, error) {
		c.Rel.PairStreak++
		return storage.Write{Rel: true, SkipDedup: true}, nil
	}
	mustUpdate(t, s, k, "ref-1", skip)
	mustUpdate(t, s, k, "ref-1", skip) // not a duplicate: the key was not recorded
	mustUpdate(t, s, k, "ref-1", func(*storage.Contact) (storage.Write, error) { return storage.Write{SkipDedup: true}, nil })
	mustUpdate(t, s, k, "ref-1", appendSend("reserved")) // this one records it
	if err := s.UpdateContact(t.Context(), k, "ref-1", skip); !errors.Is(err, storage.ErrDuplicate) {
		t.Fatalf("after a recorded update: err = %v, want ErrDuplicate", err)
	}
	if c := mustGet(t, s, k); c.Rel.PairStreak != 2 || len(c.Rel.Sends) != 1 {
		t.Fatalf("counter %d, %d sends; want 2 and 1", c.Rel.PairStreak, len(c.Rel.Sends))
	}

	// In a batch: a skipped key does not make a later update of it a duplicate.
	b := storage.ContactKey{Business: bizA, ID: "+5511987654322"}
	results, err := s.UpdateContacts(t.Context(), []storage.ContactUpdate{
		{Key: b, Dedup: "ref-2", Fn: skip},
		{Key: b, Dedup: "ref-2", Fn: appendSend("reserved")},
		{Key: b, Dedup: "ref-2", Fn: appendSend("again")},
	})
	if err != nil || results[0] != nil || results[1] != nil || !errors.Is(results[2], storage.ErrDuplicate) {
		t.Fatalf("batch: %v %v", results, err)
	}
	if c := mustGet(t, s, b); c.Rel.PairStreak != 1 || len(c.Rel.Sends) != 1 || c.Rel.Sends[0].Ref != "reserved" {
		t.Fatalf("batch stored %+v", c.Rel)
	}
}

// testLongHistory: the longest history a policy keeps (validator.MaxSends sends,
// each with long ids) is stored and read back whole.
func testLongHistory(t *testing.T, s storage.Store) {
	k := storage.ContactKey{Business: bizA, ID: "+5511987654321"}
	rel := relationship()
	rel.Sends = nil
	for i := range validator.MaxSends {
		rel.Sends = append(rel.Sends, validator.Send{
			At: at(base + int64(i)), Ref: fmt.Sprintf("campaign-2026-05/%0200d", i), MessageID: fmt.Sprintf("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjQ%060d", i),
			Category: sgv1.Category_CATEGORY_MARKETING, Template: "spring_sale_v2", CampaignID: "campaign-2026-05",
		})
	}
	mustUpdate(t, s, k, "long", set(rel, facts(), both))
	wantContact(t, mustGet(t, s, k), storage.Contact{Rel: rel, RelFound: true, Facts: facts(), FactsFound: true})
}

func testFnErrorAborts(t *testing.T, s storage.Store) {
	k := storage.ContactKey{Business: bizA, ID: "+5511987654321"}
	boom := errors.New("boom")
	err := s.UpdateContact(t.Context(), k, "wamid.9/failed", func(c *storage.Contact) (storage.Write, error) {
		c.Rel, c.Facts = relationship(), facts()
		return both, boom
	})
	if err != boom { // the contract: fn's error is returned as is
		t.Fatalf("UpdateContact returned %v, want fn's error as is", err)
	}
	wantContact(t, mustGet(t, s, k), storage.Contact{})

	// The dedup key was not recorded: the event can be applied now.
	called := false
	mustUpdate(t, s, k, "wamid.9/failed", func(c *storage.Contact) (storage.Write, error) {
		called = true
		return storage.Write{}, nil
	})
	if !called {
		t.Fatal("fn not called: the aborted update recorded its dedup key")
	}

	// An aborted update of an existing contact leaves it as it was.
	mustUpdate(t, s, k, "", set(relationship(), facts(), both))
	if err := s.UpdateContact(t.Context(), k, "", func(c *storage.Contact) (storage.Write, error) {
		c.Rel.Sends, c.Facts.EcoStreak = nil, 99
		return both, fmt.Errorf("wrapped: %w", boom)
	}); !errors.Is(err, boom) {
		t.Fatalf("UpdateContact returned %v, want fn's error", err)
	}
	wantContact(t, mustGet(t, s, k), storage.Contact{Rel: relationship(), RelFound: true, Facts: facts(), FactsFound: true})
}

// testConcurrentReserve is "40 concurrent reserves give exactly one ALLOW": each
// goroutine reserves only if the number has no send yet.
func testConcurrentReserve(t *testing.T, s storage.Store) {
	const workers = 40
	k := storage.ContactKey{Business: bizA, ID: "+5511987654321"}
	var reserved, failed atomic.Int32
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range workers {
		// Half the workers use another business: atomicity is per number.
		key := k
		if i%2 == 1 {
			key.Business = bizB
		}
		wg.Go(func() {
			start.Wait()
			var mine bool
			err := s.UpdateContact(t.Context(), key, "", func(c *storage.Contact) (storage.Write, error) {
				mine = false // fn may run more than once
				if c.Facts.LastDeliveredAt.IsZero() {
					// The first reserve marks the number; only it may go.
					c.Facts.LastDeliveredAt = at(base + int64(i))
					c.Rel.Sends = append(c.Rel.Sends, validator.Send{At: at(base), Ref: fmt.Sprint(i)})
					mine = true
					return both, nil
				}
				return storage.Write{}, nil
			})
			if err != nil {
				failed.Add(1)
				t.Errorf("worker %d: %v", i, err)
			}
			if err == nil && mine {
				reserved.Add(1)
			}
		})
	}
	start.Done()
	wg.Wait()
	if n := reserved.Load(); n != 1 || failed.Load() != 0 {
		t.Fatalf("%d of %d concurrent reserves succeeded (%d failed), want exactly 1", n, workers, failed.Load())
	}
	sends := len(mustGet(t, s, k).Rel.Sends) + len(mustGet(t, s, storage.ContactKey{Business: bizB, ID: k.ID}).Rel.Sends)
	if sends != 1 {
		t.Fatalf("%d sends stored, want 1", sends)
	}
}

// testDedupConcurrent: one recipient's event delivered many times at once (a
// webhook retried while the first delivery is in flight, a ReportResult sent
// twice), alone and in batches, for several events: each is applied exactly
// once and every other delivery is a duplicate.
func testDedupConcurrent(t *testing.T, s storage.Store) {
	const events, workers = 20, 8
	k := storage.ContactKey{Business: bizA, ID: "+5511987654321"}
	var applied [events]atomic.Int32
	count := func(w, i int, err error) {
		switch {
		case err == nil:
			applied[i].Add(1)
		case !errors.Is(err, storage.ErrDuplicate):
			t.Errorf("worker %d, event %d: %v", w, i, err)
		}
	}
	mark := func(c *storage.Contact) (storage.Write, error) {
		c.Rel.PairStreak++
		return storage.Write{Rel: true}, nil
	}
	var start, wg sync.WaitGroup
	start.Add(1)
	for w := range workers {
		wg.Go(func() {
			start.Wait()
			if w%2 == 0 {
				for i := range events {
					count(w, i, s.UpdateContact(t.Context(), k, fmt.Sprint("wamid.", i, "/read"), mark))
				}
				return
			}
			updates := make([]storage.ContactUpdate, events)
			for i := range updates {
				updates[i] = storage.ContactUpdate{Key: k, Dedup: fmt.Sprint("wamid.", i, "/read"), Fn: mark}
			}
			results, err := s.UpdateContacts(t.Context(), updates)
			if err != nil {
				t.Errorf("worker %d: batch: %v", w, err)
				return
			}
			for i, err := range results {
				count(w, i, err)
			}
		})
	}
	start.Done()
	wg.Wait()
	for i := range applied {
		if n := applied[i].Load(); n != 1 {
			t.Errorf("event %d applied %d times by %d deliveries at once, want 1", i, n, workers)
		}
	}
	if got := mustGet(t, s, k).Rel.PairStreak; got != events {
		t.Fatalf("%d updates stored for %d events, want one each", got, events)
	}
}

func testConcurrentIncrements(t *testing.T, s storage.Store) {
	const workers, each = 50, 20
	const number = "+5511987654321"
	var wg sync.WaitGroup
	for i := range workers {
		k := storage.ContactKey{Business: bizA, ID: number}
		if i%2 == 1 {
			k.Business = bizB
		}
		wg.Go(func() {
			for range each {
				err := s.UpdateContact(t.Context(), k, "", func(c *storage.Contact) (storage.Write, error) {
					c.Rel.PairStreak++
					c.Facts.EcoStreak++ // shared by both businesses
					return both, nil
				})
				if err != nil {
					t.Errorf("UpdateContact: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	a := mustGet(t, s, storage.ContactKey{Business: bizA, ID: number})
	b := mustGet(t, s, storage.ContactKey{Business: bizB, ID: number})
	if got, want := a.Rel.PairStreak+b.Rel.PairStreak, workers*each; got != want {
		t.Errorf("relationship counters sum to %d, want %d", got, want)
	}
	if a.Rel.PairStreak != workers/2*each {
		t.Errorf("business A's counter = %d, want %d", a.Rel.PairStreak, workers/2*each)
	}
	if got, want := a.Facts.EcoStreak, workers*each; got != want {
		t.Errorf("shared facts counter = %d, want %d (lost updates)", got, want)
	}
}

// testTTL needs a record to expire, so it waits on the wall clock: Badger keeps
// expiry in whole Unix seconds against time.Now, and Redis expires on its own
// clock, so no fake clock can stand in. A 1 s TTL is gone within about 2 s.
func testTTL(t *testing.T, s storage.Store) {
	const ttl = time.Second
	short := storage.ContactKey{Business: bizA, ID: "+5511987654321"}
	forever := storage.ContactKey{Business: bizB, ID: "+5511987654322"}
	mustUpdate(t, s, short, "", set(relationship(), facts(), storage.Write{Rel: true, RelTTL: ttl, Facts: true, FactsTTL: ttl}))
	mustUpdate(t, s, forever, "", set(relationship(), facts(), both))

	// Still there right after the write: a TTL never ends early.
	if c := mustGet(t, s, short); !c.RelFound || !c.FactsFound {
		t.Fatalf("record with a %v TTL missing right after the write: %+v", ttl, c)
	}
	deadline := time.Now().Add(ttl + 4*time.Second)
	for {
		c := mustGet(t, s, short)
		if !c.RelFound && !c.FactsFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record with a %v TTL still there after %v: %+v", ttl, ttl+4*time.Second, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantContact(t, mustGet(t, s, forever), storage.Contact{Rel: relationship(), RelFound: true, Facts: facts(), FactsFound: true})
}

func testDeleteContact(t *testing.T, s storage.Store) {
	ctx := t.Context()
	const number = "+1555"
	a := storage.ContactKey{Business: bizA, ID: number}
	b := storage.ContactKey{Business: bizB, ID: number}
	mustUpdate(t, s, a, "", set(relationship(), facts(), both))
	mustUpdate(t, s, b, "", set(relationship(), facts(), storage.Write{Rel: true}))
	// A number that extends this one (and its relationship) must not count as
	// "another business of this number".
	longer := storage.ContactKey{Business: bizA, ID: number + "0"}
	mustUpdate(t, s, longer, "", set(relationship(), facts(), both))

	del := func(k storage.ContactKey, want bool) storage.Contact {
		t.Helper()
		prev, found, err := s.DeleteContact(ctx, k)
		if err != nil {
			t.Fatalf("DeleteContact(%v): %v", k, err)
		}
		if found != want {
			t.Fatalf("DeleteContact(%v) found = %v, want %v", k, found, want)
		}
		return prev
	}

	// A goes, and DeleteContact returns what it held; B still holds the number, so
	// its facts stay.
	wantContact(t, del(a, true), storage.Contact{Rel: relationship(), RelFound: true, Facts: facts(), FactsFound: true})
	wantContact(t, mustGet(t, s, a), storage.Contact{Facts: facts(), FactsFound: true})
	wantContact(t, mustGet(t, s, b), storage.Contact{Rel: relationship(), RelFound: true, Facts: facts(), FactsFound: true})
	del(a, false) // nothing left for A, and B still holds the facts

	// B goes, the last business: the facts go too.
	del(b, true)
	wantContact(t, mustGet(t, s, b), storage.Contact{})
	del(b, false)
	wantContact(t, mustGet(t, s, longer), storage.Contact{Rel: relationship(), RelFound: true, Facts: facts(), FactsFound: true})

	// Facts with no relationship at all are deleted, and that counts as found.
	lone := storage.ContactKey{Business: bizA, ID: "+1666"}
	mustUpdate(t, s, lone, "", set(relationship(), facts(), storage.Write{Facts: true}))
	del(lone, true)
	wantContact(t, mustGet(t, s, lone), storage.Contact{})

	// A BSUID key.
	u := storage.ContactKey{Business: bizA, ID: storage.UserIDPrefix + "BR.123"}
	mustUpdate(t, s, u, "", set(relationship(), facts(), both))
	del(u, true)
	wantContact(t, mustGet(t, s, u), storage.Contact{})
	del(u, false)
}

func testLinks(t *testing.T, s storage.Store) {
	ctx := t.Context()
	if _, err := s.GetLink(ctx, bizA, "BR.1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetLink of a missing link: err = %v, want ErrNotFound", err)
	}
	if err := s.SetLink(ctx, bizA, "BR.1", "+5511987654321"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetLink(ctx, bizA, "BR.1"); err != nil || got != "+5511987654321" {
		t.Fatalf("GetLink = %q, %v", got, err)
	}
	if _, err := s.GetLink(ctx, bizB, "BR.1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a link of business A seen by business B: err = %v", err)
	}
	if err := s.SetLink(ctx, bizA, "BR.1", "+5511987654322"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetLink(ctx, bizA, "BR.1"); err != nil || got != "+5511987654322" {
		t.Fatalf("GetLink after relinking = %q, %v", got, err)
	}
	if err := s.DeleteLink(ctx, bizA, "BR.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetLink(ctx, bizA, "BR.1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetLink after DeleteLink: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteLink(ctx, bizA, "BR.1"); err != nil {
		t.Fatalf("DeleteLink of a missing link: %v", err)
	}
}

func testSuppressions(t *testing.T, s storage.Store) {
	ctx := t.Context()
	has := func(business, hash string, want bool) {
		t.Helper()
		got, err := s.HasSuppression(ctx, business, hash)
		if err != nil || got != want {
			t.Fatalf("HasSuppression(%q, %q) = %v, %v; want %v", business, hash, got, err, want)
		}
	}
	has(bizA, "h1", false)
	if err := s.PutSuppression(ctx, bizA, "h1"); err != nil {
		t.Fatal(err)
	}
	has(bizA, "h1", true)
	has(bizA, "h2", false)
	has(bizB, "h1", false)
	if err := s.PutSuppression(ctx, bizA, "h1"); err != nil {
		t.Fatalf("PutSuppression again: %v", err)
	}
	if err := s.DeleteSuppression(ctx, bizA, "h1"); err != nil {
		t.Fatal(err)
	}
	has(bizA, "h1", false)
	if err := s.DeleteSuppression(ctx, bizA, "h1"); err != nil {
		t.Fatalf("DeleteSuppression of a missing one: %v", err)
	}
}

func business() validator.Business {
	return validator.Business{
		Templates: map[string][]validator.TemplateState{
			"sale": {{PausedAt: at(base), Pauses: 1}},
			"otp":  {{DisabledAt: at(base - 10), OKAt: at(base)}},
			"promo": {
				{Language: "en_US", PausedAt: at(base), Pauses: 2, LiftedAt: at(base), BlockedLast: true},
				{Language: "pt_BR", MarkedAt: at(base + 5), ClearedAt: at(base - 5), DisabledAt: at(base)},
			},
		},
		Tier:    2000,
		TierAt:  at(base - 20),
		Reached: []validator.ReachBucket{{Minute: base / 60, Count: 3}},
		Restrictions: []validator.Restriction{
			{Kind: validator.SenderSpam, Sender: "pn-1", At: at(base), Streak: 2},
			{Kind: validator.SenderSpam, Sender: "pn-2", At: at(base), LiftedAt: at(base + 10)},
			{Kind: validator.AccountLocked, At: at(base - 10), Streak: 1},
		},
	}
}

// testBusinessRestrictions: restrictions changed, added and removed by an
// update are stored as fn left them (sorted by kind, then sender), alongside
// the templates, and UpdateBusiness returns what it stored.
func testBusinessRestrictions(t *testing.T, s storage.Store) {
	ctx := t.Context()
	if _, err := s.UpdateBusiness(ctx, bizA, func(b *validator.Business) error { *b = business(); return nil }); err != nil {
		t.Fatal(err)
	}
	want := business()
	want.Restrictions = []validator.Restriction{
		{Kind: validator.SenderThroughput, Sender: "", At: at(base + 20), Streak: 1},               // added
		{Kind: validator.SenderSpam, Sender: "pn-1", At: at(base + 30), Streak: 3},                 // changed
		{Kind: validator.AccountBusinessInitiated, At: at(base), Streak: 1, Ends: at(base + 3600)}, // added
	} // pn-2's and the lock removed
	got, err := s.UpdateBusiness(ctx, bizA, func(b *validator.Business) error {
		if !reflect.DeepEqual(*b, business()) {
			t.Errorf("fn got %+v, want %+v", *b, business())
		}
		b.Restrictions = slices.Clone(want.Restrictions)
		return nil
	})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("UpdateBusiness = %+v, %v; want %+v", got, err, want)
	}
	if b, err := s.GetBusiness(ctx, bizA); err != nil || !reflect.DeepEqual(b, want) {
		t.Fatalf("GetBusiness = %+v, %v; want %+v", b, err, want)
	}
	if _, err := s.UpdateBusiness(ctx, bizA, func(b *validator.Business) error { b.Restrictions = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	want.Restrictions = nil
	if b, err := s.GetBusiness(ctx, bizA); err != nil || !reflect.DeepEqual(b, want) {
		t.Fatalf("after removing every restriction: %+v, %v; want %+v", b, err, want)
	}
}

// testBusinessRestrictionsConcurrent: concurrent updates of one restriction and
// of templates lose nothing (replicas refresh and write the same record).
func testBusinessRestrictionsConcurrent(t *testing.T, s storage.Store) {
	const workers, each = 10, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				_, err := s.UpdateBusiness(t.Context(), bizA, func(b *validator.Business) error {
					if w%2 == 0 {
						bumpPauses(b)
						return nil
					}
					if len(b.Restrictions) == 0 {
						b.Restrictions = []validator.Restriction{{Kind: validator.SenderSpam, Sender: "pn-1", At: at(base)}}
					}
					b.Restrictions[0].Streak++
					return nil
				})
				if err != nil {
					t.Errorf("UpdateBusiness: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	b, err := s.GetBusiness(t.Context(), bizA)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Restrictions) != 1 || b.Restrictions[0].Streak != workers/2*each || salePauses(&b) != workers/2*each {
		t.Fatalf("after %d concurrent increments of each: %+v (lost updates)", workers/2*each, b)
	}
}

func testBusiness(t *testing.T, s storage.Store) {
	ctx := t.Context()
	if b, err := s.GetBusiness(ctx, bizA); err != nil || !reflect.DeepEqual(b, validator.Business{}) {
		t.Fatalf("GetBusiness of a missing business = %+v, %v; want the zero value", b, err)
	}
	if _, err := s.UpdateBusiness(ctx, bizA, func(b *validator.Business) error {
		if !reflect.DeepEqual(*b, validator.Business{}) {
			t.Errorf("fn got %+v for a missing business", *b)
		}
		*b = business()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if b, err := s.GetBusiness(ctx, bizA); err != nil || !reflect.DeepEqual(b, business()) {
		t.Fatalf("GetBusiness = %+v, %v; want %+v", b, err, business())
	}
	if b, err := s.GetBusiness(ctx, bizB); err != nil || !reflect.DeepEqual(b, validator.Business{}) {
		t.Fatalf("another business = %+v, %v; want the zero value", b, err)
	}

	boom := errors.New("boom")
	if _, err := s.UpdateBusiness(ctx, bizA, func(b *validator.Business) error {
		b.Templates = nil
		return boom
	}); err != boom { // fn's error is returned as is
		t.Fatalf("UpdateBusiness returned %v, want fn's error as is", err)
	}
	if b, err := s.GetBusiness(ctx, bizA); err != nil || !reflect.DeepEqual(b, business()) {
		t.Fatalf("after an aborted update: %+v, %v", b, err)
	}
}

func testBusinessConcurrent(t *testing.T, s storage.Store) {
	const workers, each = 20, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				_, err := s.UpdateBusiness(t.Context(), bizA, func(b *validator.Business) error {
					bumpPauses(b)
					return nil
				})
				if err != nil {
					t.Errorf("UpdateBusiness: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	b, err := s.GetBusiness(t.Context(), bizA)
	if err != nil {
		t.Fatal(err)
	}
	if got := salePauses(&b); got != workers*each {
		t.Fatalf("counter = %d after %d concurrent increments (lost updates)", got, workers*each)
	}
}

func testPolicies(t *testing.T, s storage.Store) {
	ctx := t.Context()
	if _, err := s.GetPolicy(ctx, bizA); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetPolicy of a missing policy: err = %v, want ErrNotFound", err)
	}
	for _, p := range [][]byte{{0x08, 0x01, 0x12, 0x00}, {0x10, 0x02}} {
		if err := s.PutPolicy(ctx, bizA, p); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetPolicy(ctx, bizA)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("GetPolicy = %x, %v; want %x", got, err, p)
		}
	}
	if _, err := s.GetPolicy(ctx, bizB); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("another business's policy: err = %v, want ErrNotFound", err)
	}
	// The store keeps its own copy.
	p := []byte{0x08, 0x03}
	if err := s.PutPolicy(ctx, bizB, p); err != nil {
		t.Fatal(err)
	}
	p[1] = 0x04
	if got, err := s.GetPolicy(ctx, bizB); err != nil || got[1] != 0x03 {
		t.Fatalf("GetPolicy after the caller changed its slice = %x, %v", got, err)
	}
}

func testAfterClose(t *testing.T, s storage.Store) {
	ctx := t.Context()
	k := storage.ContactKey{Business: bizA, ID: "+5511987654321"}
	mustUpdate(t, s, k, "", set(relationship(), facts(), both))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil && !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("second Close: %v", err)
	}
	called := false
	calls := map[string]func() error{
		"GetContact": func() error { _, err := s.GetContact(ctx, k); return err },
		"UpdateContact": func() error {
			return s.UpdateContact(ctx, k, "d", func(*storage.Contact) (storage.Write, error) {
				called = true
				return storage.Write{}, nil
			})
		},
		"DeleteContact":     func() error { _, _, err := s.DeleteContact(ctx, k); return err },
		"GetLink":           func() error { _, err := s.GetLink(ctx, bizA, "BR.1"); return err },
		"SetLink":           func() error { return s.SetLink(ctx, bizA, "BR.1", k.ID) },
		"DeleteLink":        func() error { return s.DeleteLink(ctx, bizA, "BR.1") },
		"PutSuppression":    func() error { return s.PutSuppression(ctx, bizA, "h") },
		"HasSuppression":    func() error { _, err := s.HasSuppression(ctx, bizA, "h"); return err },
		"DeleteSuppression": func() error { return s.DeleteSuppression(ctx, bizA, "h") },
		"GetBusiness":       func() error { _, err := s.GetBusiness(ctx, bizA); return err },
		"UpdateBusiness": func() error {
			_, err := s.UpdateBusiness(ctx, bizA, func(*validator.Business) error { called = true; return nil })
			return err
		},
		"GetPolicy": func() error { _, err := s.GetPolicy(ctx, bizA); return err },
		"PutPolicy": func() error { return s.PutPolicy(ctx, bizA, []byte{1}) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s after Close: err = %v, want one wrapping ErrUnavailable", name, err)
		}
	}
	if called {
		t.Error("a callback ran after Close")
	}
}

// appendSend is an fn that appends one send to the relationship.
func appendSend(ref string) func(*storage.Contact) (storage.Write, error) {
	return func(c *storage.Contact) (storage.Write, error) {
		c.Rel.Sends = append(c.Rel.Sends, validator.Send{At: at(int64(len(c.Rel.Sends) + 1)), Ref: ref})
		return storage.Write{Rel: true}, nil
	}
}

func testBatch(t *testing.T, s storage.Store) {
	ctx := t.Context()
	pre := storage.ContactKey{Business: "acme", ID: "+5511900000000"}
	mustUpdate(t, s, pre, "seen-before", appendSend("pre"))
	boom := errors.New("boom")
	var updates []storage.ContactUpdate
	for i := range 450 { // several chunks for a chunking backend
		updates = append(updates, storage.ContactUpdate{
			Key: storage.ContactKey{Business: "acme", ID: fmt.Sprintf("+55119%08d", i+1)}, Dedup: fmt.Sprint("d", i), Fn: appendSend("a"),
		})
	}
	same := storage.ContactKey{Business: "acme", ID: "+5511999999999"}
	updates = append(updates,
		storage.ContactUpdate{Key: same, Dedup: "s1", Fn: appendSend("first")},
		storage.ContactUpdate{Key: same, Dedup: "s2", Fn: appendSend("second")},             // sees the first
		storage.ContactUpdate{Key: same, Dedup: "s1", Fn: appendSend("dup-in-batch")},       // duplicate of an earlier update
		storage.ContactUpdate{Key: pre, Dedup: "seen-before", Fn: appendSend("dup-before")}, // duplicate of an earlier call
		storage.ContactUpdate{Key: same, Dedup: "s3", Fn: func(*storage.Contact) (storage.Write, error) { return storage.Write{}, boom }},
		storage.ContactUpdate{Key: same, Dedup: "s4", Fn: appendSend("after-error")},
	)
	results, err := s.UpdateContacts(ctx, updates)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(updates) {
		t.Fatalf("%d results for %d updates", len(results), len(updates))
	}
	for i := range 450 {
		if results[i] != nil {
			t.Fatalf("update %d: %v", i, results[i])
		}
		if c := mustGet(t, s, updates[i].Key); len(c.Rel.Sends) != 1 {
			t.Fatalf("number %d: %d sends", i, len(c.Rel.Sends))
		}
	}
	tail := results[450:]
	if tail[0] != nil || tail[1] != nil || !errors.Is(tail[2], storage.ErrDuplicate) || !errors.Is(tail[3], storage.ErrDuplicate) ||
		!errors.Is(tail[4], boom) || tail[5] != nil {
		t.Fatalf("results %v", tail)
	}
	var refs []string
	for _, snd := range mustGet(t, s, same).Rel.Sends {
		refs = append(refs, snd.Ref)
	}
	if fmt.Sprint(refs) != "[first second after-error]" {
		t.Fatalf("sends of one number in a batch: %v", refs)
	}
	// The dedup keys of a failed update are not recorded; the others are.
	again, err := s.UpdateContacts(ctx, []storage.ContactUpdate{
		{Key: same, Dedup: "s3", Fn: appendSend("retry")},
		{Key: same, Dedup: "s2", Fn: appendSend("again")},
	})
	if err != nil || again[0] != nil || !errors.Is(again[1], storage.ErrDuplicate) {
		t.Fatalf("second batch: %v %v", again, err)
	}
	if res, err := s.UpdateContacts(ctx, nil); err != nil || len(res) != 0 {
		t.Fatalf("empty batch: %v %v", res, err)
	}
}

// testBatchConcurrent: batches and single updates of the same numbers at once lose
// no update.
func testBatchConcurrent(t *testing.T, s storage.Store) {
	ctx := t.Context()
	keys := make([]storage.ContactKey, 20)
	for i := range keys {
		keys[i] = storage.ContactKey{Business: "acme", ID: fmt.Sprintf("+55118%08d", i)}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for r := range 10 {
				var ups []storage.ContactUpdate
				for _, k := range slices.Backward(keys) { // reverse order: locks must not deadlock
					ups = append(ups, storage.ContactUpdate{Key: k, Fn: appendSend(fmt.Sprint("b", w, r))})
				}
				if _, err := s.UpdateContacts(ctx, ups); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for r := range 10 {
				for _, k := range keys {
					if err := s.UpdateContact(ctx, k, "", appendSend(fmt.Sprint("s", w, r))); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, k := range keys {
		if n := len(mustGet(t, s, k).Rel.Sends); n != 80 {
			t.Fatalf("%s: %d sends, want 80", k.ID, n)
		}
	}
}

// bumpPauses adds one to the pauses of template "sale" (in no language).
func bumpPauses(b *validator.Business) {
	if b.Templates == nil {
		b.Templates = map[string][]validator.TemplateState{}
	}
	ts := slices.Clone(b.Templates["sale"])
	if len(ts) == 0 {
		ts = []validator.TemplateState{{}}
	}
	ts[0].Pauses++
	b.Templates["sale"] = ts
}

// salePauses is the pauses of template "sale" (in no language).
func salePauses(b *validator.Business) int {
	st, _ := validator.TemplateFor(b, "sale", "")
	return st.Pauses
}
