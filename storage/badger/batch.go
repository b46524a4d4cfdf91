package badger

import (
	"context"
	"errors"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/codec"
	"github.com/sendguard/sendguard/storage/internal/batch"
	"github.com/sendguard/sendguard/storage/internal/stripe"
)

// batchChunk is how many updates one transaction of UpdateContacts takes. A
// relationship is at most a few KB, so a chunk stays far below Badger's
// transaction size limit (15% of the 16 MB memtable).
const batchChunk = 200

// UpdateContacts implements storage.Store: chunks of up to batchChunk updates,
// each chunk one transaction under the stripe locks of all its numbers (taken in
// stripe order, so two batches cannot deadlock).
func (s *Store) UpdateContacts(ctx context.Context, updates []storage.ContactUpdate) ([]error, error) {
	return batch.Apply(ctx, updates, batchChunk, s.updateChunk)
}

func (s *Store) updateChunk(ctx context.Context, updates []storage.ContactUpdate, results []error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	idx := make([]int, 0, len(updates))
	for _, u := range updates {
		idx = append(idx, s.contacts.Index(s.seed, u.Key.ID))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for n, i := range idx {
		if err := s.contacts.LockIndex(ctx, i); err != nil {
			for _, j := range idx[:n] {
				stripe.Unlock(s.contacts[j])
			}
			return err
		}
	}
	defer func() {
		for _, i := range idx {
			stripe.Unlock(s.contacts[i])
		}
	}()

	err := s.update(ctx, "update contacts", func(t txn) error {
		clear(results)
		for i, u := range updates {
			err := applyUpdate(t, u)
			if err != nil && !errors.Is(err, storage.ErrDuplicate) && isEngineError(err) {
				return err
			}
			results[i] = err
		}
		return nil
	})
	if errors.Is(err, badger.ErrTxnTooBig) {
		// Unusually large records: fall back to one transaction per update.
		for i, u := range updates {
			err := s.update(ctx, "update contact", func(t txn) error { return applyUpdate(t, u) })
			if err != nil && isEngineError(err) {
				return err
			}
			results[i] = err
		}
		return nil
	}
	return err
}

// applyUpdate is one update inside a transaction; it returns ErrDuplicate, fn's
// error or an engine error (wrapping storage.ErrUnavailable or ErrTxnTooBig).
func applyUpdate(t txn, u storage.ContactUpdate) error {
	key := contactKey(u.Key.ID)
	var dk []byte
	if u.Dedup != "" {
		dk = dedupKey(u.Key.Business, u.Dedup)
		// Through the key filter, like every key: every earlier event of
		// this number recorded its key under the number's stripe lock, which
		// the caller holds, so a read the filter rules out is exact for them
		// (filter.go). Two numbers' events that share a key may then both
		// be applied, which storage.Store leaves unspecified.
		seen, err := t.exists(dk)
		if err != nil {
			return err
		}
		if seen {
			return storage.ErrDuplicate
		}
	}
	rec, c, existed, err := t.loadContact(key, u.Key)
	if err != nil {
		return err
	}
	w, err := u.Fn(&c)
	if err != nil {
		return err
	}
	writeFacts := w.Facts && u.Key.Number() != "" // a BSUID's record has no facts
	if w.Rel {
		rec.setRel(u.Key.Business, codec.AppendRelationship(nil, &c.Rel), w.RelTTL)
	}
	if writeFacts {
		rec.setFacts(codec.AppendNumberFacts(nil, &c.Facts), w.FactsTTL)
	}
	if w.Rel || writeFacts {
		if err := t.putRecord(key, &rec, existed); err != nil {
			return err
		}
	}
	if dk != nil && !w.SkipDedup {
		return t.put(dk, nil, storage.DedupTTL)
	}
	return nil
}

// isEngineError tells an engine failure (which fails the whole chunk) from a
// caller's fn error (which skips one update).
func isEngineError(err error) bool {
	return errors.Is(err, storage.ErrUnavailable) || errors.Is(err, badger.ErrTxnTooBig) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
