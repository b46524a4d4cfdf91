package badger

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/codec"
	"github.com/sendguard/sendguard/validator"
)

func TestRecordParts(t *testing.T) {
	var r contactRecord
	r.setFacts([]byte("f1"), time.Hour)
	r.setRel("a", []byte("ra"), 2*time.Hour)
	r.setRel("b", []byte("rb"), time.Hour)
	now := nowSeconds()
	if exp := r.expiry(); exp < now+2*3600 || exp > now+2*3600+2 {
		t.Fatalf("expiry %d, want the longest part's, about now+2h (%d)", exp, now+2*3600)
	}
	r.setRel("b", []byte("rb2"), 0)
	if r.expiry() != 0 {
		t.Fatalf("a part without TTL: the key's expiry is %d, want none", r.expiry())
	}
	got, err := parseRecord(appendRecord(nil, &r), now)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip: %+v, want %+v", got, r)
	}
	r.setRel("a", nil, -1)
	r.setFacts(nil, -1)
	if i := r.rel("a"); i >= 0 || r.facts.data != nil || len(r.rels) != 1 || r.empty() {
		t.Fatalf("after removing a and the facts: %+v", r)
	}
	r.setRel("b", nil, -1)
	if !r.empty() {
		t.Fatalf("after removing every part: %+v", r)
	}
}

// Parts past their expiry read as missing; the live ones stay in order.
func TestRecordDropsExpiredParts(t *testing.T) {
	r := contactRecord{
		facts: part{exp: 100, data: []byte("f")},
		rels: []relPart{
			{business: "a", part: part{exp: 100, data: []byte("ra")}},
			{business: "b", part: part{exp: 0, data: []byte("rb")}},
			{business: "c", part: part{exp: 101, data: []byte("rc")}},
		},
	}
	got, err := parseRecord(appendRecord(nil, &r), 100)
	if err != nil {
		t.Fatal(err)
	}
	want := contactRecord{rels: []relPart{r.rels[1], r.rels[2]}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("at 100: %+v, want %+v", got, want)
	}
}

func TestRecordRejectsDamage(t *testing.T) {
	r := contactRecord{facts: part{exp: 5, data: []byte("facts")}, rels: []relPart{{business: "biz", part: part{exp: 7, data: []byte("rel")}}}}
	v := appendRecord(nil, &r)
	for i := range len(v) - 1 {
		if _, err := parseRecord(v[:i], 0); err == nil {
			t.Errorf("a record cut to %d of %d bytes parses", i, len(v))
		}
	}
	bad := append([]byte{recordVersion + 1}, v[1:]...)
	if _, err := parseRecord(bad, 0); err == nil {
		t.Error("a record of an unknown version parses")
	}
	if _, err := parseRecord(append(v, 0), 0); err == nil {
		t.Error("a record with a trailing byte parses")
	}
}

// FuzzRecord: any bytes parse or fail without panicking, and what parses
// encodes back to a record that parses the same.
func FuzzRecord(f *testing.F) {
	r := contactRecord{facts: part{exp: 5, data: []byte("facts")}, rels: []relPart{{business: "biz", part: part{data: []byte("rel")}}}}
	f.Add(appendRecord(nil, &r))
	f.Add([]byte{recordVersion, 0, 0})
	f.Add([]byte{recordVersion, 0, 1, 3, 'b', 'i', 'z', 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		got, err := parseRecord(v, 0)
		if err != nil {
			return
		}
		again, err := parseRecord(appendRecord(nil, &got), 0)
		if err != nil {
			t.Fatalf("re-encoded record does not parse: %v", err)
		}
		if len(got.facts.data) == 0 {
			got.facts = part{} // empty facts are stored as none
		}
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoded: %+v, want %+v", again, got)
		}
	})
}

// A record that parses but holds a relationship or facts that do not decode is
// corrupt data, not an unavailable store.
func TestCorruptPartIsNotUnavailable(t *testing.T) {
	ctx := t.Context()
	s := openMem(t)
	k := storage.ContactKey{Business: "a", ID: "+5511987654321"}
	for name, r := range map[string]contactRecord{
		"relationship": {rels: []relPart{{business: "a", part: part{data: []byte{0xff}}}}},
		"facts":        {facts: part{data: []byte{0xff}}},
	} {
		if err := s.write(ctx, "test", func(t txn) error { return t.putRecord(contactKey(k.ID), &r, true) }); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetContact(ctx, k); err == nil || errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s: GetContact: %v, want a corrupt-record error", name, err)
		}
		err := s.UpdateContact(ctx, k, "", func(*storage.Contact) (storage.Write, error) { return storage.Write{}, nil })
		if err == nil || errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s: UpdateContact: %v, want a corrupt-record error", name, err)
		}
	}
}

// TestMigrateOldLayout opens a store written with a relationship key per
// business and a facts key per number (the layout before contact records): every
// relationship and facts record is found, with its expiry, and the old keys are
// gone. More ids than one migration batch, so that the migration resumes.
func TestMigrateOldLayout(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	const numbers = migrateBatch*2 + 7
	rel := func(i int) validator.Relationship {
		return validator.Relationship{OwnStopReason: fmt.Sprint("stop ", i), Sends: []validator.Send{{At: time.Unix(int64(1_780_000_000+i), 0).UTC(), Ref: fmt.Sprint("m", i)}}}
	}
	facts := func(i int) validator.NumberFacts {
		return validator.NumberFacts{LastDeliveredAt: time.Unix(int64(1_780_000_000+i), 0).UTC(), EcoStreak: i % 3}
	}
	number := func(i int) string { return fmt.Sprintf("+55119%08d", i) }
	db, err := badger.Open(badgerOptions(Options{Dir: dir}, quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	set := func(txn *badger.Txn, key, v []byte, ttl time.Duration) error {
		e := badger.NewEntry(key, v)
		if ttl > 0 {
			e = e.WithTTL(ttl)
		}
		return txn.SetEntry(e)
	}
	err = db.Update(func(txn *badger.Txn) error {
		for i := range numbers {
			r, f := rel(i), facts(i)
			if err := set(txn, relKey(number(i), "biz-a"), codec.AppendRelationship(nil, &r), time.Hour); err != nil {
				return err
			}
			if i%2 == 0 { // a second business, whose relationship never expires
				if err := set(txn, relKey(number(i), "biz-b"), codec.AppendRelationship(nil, &r), 0); err != nil {
					return err
				}
			}
			if err := set(txn, factsKey(number(i)), codec.AppendNumberFacts(nil, &f), 2*time.Hour); err != nil {
				return err
			}
		}
		// Facts of a number no business holds any more, and a BSUID's relationship.
		f, r := facts(1), rel(1)
		if err := set(txn, factsKey("+14165550123"), codec.AppendNumberFacts(nil, &f), time.Hour); err != nil {
			return err
		}
		if err := set(txn, relKey("u:BR.1", "biz-a"), codec.AppendRelationship(nil, &r), time.Hour); err != nil {
			return err
		}
		return set(txn, linkKey("biz-a", "BR.1"), []byte(number(0)), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openDisk(t, dir)
	now := nowSeconds()
	for i := range numbers {
		for _, biz := range []string{"biz-a", "biz-b"} {
			c, err := s.GetContact(ctx, storage.ContactKey{Business: biz, ID: number(i)})
			if err != nil {
				t.Fatal(err)
			}
			wantRel := biz == "biz-a" || i%2 == 0
			if c.RelFound != wantRel || !c.FactsFound {
				t.Fatalf("%s %s: found %v, %v; want %v, true", number(i), biz, c.RelFound, c.FactsFound, wantRel)
			}
			if wantRel && !reflect.DeepEqual(c.Rel, rel(i)) {
				t.Fatalf("%s %s: relationship %+v, want %+v", number(i), biz, c.Rel, rel(i))
			}
			if !reflect.DeepEqual(c.Facts, facts(i)) {
				t.Fatalf("%s: facts %+v, want %+v", number(i), c.Facts, facts(i))
			}
		}
	}
	if c, err := s.GetContact(ctx, storage.ContactKey{Business: "biz-a", ID: "+14165550123"}); err != nil || c.RelFound || !c.FactsFound {
		t.Fatalf("facts-only number: %+v, %v", c, err)
	}
	if c, err := s.GetContact(ctx, storage.ContactKey{Business: "biz-a", ID: "u:BR.1"}); err != nil || !c.RelFound {
		t.Fatalf("BSUID relationship: %+v, %v", c, err)
	}
	if n, err := s.GetLink(ctx, "biz-a", "BR.1"); err != nil || n != number(0) {
		t.Fatalf("link: %q, %v", n, err)
	}
	// Old keys gone; each record expires with its longest-lived part.
	err = s.DB().View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			switch {
			case k[0] == kindRel || k[0] == kindFacts:
				t.Errorf("old key %q left", k)
			case bytes.Equal(k, contactKey(number(0))):
				if item.ExpiresAt() != 0 {
					t.Errorf("%q expires at %d, want never (biz-b's relationship)", k, item.ExpiresAt())
				}
			case bytes.Equal(k, contactKey(number(1))):
				if e := item.ExpiresAt(); e < now+2*3600-60 || e > now+2*3600+1 {
					t.Errorf("%q expires at %d, want the facts' expiry, about %d", k, e, now+2*3600)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// relKey is the key of a relationship in the layout before contact records.
func relKey(id, business string) []byte { return key2(kindRel, id, business) }
