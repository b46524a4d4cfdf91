package badger

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// migrateBatch is how many ids one migration transaction moves; a line is logged
// every migrateProgress ids (about 11 µs an id: 300,000 ids with two businesses
// each moved in 3.3 s).
const (
	migrateBatch    = 256
	migrateProgress = 1_000_000
)

// migrate moves what a store written before the contact record holds (a
// relationship per r\x00<id>\x00<business> key, the facts under n\x00<id>) into
// contact records, keeping every part's expiry. It reads a batch of ids in a
// read-only transaction and writes their records (and deletes their old keys) in
// one read-write transaction of blind writes, so a crash leaves every id either
// moved or not, and the next Open goes on. Nothing else writes meanwhile: Open
// runs it before the store serves. Once it has moved anything, it drops the old
// keys' prefixes, so that their tombstones do not slow every later Open's scan
// (a store without old keys costs two seeks). Each batch is admitted by the
// space guard first (nil: none), so that a move on a nearly full disk stops
// Open with errNoSpace instead of filling it.
func migrate(db *badger.DB, log *slog.Logger, space *spaceGuard) error {
	start := time.Now()
	moved := 0
	for _, kind := range []byte{kindRel, kindFacts} {
		var after []byte // the last id moved
		for {
			batch, err := readOld(db, kind, after)
			if err != nil {
				return err
			}
			if len(batch) == 0 {
				break
			}
			if err := space.admit(movedSize(batch)); err != nil {
				return err
			}
			err = db.Update(func(txn *badger.Txn) error { return writeMoved(txn, batch) })
			if errors.Is(err, badger.ErrTxnTooBig) {
				// Ids with unusually many businesses: one transaction each.
				for i := range batch {
					if err = db.Update(func(txn *badger.Txn) error { return writeMoved(txn, batch[i:i+1]) }); err != nil {
						break
					}
				}
			}
			if err != nil {
				return unavailable("move contacts into contact records", err)
			}
			if moved/migrateProgress != (moved+len(batch))/migrateProgress {
				log.Info("badger: moving relationships and facts into contact records", "ids", moved+len(batch), "elapsed", time.Since(start).Round(time.Second))
			}
			moved += len(batch)
			after = batch[len(batch)-1].id
		}
	}
	if moved == 0 {
		return nil
	}
	if err := db.DropPrefix([]byte{kindRel, 0}, []byte{kindFacts, 0}); err != nil {
		return unavailable("drop the moved keys", err)
	}
	log.Info("badger: moved relationships and facts into contact records", "ids", moved, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// oldContact is what one id holds in the old layout, read for the move.
type oldContact struct {
	id   []byte
	rec  contactRecord // the id's record if it has one, with the old parts put in
	keys [][]byte      // the old keys, to delete
}

// readOld reads up to migrateBatch ids that have keys of kind (kindRel or
// kindFacts), in key order, after the id after (nil: from the first): each id's
// old relationships and facts merged into its record (an old part replaces the
// record's own, which only a store written by both versions would have).
func readOld(db *badger.DB, kind byte, after []byte) ([]oldContact, error) {
	prefix := []byte{kind, 0}
	seek := prefix
	if after != nil {
		// Past every key of that id: r\x00<id>\x00… sorts before r\x00<id>\x01,
		// and n\x00<id> before n\x00<id>\x00.
		seek = append(append(append([]byte{}, prefix...), after...), 1)
		if kind == kindFacts {
			seek[len(seek)-1] = 0
		}
	}
	var batch []oldContact
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		now := nowSeconds()
		for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			id, business := item.Key()[len(prefix):], []byte(nil)
			if kind == kindRel {
				i := bytes.IndexByte(id, 0)
				if i < 0 {
					continue // not a relationship key
				}
				id, business = id[:i], id[i+1:]
			}
			if len(batch) == 0 || !bytes.Equal(batch[len(batch)-1].id, id) {
				if len(batch) == migrateBatch {
					break
				}
				c, err := readRecord(txn, id, now)
				if err != nil {
					return err
				}
				batch = append(batch, c)
			}
			c := &batch[len(batch)-1]
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			p := part{exp: item.ExpiresAt(), data: v}
			if kind == kindFacts {
				c.rec.facts = p
			} else if i := c.rec.rel(string(business)); i >= 0 {
				c.rec.rels[i].part = p
			} else {
				c.rec.rels = append(c.rec.rels, relPart{business: string(business), part: p})
			}
			c.keys = append(c.keys, item.KeyCopy(nil))
		}
		if kind == kindFacts {
			return nil
		}
		// The facts of the ids whose relationships were read.
		for i := range batch {
			c := &batch[i]
			fk := factsKey(string(c.id))
			switch item, err := txn.Get(fk); {
			case err == nil:
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				c.rec.facts = part{exp: item.ExpiresAt(), data: v}
				c.keys = append(c.keys, fk)
			case !errors.Is(err, badger.ErrKeyNotFound):
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("read contacts to move", err)
	}
	return batch, nil
}

// readRecord returns an oldContact for id holding id's contact record, if any.
func readRecord(txn *badger.Txn, id []byte, now uint64) (oldContact, error) {
	c := oldContact{id: append([]byte{}, id...)}
	item, err := txn.Get(contactKey(string(id)))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return c, nil
	case err != nil:
		return c, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return c, err
	}
	if c.rec, err = parseRecord(v, now); err != nil {
		return c, fmt.Errorf("corrupt contact record: %w", err)
	}
	return c, nil
}

// movedSize is about what writeMoved stages for batch: each record and each
// deleted key, with Badger's overhead per entry.
func movedSize(batch []oldContact) int64 {
	var n int64
	for i := range batch {
		c := &batch[i]
		n += int64(len(c.id)+len(c.rec.facts.data)) + entryOverhead
		for _, r := range c.rec.rels {
			n += int64(len(r.business) + len(r.data))
		}
		for _, k := range c.keys {
			n += int64(len(k)) + entryOverhead
		}
	}
	return n + txnOverhead
}

// writeMoved writes each id's record and deletes its old keys, without reading.
func writeMoved(txn *badger.Txn, batch []oldContact) error {
	for i := range batch {
		c := &batch[i]
		if !c.rec.empty() {
			e := badger.NewEntry(contactKey(string(c.id)), appendRecord(nil, &c.rec))
			e.ExpiresAt = c.rec.expiry()
			if err := txn.SetEntry(e); err != nil {
				return err
			}
		}
		for _, k := range c.keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}
