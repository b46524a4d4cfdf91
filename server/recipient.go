package server

import (
	"context"
	"errors"
	"strings"

	"github.com/sendguard/sendguard/identity"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// recipient is a request's recipient resolved to its storage key. It is 128
// bytes: the closures of reserve and the report paths capture it by value, and a
// larger one would be moved to the heap (one more allocation per call).
type recipient struct {
	key       storage.ContactKey
	number    identity.Number // set when hasNumber
	hasNumber bool
	invalid   bool   // a phone was given and could not be read (see national)
	national  bool   // invalid because it is spelled nationally and no region reads it
	detail    string // why it is invalid
	userID    string
}

// numberProblem is what INVALID_NUMBER judges about the recipient's phone.
func (r *recipient) numberProblem() validator.NumberProblem {
	switch {
	case r.invalid && r.national:
		return validator.NumberNational
	case r.invalid:
		return validator.NumberImpossible
	case r.hasNumber && !r.number.Valid:
		return validator.NumberNotValid
	}
	return validator.NumberOK
}

// phoneIn is a phone as a call names it, with what it is read by.
type phoneIn struct {
	raw string
	// region is the request's region field ("" when not given; checked by the
	// request's validation).
	region string
	// meta marks a number from Meta's webhooks: international always, so no
	// region reads it, not even the policy's.
	meta bool
}

// readBy returns the region national spellings of p are read by (DESIGN.md,
// Number identity): the request's, else the business policy's default_region
// (which is the deployment's unless the business set its own); none for Meta's
// numbers.
func (p phoneIn) readBy(snap *bizSnapshot) string {
	switch {
	case p.meta:
		return ""
	case p.region != "":
		return p.region
	}
	return snap.policy.DefaultRegion
}

// resolve finds the key of (business, phone, userID): the canonical number when the
// phone parses, else the number linked to the user ID, else the user ID itself.
func (s *Server) resolve(ctx context.Context, b *business, phone phoneIn, userID string) (recipient, error) {
	r := recipient{userID: userID, key: storage.ContactKey{Business: b.id}}
	if phone.raw != "" {
		n, err := identity.Parse(phone.raw, phone.readBy(b.snap.Load()))
		if err == nil {
			r.number, r.hasNumber = n, true
			r.key.ID = s.numberKey(n.E164)
			return r, nil
		}
		r.invalid, r.national, r.detail = true, errors.Is(err, identity.ErrNational), err.Error()
		if userID == "" {
			return r, nil
		}
	}
	num, err := s.store.GetLink(ctx, b.id, userID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		r.key.ID = storage.UserIDPrefix + userID
	case err != nil:
		return r, err
	case strings.HasPrefix(num, storage.HashedNumberPrefix):
		// A keyed-hash deployment links to the hashed key: the number itself is
		// not known, its history is.
		r.key.ID = num
	default:
		n, perr := identity.Parse(num, "")
		if perr != nil {
			r.key.ID = storage.UserIDPrefix + userID
			break
		}
		r.number, r.hasNumber = n, true
		r.key.ID = s.numberKey(n.E164)
	}
	return r, nil
}

// numberKey is the storage key of a number: the E.164 itself, or its keyed hash
// when the deployment stores no numbers (hash_numbers).
func (s *Server) numberKey(e164 string) string {
	if !s.cfg.HashNumbers {
		return e164
	}
	return storage.HashedNumberPrefix + s.hash.opaque("n", e164)
}

// storedMessageID is the message id as the state keeps it.
func (s *Server) storedMessageID(id string) string {
	if !s.cfg.HashNumbers {
		return id
	}
	return s.hash.opaque("m", id)
}

// link records that userID is the recipient's number for the business, when an
// event names both, after folding a history kept under the bare user ID into the
// number's. The link is written last, so a failure part-way leaves the user ID's
// history in place to be folded by the next event; the fold is idempotent.
func (s *Server) link(ctx context.Context, r recipient) error {
	if !r.hasNumber || r.userID == "" {
		return nil
	}
	cur, err := s.store.GetLink(ctx, r.key.Business, r.userID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	old := storage.ContactKey{Business: r.key.Business, ID: storage.UserIDPrefix + r.userID}
	prev, err := s.store.GetContact(ctx, old)
	if err != nil {
		return err
	}
	if prev.RelFound {
		b, err := s.biz.get(ctx, r.key.Business)
		if err != nil {
			return err
		}
		now := s.cfg.Now()
		err = s.store.UpdateContact(ctx, r.key, "", func(c *storage.Contact) (storage.Write, error) {
			snap := b.snap.Load()
			before := c.Facts
			validator.MergeRelationship(&c.Rel, &prev.Rel, &snap.policy)
			// What was learned about the user before their number was known
			// becomes number-wide knowledge (when the business shares it).
			validator.MergeFacts(factsFor(snap, c, r), &prev.Rel.Local)
			if c.Rel.UserID == "" {
				c.Rel.UserID = r.userID
			}
			return s.writeBack(snap, c, before, now), nil
		})
		if err != nil {
			return err
		}
		if _, _, err := s.store.DeleteContact(ctx, old); err != nil {
			return err
		}
	}
	if cur == r.key.ID {
		return nil
	}
	return s.store.SetLink(ctx, r.key.Business, r.userID, r.key.ID)
}

// region is the recipient's region ("" when the number is unknown).
func (r recipient) region() string {
	if !r.hasNumber {
		return ""
	}
	return r.number.Region
}
