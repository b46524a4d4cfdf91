package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// streamDecoder reads a webhook body into a wireBody the way json.Unmarshal
// would, but as a stream of tokens, so that what a body can make it hold is
// capped: the envelope (the body, entry[], changes[], value) is walked token by
// token, each item is decoded on its own, and items past their cap are
// skipped without being decoded into structs.
//
// encoding/json's behaviour is kept where a body departs from Meta's shape:
// keys match struct fields exactly or else under Unicode case folding, in any
// order; a repeated key decodes again into what the first one left (into the
// same slice elements); null leaves a struct as it is and empties a slice; a
// value of the wrong JSON type leaves its field as it is and is remembered
// (mismatch), and only the first such value decides whether the body is
// malformed ("entry" not an array); nesting deeper than encoding/json's limit
// is a syntax error.
type streamDecoder struct {
	body []byte
	dec  *json.Decoder
	// depth is how many containers around the next value were opened with
	// Token (encoding/json counts those toward its nesting limit too).
	depth int
	// mismatch is set once a value of the wrong JSON type was met.
	mismatch bool
	// left is what each cap still allows; overCap counts what was skipped.
	left    [numCaps]int
	overCap int
}

// The caps of one body: how many of each a body may hold.
const (
	capEntries  = iota // entry[] elements
	capChanges         // changes[] elements, over all entries
	capContacts        // value.contacts[] elements, over all values
	capItems           // statuses, messages, calls, user_preferences and restriction_info, over all values
	numCaps
)

// maxDepth is encoding/json's limit on nesting (its scanner's maxNestingDepth).
const maxDepth = 10000

var (
	errEntryNotArray = errors.New("entry is not an array")
	errTooDeep       = errors.New("exceeded max depth")
	errTrailingData  = errors.New("data after the top-level value")
)

func newStreamDecoder(body []byte) *streamDecoder {
	d := &streamDecoder{body: body, dec: json.NewDecoder(bytes.NewReader(body))}
	for i := range d.left {
		d.left[i] = MaxEvents
	}
	return d
}

// decodeBody reads the whole body, a JSON object, into w.
func (d *streamDecoder) decodeBody(w *wireBody) error {
	err := d.fields(func(key string) error {
		switch {
		case is(key, "object"):
			return d.decode(&w.Object)
		case is(key, "entry"):
			return d.entries(&w.Entry)
		}
		return d.skip()
	})
	if err != nil {
		return err
	}
	for _, c := range d.body[d.dec.InputOffset():] {
		if !isSpace(c) {
			return errTrailingData
		}
	}
	return nil
}

// entries reads "entry". That it is not an array makes the body malformed, as
// long as it is the first value of the wrong type in the body: encoding/json
// reports only the first.
func (d *streamDecoder) entries(dst *[]wireEntry) error {
	if c := d.peek(); c != '[' && c != 'n' && !d.mismatch {
		return errEntryNotArray
	}
	return slice(d, dst, capEntries, d.entry)
}

func (d *streamDecoder) entry(e *wireEntry) error {
	return d.structure(func(key string) error {
		switch {
		case is(key, "changes"):
			return slice(d, &e.Changes, capChanges, d.change)
		case is(key, "id"):
			return d.decode(&e.ID)
		case is(key, "time"):
			return d.decode(&e.Time)
		}
		return d.skip()
	})
}

func (d *streamDecoder) change(c *wireChange) error {
	return d.structure(func(key string) error {
		switch {
		case is(key, "field"):
			return d.decode(&c.Field)
		case is(key, "value"):
			return d.value(&c.Value)
		}
		return d.skip()
	})
}

func (d *streamDecoder) value(v *wireValue) error {
	return d.structure(func(key string) error {
		switch {
		case is(key, "metadata"):
			return d.decode(&v.Metadata)
		case is(key, "contacts"):
			return slice(d, &v.Contacts, capContacts, decodeInto[wireContact](d))
		case is(key, "statuses"):
			return slice(d, &v.Statuses, capItems, decodeInto[wireStatus](d))
		case is(key, "messages"):
			return slice(d, &v.Messages, capItems, decodeInto[wireMessage](d))
		case is(key, "calls"):
			return slice(d, &v.Calls, capItems, decodeInto[wireCall](d))
		case is(key, "user_preferences"):
			return slice(d, &v.UserPreferences, capItems, decodeInto[wirePreference](d))
		case is(key, "errors"):
			return d.decode(&v.Errors) // anyValue elements take no memory
		case is(key, "message_echoes"):
			return d.decode(&v.MessageEchoes)
		case is(key, "event"):
			return d.decode(&v.Event)
		case is(key, "restriction_info"):
			return slice(d, &v.RestrictionInfo, capItems, decodeInto[wireRestriction](d))
		case is(key, "ban_info"):
			return d.decode(&v.BanInfo)
		case is(key, "message_template_name"):
			return d.decode(&v.TemplateName)
		case is(key, "message_template_language"):
			return d.decode(&v.TemplateLanguage)
		case is(key, "other_info"):
			return d.decode(&v.OtherInfo)
		case is(key, "previous_category"):
			return d.decode(&v.PreviousCategory)
		case is(key, "new_category"):
			return d.decode(&v.NewCategory)
		case is(key, "correct_category"):
			return d.decode(&v.CorrectCategory)
		case is(key, "category_update_timestamp"):
			return d.decode(&v.CategoryUpdateTimestamp)
		case is(key, "max_daily_conversations_per_business"):
			return d.decode(&v.MaxPerBusiness)
		case is(key, "max_daily_conversation_per_phone"):
			return d.decode(&v.MaxPerPhone)
		case is(key, "display_phone_number"):
			return d.decode(&v.DisplayPhoneNumber)
		case is(key, "current_limit"):
			return d.decode(&v.CurrentLimit)
		}
		return d.skip()
	})
}

// structure reads an object into a struct, handing each key to field, which
// must read the key's value. null leaves the struct as it is; any other value
// is a mismatch.
func (d *streamDecoder) structure(field func(key string) error) error {
	switch d.peek() {
	case '{':
		return d.fields(field)
	case 'n':
		return d.skip()
	}
	d.mismatch = true
	return d.skip()
}

// fields reads an object, handing each key to field.
func (d *streamDecoder) fields(field func(key string) error) error {
	if err := d.open(); err != nil {
		return err
	}
	for d.dec.More() {
		t, err := d.dec.Token()
		if err != nil {
			return err
		}
		key, ok := t.(string)
		if !ok {
			return errors.New("object key is not a string")
		}
		if err := field(key); err != nil {
			return err
		}
	}
	return d.close()
}

// slice reads a JSON array into *dst as encoding/json decodes into a slice:
// element i goes into the slice's element i when it has one (so a repeated key
// decodes again into what the first occurrence left), the slice is cut to the
// array's length, and an empty array leaves an empty, non-nil slice. null
// empties the slice; any other value is a mismatch. New elements are made
// only while the cap limit allows; the others are skipped unread and counted.
func slice[T any](d *streamDecoder, dst *[]T, limit int, elem func(*T) error) error {
	switch d.peek() {
	case '[':
	case 'n':
		*dst = nil
		return d.skip()
	default:
		d.mismatch = true
		return d.skip()
	}
	if err := d.open(); err != nil {
		return err
	}
	s, i := *dst, 0
	for d.dec.More() {
		if i >= len(s) {
			if d.left[limit] == 0 {
				d.overCap++
				if err := d.skip(); err != nil {
					return err
				}
				continue
			}
			d.left[limit]--
			if i < cap(s) {
				s = s[:i+1] // encoding/json reuses what lies past the length too
			} else {
				var zero T
				s = append(s, zero)
			}
		}
		if err := elem(&s[i]); err != nil {
			return err
		}
		i++
	}
	if err := d.close(); err != nil {
		return err
	}
	if i == 0 {
		s = []T{}
	}
	*dst = s[:i]
	return nil
}

// decodeInto returns a function that decodes the next value into its argument.
func decodeInto[T any](d *streamDecoder) func(*T) error {
	return func(v *T) error { return d.decode(v) }
}

// decode reads the next value into v with encoding/json. A value of the wrong
// type is not an error: it is remembered, and v keeps what encoding/json made
// of it.
func (d *streamDecoder) decode(v any) error {
	start := d.dec.InputOffset()
	if err := d.dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return err
		}
		d.mismatch = true
	}
	return d.checkDepth(start)
}

// skip reads the next value and keeps nothing of it.
func (d *streamDecoder) skip() error {
	var v anyValue
	return d.decode(&v)
}

// open reads the '{' or '[' that peek saw.
func (d *streamDecoder) open() error {
	if _, err := d.dec.Token(); err != nil {
		return err
	}
	d.depth++
	return nil
}

// close reads the '}' or ']' that ends the container being read.
func (d *streamDecoder) close() error {
	if _, err := d.dec.Token(); err != nil {
		return err
	}
	d.depth--
	return nil
}

// peek returns the first byte of the next value (or of whatever stands there;
// the Decoder checks the syntax when it reads it), 0 at the end of the body.
func (d *streamDecoder) peek() byte {
	for _, c := range d.body[d.dec.InputOffset():] {
		if !isSpace(c) && c != ':' && c != ',' {
			return c
		}
	}
	return 0
}

// checkDepth fails when the value read since offset start, inside d.depth
// containers, nests deeper than encoding/json allows in a whole body.
func (d *streamDecoder) checkDepth(start int64) error {
	room := maxDepth - d.depth
	end := d.dec.InputOffset()
	if end-start < 2*int64(room+1) { // nesting deeper than room takes more bytes
		return nil
	}
	if nesting(d.body[start:end]) > room {
		return errTooDeep
	}
	return nil
}

// nesting returns how deep the containers of b, valid JSON, nest.
func nesting(b []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString && c == '\\':
			i++
		case inString:
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// is reports whether an object key names a struct field the way encoding/json
// matches them: exactly, or else equal under Unicode case folding.
func is(key, field string) bool { return key == field || strings.EqualFold(key, field) }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
