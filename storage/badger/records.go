package badger

import (
	"context"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/codec"
	"github.com/sendguard/sendguard/storage/internal/stripe"
	"github.com/sendguard/sendguard/validator"
)

// GetLink implements storage.Store.
func (s *Store) GetLink(ctx context.Context, business, userID string) (string, error) {
	lk := linkKey(business, userID)
	var number string
	err := s.read(ctx, "get link", lk, func(t txn) error {
		found, err := t.get(lk, "link", func(v []byte) error {
			number = string(v)
			return nil
		})
		if err == nil && !found {
			return storage.ErrNotFound
		}
		return err
	})
	return number, err
}

// SetLink implements storage.Store.
func (s *Store) SetLink(ctx context.Context, business, userID, number string) error {
	return s.write(ctx, "set link", func(t txn) error {
		return t.put(linkKey(business, userID), []byte(number), 0)
	})
}

// DeleteLink implements storage.Store.
func (s *Store) DeleteLink(ctx context.Context, business, userID string) error {
	return s.write(ctx, "delete link", func(t txn) error {
		return t.del(linkKey(business, userID))
	})
}

// PutSuppression implements storage.Store.
func (s *Store) PutSuppression(ctx context.Context, business, hash string) error {
	return s.write(ctx, "put suppression", func(t txn) error {
		return t.put(suppressionKey(business, hash), nil, 0)
	})
}

// HasSuppression implements storage.Store.
func (s *Store) HasSuppression(ctx context.Context, business, hash string) (bool, error) {
	sk := suppressionKey(business, hash)
	var found bool
	err := s.read(ctx, "has suppression", sk, func(t txn) error {
		var err error
		found, err = t.exists(sk)
		return err
	})
	return found, err
}

// DeleteSuppression implements storage.Store.
func (s *Store) DeleteSuppression(ctx context.Context, business, hash string) error {
	return s.write(ctx, "delete suppression", func(t txn) error {
		return t.del(suppressionKey(business, hash))
	})
}

// GetBusiness implements storage.Store.
func (s *Store) GetBusiness(ctx context.Context, business string) (validator.Business, error) {
	bk := businessKey(business)
	var b validator.Business
	err := s.read(ctx, "get business", bk, func(t txn) error {
		_, err := t.get(bk, "business", func(v []byte) error {
			return codec.DecodeBusiness(v, &b)
		})
		return err
	})
	if err != nil {
		return validator.Business{}, err
	}
	return b, nil
}

// UpdateBusiness implements storage.Store like UpdateContact: a stripe lock per
// business, then a transaction retried on conflict (fn may be called more than
// once). An error from fn aborts the update and is returned as is. fn must not
// call UpdateBusiness.
func (s *Store) UpdateBusiness(ctx context.Context, business string, fn func(b *validator.Business) error) (validator.Business, error) {
	if err := ctx.Err(); err != nil {
		return validator.Business{}, err
	}
	if err := s.enter(); err != nil {
		return validator.Business{}, err
	}
	defer s.inflight.Done()
	lk, err := s.business.Lock(ctx, s.seed, business)
	if err != nil {
		return validator.Business{}, err
	}
	defer stripe.Unlock(lk)

	bk := businessKey(business)
	var b validator.Business
	err = s.update(ctx, "update business", func(t txn) error {
		b = validator.Business{}
		if _, err := t.get(bk, "business", func(v []byte) error {
			return codec.DecodeBusiness(v, &b)
		}); err != nil {
			return err
		}
		if err := fn(&b); err != nil {
			return err // as is: the caller's own error
		}
		return t.put(bk, codec.AppendBusiness(nil, &b), 0)
	})
	if err != nil {
		return validator.Business{}, err
	}
	return b, nil
}

// GetPolicy implements storage.Store.
func (s *Store) GetPolicy(ctx context.Context, business string) ([]byte, error) {
	pk := policyKey(business)
	var policy []byte
	err := s.read(ctx, "get policy", pk, func(t txn) error {
		found, err := t.get(pk, "policy", func(v []byte) error {
			policy = append([]byte{}, v...) // v is only valid inside the transaction
			return nil
		})
		if err == nil && !found {
			return storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return policy, nil
}

// PutPolicy implements storage.Store.
func (s *Store) PutPolicy(ctx context.Context, business string, policy []byte) error {
	return s.write(ctx, "put policy", func(t txn) error {
		return t.put(policyKey(business), policy, 0)
	})
}

// Scan calls fn with every key that starts with prefix (all keys for an empty
// prefix), in order, without reading values; expired and deleted keys are not
// seen. key is a copy fn may keep. An error from fn stops the scan and is
// returned as is. Scan reads one snapshot; it is meant for tests and
// maintenance, not for request paths.
func (s *Store) Scan(ctx context.Context, prefix []byte, fn func(key []byte) error) error {
	return s.read(ctx, "scan", nil, func(t txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := t.NewIterator(opts)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(it.Item().KeyCopy(nil)); err != nil {
				return err
			}
		}
		return nil
	})
}

// read runs f in a read transaction of an open store (see view for key).
func (s *Store) read(ctx context.Context, op string, key []byte, f func(t txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	return s.view(op, key, f)
}

// write runs f in a read-write transaction of an open store (with the conflict
// retry; blind writes do not conflict in Badger, but f may read).
func (s *Store) write(ctx context.Context, op string, f func(t txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	return s.update(ctx, op, f)
}
