package badger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/codec"
	"github.com/sendguard/sendguard/storage/internal/stripe"
)

// GetContact implements storage.Store: one read transaction, two point reads (one
// for a BSUID key), each skipped when the key filter rules its key out (and the
// transaction too when it rules out both).
func (s *Store) GetContact(ctx context.Context, k storage.ContactKey) (storage.Contact, error) {
	rk, fk := contactKeys(k)
	var c storage.Contact
	err := s.read(ctx, "get contact", [][]byte{rk, fk}, func(t txn) error {
		var err error
		c, err = readContact(t, rk, fk)
		return err
	})
	if err != nil {
		return storage.Contact{}, err
	}
	return c, nil
}

// UpdateContact implements storage.Store. Updates of one number are serialised by
// an in-process stripe lock taken before the transaction, so they do not conflict
// in Badger; a conflict that still happens (a dedup key shared by two numbers'
// events) is retried up to maxAttempts times, calling fn again, and then reported
// as storage.ErrConflict. If ctx ends while waiting for the lock or between
// attempts, ctx.Err() is returned.
//
// A negative TTL in w means the record has already expired: it is deleted. fn runs
// while the number's stripe lock is held, so it must not call UpdateContact or
// DeleteContact (any number may share the stripe).
func (s *Store) UpdateContact(ctx context.Context, k storage.ContactKey, dedup string, fn func(c *storage.Contact) (storage.Write, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	lk, err := s.contacts.Lock(ctx, s.seed, k.ID)
	if err != nil {
		return err
	}
	defer stripe.Unlock(lk)

	u := storage.ContactUpdate{Key: k, Dedup: dedup, Fn: fn}
	return s.update(ctx, "update contact", func(t txn) error { return applyUpdate(t, u) })
}

// DeleteContact implements storage.Store in one transaction: it deletes the
// relationship, then scans the number's relationship prefix (keys only) and
// deletes the facts if no other business remains. It reports true when it
// deleted either.
func (s *Store) DeleteContact(ctx context.Context, k storage.ContactKey) (storage.Contact, bool, error) {
	if err := ctx.Err(); err != nil {
		return storage.Contact{}, false, err
	}
	if err := s.enter(); err != nil {
		return storage.Contact{}, false, err
	}
	defer s.inflight.Done()
	lk, err := s.contacts.Lock(ctx, s.seed, k.ID)
	if err != nil {
		return storage.Contact{}, false, err
	}
	defer stripe.Unlock(lk)

	rk, fk := contactKeys(k)
	var (
		found bool
		prev  storage.Contact
	)
	err = s.update(ctx, "delete contact", func(t txn) error {
		found = false
		var err error
		if prev, err = readContact(t, rk, fk); err != nil {
			return err
		}
		ok, err := deleteIfExists(t.Txn, rk)
		if err != nil || fk == nil {
			found = ok
			return err
		}
		others, err := hasOtherRel(t.Txn, relPrefix(k.ID), rk)
		if err != nil || others {
			found = ok
			return err
		}
		factsFound, err := deleteIfExists(t.Txn, fk)
		found = ok || factsFound
		return err
	})
	if err != nil {
		return storage.Contact{}, false, err
	}
	return prev, found, nil
}

// contactKeys returns the relationship and facts keys of k; the facts key is nil
// for a BSUID key.
func contactKeys(k storage.ContactKey) (rel, facts []byte) {
	rel = relKey(k.ID, k.Business)
	if n := k.Number(); n != "" {
		facts = factsKey(n)
	}
	return rel, facts
}

// readContact reads the relationship and facts keys. In a read-write transaction
// it may skip a key the filter rules out although Badger then does not check the
// read for conflicts: both keys are written only under the number's stripe lock,
// which the caller holds.
func readContact(t txn, rk, fk []byte) (storage.Contact, error) {
	var c storage.Contact
	var err error
	c.RelFound, err = t.get(rk, "relationship", func(v []byte) error {
		return codec.DecodeRelationship(v, &c.Rel)
	})
	if err != nil || fk == nil {
		return c, err
	}
	c.FactsFound, err = t.get(fk, "number facts", func(v []byte) error {
		return codec.DecodeNumberFacts(v, &c.Facts)
	})
	return c, err
}

// hasOtherRel tells whether a key other than self starts with prefix.
func hasOtherRel(txn *badger.Txn, prefix, self []byte) (bool, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		if string(it.Item().Key()) != string(self) {
			return true, nil
		}
	}
	return false, nil
}

// get reads key and passes its value to decode. A missing key is (false, nil), and
// so is a key the filter rules out, which is not read. Engine errors wrap
// storage.ErrUnavailable; a value that does not decode is reported as corrupt
// data (what names the record; keys hold phone numbers and stay out of errors).
func (t txn) get(key []byte, what string, decode func(v []byte) error) (bool, error) {
	if !t.mayHave(key) {
		return false, nil
	}
	item, err := t.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, unavailable("get "+what, err)
	}
	var decodeErr error
	err = item.Value(func(v []byte) error {
		decodeErr = decode(v)
		return decodeErr
	})
	if decodeErr != nil {
		return true, fmt.Errorf("storage/badger: corrupt %s record: %w", what, decodeErr)
	}
	if err != nil {
		return true, unavailable("read "+what, err)
	}
	return true, nil
}

// exists tells whether key is present (unexpired); a key the filter rules out is
// not read.
func (t txn) exists(key []byte) (bool, error) {
	if !t.mayHave(key) {
		return false, nil
	}
	return exists(t.Txn, key)
}

// exists tells whether key is present (unexpired), reading it from the engine.
func exists(txn *badger.Txn, key []byte) (bool, error) {
	_, err := txn.Get(key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	default:
		return false, unavailable("get", err)
	}
}

func deleteIfExists(txn *badger.Txn, key []byte) (bool, error) {
	ok, err := exists(txn, key)
	if err != nil || !ok {
		return false, err
	}
	if err := txn.Delete(key); err != nil {
		return false, unavailable("delete", err)
	}
	return true, nil
}

// put writes key with a TTL: 0 means no expiry, a negative TTL deletes the key (it
// has expired already). Badger keeps expiry in whole Unix seconds; the TTL is
// rounded up so that a record never expires before its TTL has passed. A key
// written is added to the key filter first, before the write is staged.
func (t txn) put(key, value []byte, ttl time.Duration) error {
	if ttl >= 0 && filtered(key) {
		t.keys.add(t.st, key)
	}
	var err error
	switch {
	case ttl < 0:
		err = t.Delete(key)
	case ttl == 0:
		err = t.Set(key, value)
	default:
		err = t.SetEntry(badger.NewEntry(key, value).WithTTL(ttl + time.Second - time.Nanosecond))
	}
	if err != nil {
		return unavailable("write", err)
	}
	return nil
}
