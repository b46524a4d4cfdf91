package badger

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// migrateBatch is how many ids one migration transaction moves.
const migrateBatch = 256

// migrate moves what a store written before the contact record holds (a
// relationship per r\x00<id>\x00<business> key, the facts under n\x00<id>) into
// contact records, keeping every part's expiry. Each transaction moves a batch of
// ids whole, so a crash leaves every id either moved or not, and the next Open
// goes on. Open runs it before the store serves; a store without such keys costs
// two seeks.
func migrate(db *badger.DB, log *slog.Logger) error {
	start := time.Now()
	moved := 0
	for _, kind := range []byte{kindRel, kindFacts} {
		var after []byte // the last id moved
		for {
			ids, err := oldIDs(db, kind, after)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				break
			}
			err = db.Update(func(txn *badger.Txn) error { return moveContacts(txn, ids) })
			if errors.Is(err, badger.ErrTxnTooBig) {
				// Ids with unusually many businesses: one transaction each.
				for _, id := range ids {
					if err = db.Update(func(txn *badger.Txn) error { return moveContacts(txn, [][]byte{id}) }); err != nil {
						break
					}
				}
			}
			if err != nil {
				return unavailable("move contacts into contact records", err)
			}
			moved += len(ids)
			after = ids[len(ids)-1]
		}
	}
	if moved > 0 {
		log.Info("badger: moved relationships and facts into contact records", "ids", moved, "elapsed", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// oldIDs returns up to migrateBatch ids that have keys of kind (kindRel or
// kindFacts), in key order, after the id after (nil: from the first).
func oldIDs(db *badger.DB, kind byte, after []byte) ([][]byte, error) {
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
	var ids [][]byte
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(seek); it.ValidForPrefix(prefix) && len(ids) < migrateBatch; it.Next() {
			id := it.Item().Key()[len(prefix):]
			if kind == kindRel {
				n := 0
				for n < len(id) && id[n] != 0 {
					n++
				}
				id = id[:n]
			}
			if len(ids) == 0 || string(ids[len(ids)-1]) != string(id) {
				ids = append(ids, append([]byte{}, id...))
			}
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("list contacts to move", err)
	}
	return ids, nil
}

// moveContacts moves each id's relationships and facts into its contact record,
// deleting the old keys. Parts of an existing record are kept unless an old key
// replaces them.
func moveContacts(txn *badger.Txn, ids [][]byte) error {
	now := nowSeconds()
	for _, id := range ids {
		key := contactKey(string(id))
		var rec contactRecord
		item, err := txn.Get(key)
		switch {
		case err == nil:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if rec, err = parseRecord(v, now); err != nil {
				return fmt.Errorf("corrupt contact record: %w", err)
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		prefix := relPrefix(string(id))
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		var old [][]byte
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				it.Close()
				return err
			}
			p := part{exp: item.ExpiresAt(), data: v}
			business := string(item.Key()[len(prefix):])
			if i := rec.rel(business); i >= 0 {
				rec.rels[i].part = p
			} else {
				rec.rels = append(rec.rels, relPart{business: business, part: p})
			}
			old = append(old, item.KeyCopy(nil))
		}
		it.Close()
		fk := factsKey(string(id))
		switch item, err := txn.Get(fk); {
		case err == nil:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			rec.facts = part{exp: item.ExpiresAt(), data: v}
			old = append(old, fk)
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		for _, k := range old {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		if rec.empty() {
			continue
		}
		e := badger.NewEntry(key, appendRecord(nil, &rec))
		e.ExpiresAt = rec.expiry()
		if err := txn.SetEntry(e); err != nil {
			return err
		}
	}
	return nil
}
