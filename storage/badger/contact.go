package badger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/codec"
	"github.com/sendguard/sendguard/storage/internal/stripe"
)

// GetContact implements storage.Store: one point read of the recipient's
// record, skipped (with the transaction) when the key filter rules it out.
//
// With a record cache (cache.go), a cached record is decoded without Badger; a
// record read from Badger is cached, unless a write of its id ran meanwhile.
func (s *Store) GetContact(ctx context.Context, k storage.ContactKey) (storage.Contact, error) {
	key := contactKey(k.ID)
	if s.cache == nil {
		var c storage.Contact
		err := s.read(ctx, "get contact", key, func(t txn) error {
			var err error
			c, err = t.getContact(key, k, nil)
			return err
		})
		if err != nil {
			return storage.Contact{}, err
		}
		return c, nil
	}
	if err := ctx.Err(); err != nil {
		return storage.Contact{}, err
	}
	if err := s.enter(); err != nil {
		return storage.Contact{}, err // closed: no answer from the cache either
	}
	v, ok, tok := s.cache.get(key)
	s.inflight.Done()
	if ok {
		c, err := contactOf(v, k)
		if err != nil {
			return storage.Contact{}, fmt.Errorf("storage/badger: corrupt contact record: %w", err)
		}
		return c, nil
	}
	var (
		c   storage.Contact
		raw []byte
	)
	err := s.read(ctx, "get contact", key, func(t txn) error {
		if t.Txn == nil {
			return nil // ruled out by the key filter: not a miss of the cache
		}
		s.cache.missed()
		var err error
		c, err = t.getContact(key, k, &raw)
		return err
	})
	if err != nil {
		return storage.Contact{}, err
	}
	if raw != nil {
		s.cache.fill(key, raw, tok)
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

// DeleteContact implements storage.Store in one transaction: it removes the
// business's relationship from the recipient's record, and the facts too when no
// other business's relationship remains (the key goes once the record is empty).
// It reports true when it removed either.
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

	key := contactKey(k.ID)
	var (
		found bool
		prev  storage.Contact
	)
	err = s.update(ctx, "delete contact", func(t txn) error {
		rec, c, _, err := t.loadContact(key, k)
		if err != nil {
			return err
		}
		prev = c
		found = rec.removeRel(k.Business)
		if k.Number() != "" && len(rec.rels) == 0 && rec.facts.data != nil {
			rec.facts = part{}
			found = true
		}
		if !found {
			return nil
		}
		return t.putRecord(key, &rec, true)
	})
	if err != nil {
		return storage.Contact{}, false, err
	}
	return prev, found, nil
}

// getContact reads k's relationship and facts from the record at key, decoding
// only those two parts. When raw is not nil, it is set to a copy of the record's
// bytes (for the cache), or left nil when the key is missing.
func (t txn) getContact(key []byte, k storage.ContactKey, raw *[]byte) (storage.Contact, error) {
	var c storage.Contact
	_, err := t.get(key, "contact", func(v []byte) error {
		var err error
		c, err = contactOf(v, k)
		if err == nil && raw != nil {
			*raw = bytes.Clone(v)
		}
		return err
	})
	if err != nil {
		return storage.Contact{}, err
	}
	return c, nil
}

// contactOf decodes k's relationship and facts from the record v (as stored),
// only those two parts, leaving out those that have expired. The Contact is the
// caller's own: nothing in it shares memory with v.
func contactOf(v []byte, k storage.ContactKey) (storage.Contact, error) {
	var c storage.Contact
	now := nowSeconds()
	var rel []byte
	facts, err := scanRecord(v, func(business []byte, p part) error {
		if string(business) == k.Business && p.live(now) {
			rel = p.data
		}
		return nil
	})
	if err != nil {
		return storage.Contact{}, err
	}
	if !facts.live(now) {
		facts.data = nil
	}
	if err := decodeParts(&c, k, rel, facts.data); err != nil {
		return storage.Contact{}, err
	}
	return c, nil
}

// decodeParts decodes a record's relationship part rel and facts part facts (nil:
// absent) into c; facts only for a number's key.
func decodeParts(c *storage.Contact, k storage.ContactKey, rel, facts []byte) error {
	if rel != nil {
		c.RelFound = true
		if err := codec.DecodeRelationship(rel, &c.Rel); err != nil {
			return fmt.Errorf("relationship: %w", err)
		}
	}
	if facts != nil && k.Number() != "" {
		c.FactsFound = true
		if err := codec.DecodeNumberFacts(facts, &c.Facts); err != nil {
			return fmt.Errorf("number facts: %w", err)
		}
	}
	return nil
}

// loadContact reads the record at key for a write: the record's live parts (its
// own copy of the bytes), k's contact decoded from them, and whether the key
// exists. In a read-write transaction it may skip a key the filter rules out
// although Badger then does not check the read for conflicts: a record is
// written only under its id's stripe lock, which the caller holds.
func (t txn) loadContact(key []byte, k storage.ContactKey) (contactRecord, storage.Contact, bool, error) {
	var (
		rec contactRecord
		c   storage.Contact
	)
	decode := func(v []byte) error {
		var err error
		if rec, err = parseRecord(bytes.Clone(v), nowSeconds()); err != nil {
			return err
		}
		var rel []byte
		if i := rec.rel(k.Business); i >= 0 {
			rel = rec.rels[i].data
		}
		return decodeParts(&c, k, rel, rec.facts.data)
	}
	if t.cache != nil && !t.wrote(key) {
		// The caller holds the id's stripe lock, under which every write of
		// the record reaches the cache: a cached record is the last committed.
		// (One this transaction staged is newer: Badger's read sees it.)
		if v, ok := t.cache.peek(key); ok {
			if err := decode(v); err != nil {
				return contactRecord{}, storage.Contact{}, false, fmt.Errorf("storage/badger: corrupt contact record: %w", err)
			}
			return rec, c, true, nil
		}
	}
	found, err := t.get(key, "contact", decode)
	if err != nil {
		return contactRecord{}, storage.Contact{}, false, err
	}
	return rec, c, found, nil
}

// wrote tells whether the write staged a contact record at key (an earlier
// update of the same batch).
func (t txn) wrote(key []byte) bool {
	for _, r := range *t.records {
		if bytes.Equal(r.key, key) {
			return true
		}
	}
	return false
}

// putRecord writes rec at key with its expiry, or deletes the key when rec holds
// nothing (existed tells whether there is a key to delete).
func (t txn) putRecord(key []byte, rec *contactRecord, existed bool) error {
	switch {
	case !rec.empty():
		return t.set(key, appendRecord(nil, rec), rec.expiry())
	case existed:
		return t.del(key)
	}
	return nil
}

// get reads key and passes its value to decode. A missing key is (false, nil), and
// so is a key the filter rules out, which is not read. Engine errors wrap
// storage.ErrUnavailable; a value that does not decode is reported as corrupt
// data (what names the record; keys hold phone numbers and stay out of errors).
func (t txn) get(key []byte, what string, decode func(v []byte) error) (bool, error) {
	item, err := t.lookup(key, what)
	if item == nil || err != nil {
		return false, err
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

// lookup returns key's item, or nil when the key is missing or the filter rules
// it out (then it is not read). Engine errors wrap storage.ErrUnavailable.
func (t txn) lookup(key []byte, what string) (*badger.Item, error) {
	if !t.mayHave(key) {
		return nil, nil
	}
	item, err := t.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("get "+what, err)
	}
	return item, nil
}

// exists tells whether key is present (unexpired); a key the filter rules out is
// not read.
func (t txn) exists(key []byte) (bool, error) {
	item, err := t.lookup(key, "key")
	return item != nil, err
}

// put writes key with a TTL (0: no expiry), rounded up to Badger's whole
// seconds so that a record never expires before its TTL has passed.
func (t txn) put(key, value []byte, ttl time.Duration) error {
	return t.set(key, value, expiryAfter(ttl))
}

// set stages key = value, expiring at exp (Unix seconds; 0: never). The key is
// added to the filter first, before the write is staged.
func (t txn) set(key, value []byte, exp uint64) error {
	t.keys.add(t.st, key)
	if t.records != nil && key[0] == kindContact {
		*t.records = append(*t.records, recordWrite{key: key, val: value})
	}
	e := badger.NewEntry(key, value)
	e.ExpiresAt = exp
	if err := t.SetEntry(e); err != nil {
		return unavailable("write", err)
	}
	*t.staged += int64(len(key)+len(value)) + entryOverhead
	return nil
}

// del stages the deletion of key.
func (t txn) del(key []byte) error {
	if t.records != nil && key[0] == kindContact {
		*t.records = append(*t.records, recordWrite{key: key})
	}
	if err := t.Delete(key); err != nil {
		return unavailable("delete", err)
	}
	*t.staged += int64(len(key)) + entryOverhead
	return nil
}
