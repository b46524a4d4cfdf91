package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"

	"github.com/sendguard/sendguard/identity"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// recipient is a request's recipient resolved to its storage key.
type recipient struct {
	key       storage.ContactKey
	number    identity.Number // valid when hasNumber
	hasNumber bool
	invalid   bool   // a phone was given and is not a possible number
	detail    string // why it is invalid
	userID    string
}

// resolve finds the key of (business, phone, userID): the canonical number when the
// phone parses, else the number linked to the user ID, else the user ID itself.
func (s *Server) resolve(ctx context.Context, business, phone, userID string) (recipient, error) {
	r := recipient{userID: userID, key: storage.ContactKey{Business: business}}
	if phone != "" {
		n, err := identity.Parse(phone, s.cfg.DefaultRegion)
		if err == nil {
			r.number, r.hasNumber = n, true
			r.key.ID = n.E164
			return r, nil
		}
		r.invalid, r.detail = true, err.Error()
		if userID == "" {
			return r, nil
		}
	}
	num, err := s.store.GetLink(ctx, business, userID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		r.key.ID = storage.UserIDPrefix + userID
	case err != nil:
		return r, err
	default:
		n, perr := identity.Parse(num, "")
		if perr != nil {
			r.key.ID = storage.UserIDPrefix + userID
			break
		}
		r.number, r.hasNumber = n, true
		r.key.ID = n.E164
	}
	return r, nil
}

// link records that userID is the recipient's number for the business, when an
// event names both, and folds a history kept under the bare user ID into the
// number's.
func (s *Server) link(ctx context.Context, r recipient) error {
	if !r.hasNumber || r.userID == "" {
		return nil
	}
	cur, err := s.store.GetLink(ctx, r.key.Business, r.userID)
	if err == nil && cur == r.number.E164 {
		return nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err := s.store.SetLink(ctx, r.key.Business, r.userID, r.number.E164); err != nil {
		return err
	}
	old := storage.ContactKey{Business: r.key.Business, ID: storage.UserIDPrefix + r.userID}
	prev, err := s.store.GetContact(ctx, old)
	if err != nil || !prev.RelFound {
		return err
	}
	now := s.cfg.Now()
	err = s.store.UpdateContact(ctx, r.key, "", func(c *storage.Contact) (storage.Write, error) {
		mergeRelationship(&c.Rel, &prev.Rel)
		return storage.Write{Rel: true, RelTTL: ttl(c.Rel.ExpiresAt(&s.cfg.Defaults), now)}, nil
	})
	if err != nil {
		return err
	}
	_, err = s.store.DeleteContact(ctx, old)
	return err
}

// mergeRelationship folds src (a history kept under a bare user ID) into dst.
func mergeRelationship(dst, src *validator.Relationship) {
	if src.MetaStopAt.After(dst.MetaStopAt) {
		dst.MetaStopAt = src.MetaStopAt
	}
	if src.MetaResumeAt.After(dst.MetaResumeAt) {
		dst.MetaResumeAt = src.MetaResumeAt
	}
	if src.OwnStopAt.After(dst.OwnStopAt) {
		dst.OwnStopAt, dst.OwnStopReason = src.OwnStopAt, src.OwnStopReason
	}
	if src.OwnStartAt.After(dst.OwnStartAt) {
		dst.OwnStartAt, dst.OwnStartReason = src.OwnStartAt, src.OwnStartReason
	}
	if src.LastInboundAt.After(dst.LastInboundAt) {
		dst.LastInboundAt = src.LastInboundAt
	}
	if src.WindowClosedAt.After(dst.WindowClosedAt) {
		dst.WindowClosedAt = src.WindowClosedAt
	}
	for _, snd := range src.Sends {
		if validator.FindSend(dst, snd.Ref, snd.MessageID) < 0 || (snd.Ref == "" && snd.MessageID == "") {
			dst.Sends = append(dst.Sends, snd)
		}
	}
	slices.SortStableFunc(dst.Sends, func(a, b validator.Send) int { return a.At.Compare(b.At) })
	if len(dst.Sends) > validator.MaxSends {
		dst.Sends = dst.Sends[len(dst.Sends)-validator.MaxSends:]
	}
	if src.PairTAT.After(dst.PairTAT) {
		dst.PairTAT = src.PairTAT
	}
	dst.Events = append(dst.Events, src.Events...)
	slices.SortStableFunc(dst.Events, func(a, b validator.Event) int { return a.At.Compare(b.At) })
	if len(dst.Events) > validator.MaxEvents {
		dst.Events = dst.Events[len(dst.Events)-validator.MaxEvents:]
	}
}

// suppressionHash is the keyed hash under which a forgotten opt-out is kept.
func (s *Server) suppressionHash(id string) string {
	m := hmac.New(sha256.New, s.hashSecret)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}
