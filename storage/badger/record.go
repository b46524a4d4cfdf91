package badger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A contact record holds everything the store knows about one recipient id under
// one key, c\x00<id>: the number-wide facts (numbers only) and the relationship of
// each business that has one, each part with its own expiry. A check is then one
// point read, and a write that changes the relationship and the facts one set.
//
//	version      1 byte, recordVersion
//	facts        uvarint length (0: none), then uvarint expiry and the bytes of
//	             codec.AppendNumberFacts
//	businesses   uvarint count, then per business: uvarint length and the
//	             business; uvarint expiry; uvarint length and the bytes of
//	             codec.AppendRelationship
//
// and nothing after it.
//
// Expiries are Unix seconds, as Badger keeps its own (0: never). A part past its
// expiry reads as missing and the next write drops it; the key expires with its
// longest-lived part, so Badger drops a record once none of its parts lives.
const recordVersion = 1

// part is one part of a record: encoded bytes and their expiry.
type part struct {
	exp  uint64 // Unix seconds; 0: never
	data []byte // nil: absent
}

// live tells whether p exists and has not expired at now (Unix seconds), by
// Badger's own rule for keys.
func (p part) live(now uint64) bool { return p.data != nil && (p.exp == 0 || p.exp > now) }

// expiryAfter is the part expiry of a TTL from now, rounded up to whole seconds
// so that a part never expires before its TTL has passed (0 for no TTL).
func expiryAfter(ttl time.Duration) uint64 {
	if ttl == 0 {
		return 0
	}
	return uint64(time.Now().Add(ttl + time.Second - time.Nanosecond).Unix())
}

// nowSeconds is the clock parts expire by: Badger's (wall-clock Unix seconds).
func nowSeconds() uint64 { return uint64(time.Now().Unix()) }

var errRecordTruncated = errors.New("truncated")

// scanRecord returns v's facts part and calls rel with each relationship part in
// order, stopping at rel's first error. The parts point into v.
func scanRecord(v []byte, rel func(business []byte, p part) error) (part, error) {
	switch {
	case len(v) == 0:
		return part{}, errRecordTruncated
	case v[0] != recordVersion:
		return part{}, fmt.Errorf("unknown version %d", v[0])
	}
	d := v[1:]
	var facts part
	n, d, err := uvarint(d)
	if err != nil {
		return part{}, err
	}
	if n > 0 {
		if facts.exp, d, err = uvarint(d); err != nil {
			return part{}, err
		}
		if facts.data, d, err = take(d, n); err != nil {
			return part{}, err
		}
	}
	count, d, err := uvarint(d)
	if err != nil {
		return part{}, err
	}
	for ; count > 0; count-- {
		var biz []byte
		var p part
		if n, d, err = uvarint(d); err != nil {
			return part{}, err
		}
		if biz, d, err = take(d, n); err != nil {
			return part{}, err
		}
		if p.exp, d, err = uvarint(d); err != nil {
			return part{}, err
		}
		if n, d, err = uvarint(d); err != nil {
			return part{}, err
		}
		if p.data, d, err = take(d, n); err != nil {
			return part{}, err
		}
		if p.data == nil {
			p.data = []byte{} // present, if empty
		}
		if err := rel(biz, p); err != nil {
			return part{}, err
		}
	}
	if len(d) > 0 {
		return part{}, errors.New("trailing bytes")
	}
	return facts, nil
}

func uvarint(d []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(d)
	if n <= 0 {
		return 0, nil, errRecordTruncated
	}
	return v, d[n:], nil
}

func take(d []byte, n uint64) ([]byte, []byte, error) {
	if n > uint64(len(d)) {
		return nil, nil, errRecordTruncated
	}
	return d[:n:n], d[n:], nil
}

// contactRecord is a contact record decoded for a write: its live parts, in order.
type contactRecord struct {
	facts part
	rels  []relPart
}

type relPart struct {
	business string
	part
}

// parseRecord decodes v keeping the parts live at now; they point into v.
func parseRecord(v []byte, now uint64) (contactRecord, error) {
	var r contactRecord
	facts, err := scanRecord(v, func(business []byte, p part) error {
		if p.live(now) {
			r.rels = append(r.rels, relPart{business: string(business), part: p})
		}
		return nil
	})
	if err != nil {
		return contactRecord{}, err
	}
	if facts.live(now) {
		r.facts = facts
	}
	return r, nil
}

// rel returns the index of business's relationship, or -1.
func (r *contactRecord) rel(business string) int {
	for i := range r.rels {
		if r.rels[i].business == business {
			return i
		}
	}
	return -1
}

// removeRel removes business's relationship, reporting whether there was one.
func (r *contactRecord) removeRel(business string) bool {
	i := r.rel(business)
	if i >= 0 {
		r.rels = slices.Delete(r.rels, i, i+1)
	}
	return i >= 0
}

// setRel replaces business's relationship (adding it last when new); a negative
// ttl removes it.
func (r *contactRecord) setRel(business string, data []byte, ttl time.Duration) {
	if ttl < 0 {
		r.removeRel(business)
		return
	}
	p := part{exp: expiryAfter(ttl), data: data}
	if i := r.rel(business); i >= 0 {
		r.rels[i].part = p
	} else {
		r.rels = append(r.rels, relPart{business: business, part: p})
	}
}

// setFacts replaces the facts; a negative ttl removes them.
func (r *contactRecord) setFacts(data []byte, ttl time.Duration) {
	if ttl < 0 {
		r.facts = part{}
		return
	}
	r.facts = part{exp: expiryAfter(ttl), data: data}
}

func (r *contactRecord) empty() bool { return r.facts.data == nil && len(r.rels) == 0 }

// expiry is the key's: its longest-lived part's (0 when one never expires).
func (r *contactRecord) expiry() uint64 {
	var most uint64
	lives := func(p part) bool { // false: p exists and never expires
		if p.data != nil {
			if p.exp == 0 {
				return false
			}
			most = max(most, p.exp)
		}
		return true
	}
	if !lives(r.facts) {
		return 0
	}
	for _, p := range r.rels {
		if !lives(p.part) {
			return 0
		}
	}
	return most
}

// appendRecord appends r's encoding to dst.
func appendRecord(dst []byte, r *contactRecord) []byte {
	dst = append(dst, recordVersion)
	if len(r.facts.data) == 0 {
		// Empty facts are stored as none: the facts codec never encodes to
		// nothing, and a missing part reads as the zero value anyway.
		dst = binary.AppendUvarint(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(r.facts.data)))
		dst = binary.AppendUvarint(dst, r.facts.exp)
		dst = append(dst, r.facts.data...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.rels)))
	for _, p := range r.rels {
		dst = binary.AppendUvarint(dst, uint64(len(p.business)))
		dst = append(dst, p.business...)
		dst = binary.AppendUvarint(dst, p.exp)
		dst = binary.AppendUvarint(dst, uint64(len(p.data)))
		dst = append(dst, p.data...)
	}
	return dst
}
