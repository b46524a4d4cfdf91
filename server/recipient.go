package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"io"
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
	return storage.HashedNumberPrefix + s.opaque("n", e164)
}

// opaque is a keyed hash of v (22 characters), for identifiers that must not be
// readable from a copied data directory: dedup keys (Meta's wamids encode the
// recipient's number) always, message ids when numbers are hashed.
func (s *Server) opaque(kind, v string) string {
	if v == "" {
		return ""
	}
	sum := s.mac(kind, "\x00", v)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// mac is the HMAC-SHA256, keyed with the hash secret, of the parts written one
// after the other. Keyed HMACs come from a pool: keying one costs more than
// hashing a number with it.
func (s *Server) mac(parts ...string) (sum [sha256.Size]byte) {
	m, ok := s.macs.Get().(hash.Hash)
	if !ok {
		m = hmac.New(sha256.New, s.hashSecret)
	}
	for _, p := range parts {
		_, _ = io.WriteString(m, p) // a hash.Hash's Write never returns an error
	}
	m.Sum(sum[:0])
	m.Reset()
	s.macs.Put(m)
	return sum
}

// storedMessageID is the message id as the state keeps it.
func (s *Server) storedMessageID(id string) string {
	if !s.cfg.HashNumbers {
		return id
	}
	return s.opaque("m", id)
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

// suppressionHash is the keyed hash under which a forgotten opt-out is kept.
func (s *Server) suppressionHash(id string) string {
	sum := s.mac(id)
	return hex.EncodeToString(sum[:])
}

// region is the recipient's region ("" when the number is unknown).
func (r recipient) region() string {
	if !r.hasNumber {
		return ""
	}
	return r.number.Region
}
