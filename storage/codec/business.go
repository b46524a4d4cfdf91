package codec

import (
	"encoding/binary"
	"maps"
	"slices"

	"github.com/sendguard/sendguard/validator"
)

// Smallest encodings of a list element, used to bound list lengths on decode.
const (
	minTemplateSize    = 5 // name, PausedAt, Pauses, DisabledAt, OKAt
	minBucketSize      = 2 // Minute, Count
	minRestrictionSize = 6 // Kind, Sender, At, Streak, Ends, LiftedAt
)

// AppendBusiness appends the encoding of b to dst and returns the extended slice.
// Templates are written sorted by name, so equal values encode equally. The
// restrictions (issue 14) come last and only when there are any, so a business
// without them encodes as it did before they existed, and a record written
// before them decodes as a business without them.
func AppendBusiness(dst []byte, b *validator.Business) []byte {
	dst = append(dst, Version)
	dst = appendUint(dst, len(b.Templates))
	for _, name := range slices.Sorted(maps.Keys(b.Templates)) {
		t := b.Templates[name]
		dst = appendString(dst, name)
		dst = appendTime(dst, t.PausedAt)
		dst = appendInt(dst, t.Pauses)
		dst = appendTime(dst, t.DisabledAt)
		dst = appendTime(dst, t.OKAt)
	}
	dst = appendUint(dst, len(b.Reached))
	for _, r := range b.Reached {
		dst = binary.AppendVarint(dst, r.Minute)
		dst = appendInt(dst, r.Count)
	}
	if len(b.Restrictions) > 0 {
		dst = appendUint(dst, len(b.Restrictions))
		for i := range b.Restrictions {
			r := &b.Restrictions[i]
			dst = append(dst, byte(r.Kind))
			dst = appendString(dst, r.Sender)
			dst = appendTime(dst, r.At)
			dst = appendInt(dst, r.Streak)
			dst = appendTime(dst, r.Ends)
			dst = appendTime(dst, r.LiftedAt)
		}
	}
	return dst
}

// DecodeBusiness decodes data into b, replacing all of b. On error b is zeroed. b
// keeps no reference to data. An empty map or list decodes as nil; a template
// named twice is an error, and so are restrictions out of order (by kind, then
// sender), of an unknown kind, more than validator.MaxRestrictions, or an empty
// list of them (which AppendBusiness leaves out).
func DecodeBusiness(data []byte, b *validator.Business) error {
	d := decoder{b: data}
	d.version("business")
	*b = validator.Business{}
	if n := d.count("Templates", minTemplateSize, 0); n > 0 {
		b.Templates = make(map[string]validator.TemplateState, n)
		for range n {
			name := d.string("template name")
			t := validator.TemplateState{
				PausedAt:   d.time("PausedAt"),
				Pauses:     d.int("Pauses"),
				DisabledAt: d.time("DisabledAt"),
				OKAt:       d.time("OKAt"),
			}
			if _, dup := b.Templates[name]; dup {
				d.fail("template name (a duplicate)")
			}
			b.Templates[name] = t
		}
	}
	if n := d.count("Reached", minBucketSize, 0); n > 0 {
		b.Reached = make([]validator.ReachBucket, n)
		for i := range b.Reached {
			b.Reached[i].Minute = d.varint("ReachBucket.Minute")
			b.Reached[i].Count = d.int("ReachBucket.Count")
		}
	}
	if d.err == nil && d.off < len(d.b) {
		b.Restrictions = decodeRestrictions(&d)
	}
	if err := d.finish("business"); err != nil {
		*b = validator.Business{}
		return err
	}
	return nil
}

// decodeRestrictions reads the restrictions section: a non-empty list, sorted.
func decodeRestrictions(d *decoder) []validator.Restriction {
	n := d.count("Restrictions", minRestrictionSize, validator.MaxRestrictions)
	if n == 0 {
		d.fail("Restrictions (an empty list is left out)")
		return nil
	}
	rs := make([]validator.Restriction, n)
	for i := range rs {
		r := &rs[i]
		r.Kind = validator.RestrictionKind(d.byte("Restriction.Kind"))
		if d.err == nil && !r.Kind.Valid() {
			d.fail("Restriction.Kind")
		}
		r.Sender = d.string("Restriction.Sender")
		r.At = d.time("Restriction.At")
		r.Streak = d.int("Restriction.Streak")
		r.Ends = d.time("Restriction.Ends")
		r.LiftedAt = d.time("Restriction.LiftedAt")
		switch {
		case d.err != nil:
			return nil
		case r.Sender != "" && !r.Kind.OfSender():
			d.fail("Restriction.Sender (an account restriction has none)")
		case i > 0 && !restrictionBefore(&rs[i-1], r):
			d.fail("Restrictions (out of order or repeated)")
		}
	}
	return rs
}

// restrictionBefore is the order of Business.Restrictions: by kind, then sender.
func restrictionBefore(a, b *validator.Restriction) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Sender < b.Sender
}
