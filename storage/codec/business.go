package codec

import (
	"encoding/binary"
	"maps"
	"slices"

	"github.com/sendguard/sendguard/validator"
)

// Smallest encodings of a list element, used to bound list lengths on decode.
const (
	minTemplateSize = 5 // name, PausedAt, Pauses, DisabledAt, OKAt
	minBucketSize   = 2 // Minute, Count
)

// AppendBusiness appends the encoding of b to dst and returns the extended slice.
// Templates are written sorted by name, so equal values encode equally.
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
	return dst
}

// DecodeBusiness decodes data into b, replacing all of b. On error b is zeroed. b
// keeps no reference to data. An empty map or list decodes as nil; a template
// named twice is an error.
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
	if err := d.finish("business"); err != nil {
		*b = validator.Business{}
		return err
	}
	return nil
}
