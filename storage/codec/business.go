package codec

import (
	"encoding/binary"
	"maps"
	"slices"
	"strings"

	"github.com/sendguard/sendguard/validator"
)

// Smallest encodings of a list element, used to bound list lengths on decode.
const (
	minTemplateSize    = 5 // name, PausedAt, Pauses, DisabledAt, OKAt
	minBucketSize      = 2 // Minute, Count
	minRestrictionSize = 6 // Kind, Sender, At, Streak, Ends, LiftedAt
)

// Business sections (see businessSection), after the restrictions.
const (
	// tagTemplates holds, for each template row in order, what came with
	// languages and Meta's template webhooks: Language, LiftedAt, flags
	// (BlockedLast), MarkedAt, ClearedAt.
	tagTemplates byte = 'T'
	// tagTier holds Meta's messaging tier: Tier, TierAt.
	tagTier byte = 'M'
)

// Template flags.
const templateBlockedLast byte = 1 << 0

// AppendBusiness appends the encoding of b to dst and returns the extended slice.
// Templates are written sorted by name, then language, one row each, so equal
// values encode equally. The restrictions (issue 14) come after the reach
// counts and only when there are any (or sections follow: then an empty list
// is written), so a business without them encodes as it did before they
// existed, and a record written before them decodes as a business without
// them. Later additions are tagged sections after the restrictions (see
// businessSection): a record written before a section decodes with its fields
// zero; in particular, templates written by name only decode as states known
// without a language, which apply to every language.
func AppendBusiness(dst []byte, b *validator.Business) []byte {
	dst = append(dst, Version)
	rows := 0
	for _, states := range b.Templates {
		rows += len(states)
	}
	dst = appendUint(dst, rows)
	names := slices.Sorted(maps.Keys(b.Templates))
	for _, name := range names {
		for _, t := range b.Templates[name] {
			dst = appendString(dst, name)
			dst = appendTime(dst, t.PausedAt)
			dst = appendInt(dst, t.Pauses)
			dst = appendTime(dst, t.DisabledAt)
			dst = appendTime(dst, t.OKAt)
		}
	}
	dst = appendUint(dst, len(b.Reached))
	for _, r := range b.Reached {
		dst = binary.AppendVarint(dst, r.Minute)
		dst = appendInt(dst, r.Count)
	}
	extended := templatesExtended(b)
	tier := b.Tier != 0 || !b.TierAt.IsZero()
	if len(b.Restrictions) > 0 || extended || tier {
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
	if tier {
		dst = append(dst, tagTier)
		dst = binary.AppendVarint(dst, int64(b.Tier))
		dst = appendTime(dst, b.TierAt)
	}
	if extended {
		dst = append(dst, tagTemplates)
		for _, name := range names {
			for _, t := range b.Templates[name] {
				dst = appendString(dst, t.Language)
				dst = appendTime(dst, t.LiftedAt)
				var flags byte
				if t.BlockedLast {
					flags |= templateBlockedLast
				}
				dst = append(dst, flags)
				dst = appendTime(dst, t.MarkedAt)
				dst = appendTime(dst, t.ClearedAt)
			}
		}
	}
	return dst
}

// templatesExtended reports whether any template has what the templates
// section holds.
func templatesExtended(b *validator.Business) bool {
	for _, states := range b.Templates {
		for i := range states {
			t := &states[i]
			if t.Language != "" || !t.LiftedAt.IsZero() || t.BlockedLast || !t.MarkedAt.IsZero() || !t.ClearedAt.IsZero() {
				return true
			}
		}
	}
	return false
}

// templateRow is one template row while a business decodes.
type templateRow struct {
	name string
	st   validator.TemplateState
}

// DecodeBusiness decodes data into b, replacing all of b. On error b is zeroed. b
// keeps no reference to data. An empty map or list decodes as nil; a template
// named twice in one language is an error, and so are restrictions out of
// order (by kind, then sender), of an unknown kind, more than
// validator.MaxRestrictions, an empty list of them with nothing after it
// (which AppendBusiness leaves out), and an unknown, repeated or misplaced
// section.
func DecodeBusiness(data []byte, b *validator.Business) error {
	d := decoder{b: data}
	d.version("business")
	*b = validator.Business{}
	var rows []templateRow
	if n := d.count("Templates", minTemplateSize, 0); n > 0 {
		rows = make([]templateRow, n)
		for i := range rows {
			rows[i].name = d.string("template name")
			rows[i].st = validator.TemplateState{
				PausedAt:   d.time("PausedAt"),
				Pauses:     d.int("Pauses"),
				DisabledAt: d.time("DisabledAt"),
				OKAt:       d.time("OKAt"),
			}
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
	decodeBusinessSections(&d, b, rows)
	if d.err == nil && len(rows) > 0 {
		b.Templates = templatesOf(&d, rows)
	}
	if err := d.finish("business"); err != nil {
		*b = validator.Business{}
		return err
	}
	return nil
}

// decodeBusinessSections reads the sections after the restrictions: the tier,
// then the templates' extension, each at most once, in that order.
func decodeBusinessSections(d *decoder, b *validator.Business, rows []templateRow) {
	order := []byte{tagTier, tagTemplates}
	next := 0
	for d.err == nil && d.off < len(d.b) {
		i := d.sectionTag("business", order, next)
		if i < 0 {
			return
		}
		next = i + 1
		switch order[i] {
		case tagTier:
			b.Tier = int(d.varint("Tier"))
			b.TierAt = d.time("TierAt")
		case tagTemplates:
			for i := range rows {
				st := &rows[i].st
				st.Language = d.string("template language")
				st.LiftedAt = d.time("LiftedAt")
				flags := d.byte("template flags")
				if flags&^templateBlockedLast != 0 {
					d.fail("template flags")
				}
				st.BlockedLast = flags&templateBlockedLast != 0
				st.MarkedAt = d.time("MarkedAt")
				st.ClearedAt = d.time("ClearedAt")
			}
		}
	}
}

// templatesOf groups template rows by name, each name's languages sorted; a
// name and language twice is an error.
func templatesOf(d *decoder, rows []templateRow) map[string][]validator.TemplateState {
	m := make(map[string][]validator.TemplateState)
	for _, r := range rows {
		m[r.name] = append(m[r.name], r.st)
	}
	for _, states := range m {
		slices.SortFunc(states, func(a, b validator.TemplateState) int { return strings.Compare(a.Language, b.Language) })
		for i := 1; i < len(states); i++ {
			if states[i].Language == states[i-1].Language {
				d.fail("template name and language (a duplicate)")
				return nil
			}
		}
	}
	return m
}

// decodeRestrictions reads the restrictions section: sorted; empty only when
// sections follow.
func decodeRestrictions(d *decoder) []validator.Restriction {
	n := d.count("Restrictions", minRestrictionSize, validator.MaxRestrictions)
	if n == 0 {
		if d.err == nil && d.off == len(d.b) {
			d.fail("Restrictions (an empty list is left out)")
		}
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
		case r.Sender != "" && !r.Kind.OfSender() && !r.Kind.ByRegion():
			d.fail("Restriction.Sender (an account restriction has none)")
		case r.Sender == "" && r.Kind.ByRegion():
			d.fail("Restriction.Sender (a region restriction names its region)")
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
