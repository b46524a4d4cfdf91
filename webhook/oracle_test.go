package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// oracleParse is Parse as it was before it decoded as a stream: the whole
// body unmarshalled at once by encoding/json, then flattened. It holds every
// item of the body in memory (1.5 GB for 8 MB of tiny items), so it only
// serves to check Parse: within Parse's caps both must give the same events,
// stats and errors.
func oracleParse(body []byte) ([]Event, Stats, error) {
	if !startsObject(body) {
		return nil, Stats{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	var w wireBody
	p := parser{}
	if err := json.Unmarshal(body, &w); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return nil, Stats{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if te.Field == "entry" && te.Type == reflect.TypeFor[[]wireEntry]() {
			return nil, Stats{}, fmt.Errorf("%w: entry is not an array", ErrMalformed)
		}
		// encoding/json left the mistyped field empty and went on; flatten
		// skips what that made unusable.
		p.st.add("type_mismatch")
	}
	return p.flatten(&w)
}

// sameAsOracle fails t when Parse and oracleParse disagree on body.
func sameAsOracle(t testing.TB, what string, body []byte) {
	t.Helper()
	evs, st, err := Parse(body)
	oevs, ost, oerr := oracleParse(body)
	switch {
	case (err == nil) != (oerr == nil):
		t.Fatalf("%s: Parse error %v, oracle error %v\nbody: %s", what, err, oerr, body)
	case err != nil && !errors.Is(err, ErrMalformed):
		t.Fatalf("%s: Parse error %v does not wrap ErrMalformed", what, err)
	case !reflect.DeepEqual(evs, oevs):
		t.Fatalf("%s: events differ\nParse:  %s\noracle: %s\nbody: %s", what, dump(evs), dump(oevs), body)
	case !reflect.DeepEqual(st, ost):
		t.Fatalf("%s: stats differ\nParse:  %v\noracle: %v\nbody: %s", what, st.Skipped, ost.Skipped, body)
	}
}

// FuzzParseMatchesOracle: within its caps, the streaming Parse gives what
// decoding the whole body with encoding/json gave.
func FuzzParseMatchesOracle(f *testing.F) {
	for _, b := range seedBodies(f) {
		f.Add(b)
	}
	for _, b := range []string{
		`{"entry":"x","object":5}`, `{"object":5,"entry":"x"}`, `{"object":"whatsapp_business_account","entry":[5,"x",null,{}]}`,
		`{"Object":"whatsapp_business_account","ENTRY":[{"Changes":[{"FIELD":"messages","Value":{"Statuses":[{"id":"a","status":"sent","recipient_id":"1"}]}}]}]}`,
		`{"entry":[{"changes":[{"value":{"statuses":[{"id":"a","status":"sent","recipient_id":"1"},{"id":"b"}]},"field":"messages"}]}],` +
			`"entry":[{"changes":[{"value":{"statuses":[{"status":"read"}]}}]}],"object":"whatsapp_business_account"}`,
		`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"ſtatuses":[{"id":"a","status":"sent","recipient_id":"1"}],"metadata":{"phone_number_id":"1"}}}]}]}`,
		`{"object":"whatsapp_business_account","entry":[]} {}`, `{"object":"whatsapp_business_account","entry":[]`,
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) >= 2*MaxEvents {
			return // may pass a cap: each element takes a byte and a separator
		}
		sameAsOracle(t, "fuzz", body)
	})
}

// seedBodies returns the bodies of testdata and a 3-status batch.
func seedBodies(t testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	var bodies [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	return append(bodies, statusBatch(3))
}

// TestParseMatchesOracleOnVariants rewrites every testdata body in the ways a
// streaming decoder could get wrong (every object's keys in reverse order; each
// value in turn replaced by a value of every other JSON type; every object's
// keys repeated in another case, arrays cut to their last element) and checks
// Parse against the oracle on each.
func TestParseMatchesOracleOnVariants(t *testing.T) {
	replacements := []string{`5`, `"x"`, `null`, `{}`, `[]`, `[5]`, `{"a":[1]}`, `true`}
	n := 0
	for i, b := range seedBodies(t) {
		root := parseTree(t, b)
		size := root.count()
		if got := root.render(variant{at: -1, repeat: -1}); !reflect.DeepEqual(generic(t, got), generic(t, b)) {
			t.Fatalf("body %d does not render back: %s", i, got)
		}
		sameAsOracle(t, fmt.Sprintf("body %d reversed", i), root.render(variant{reverse: true, at: -1, repeat: -1}))
		for at := range size {
			for _, with := range replacements {
				sameAsOracle(t, fmt.Sprintf("body %d node %d = %s", i, at, with), root.render(variant{at: at, with: with, repeat: -1}))
				sameAsOracle(t, fmt.Sprintf("body %d node %d = %s, reversed", i, at, with),
					root.render(variant{reverse: true, at: at, with: with, repeat: -1}))
				n += 2
			}
			repeated := root.render(variant{at: -1, repeat: at})
			if !json.Valid(repeated) {
				t.Fatalf("invalid variant: %s", repeated)
			}
			sameAsOracle(t, fmt.Sprintf("body %d node %d repeated", i, at), repeated)
			n++
		}
	}
	t.Logf("%d variants", n)
}

func generic(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// jnode is a JSON value with its object keys in body order.
type jnode struct {
	scalar string // the text of a string, number, true, false or null
	object bool
	array  bool
	keys   []string
	kids   []*jnode
}

func parseTree(t testing.TB, b []byte) *jnode {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n, err := readNode(dec)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readNode(dec *json.Decoder) (*jnode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		n := &jnode{object: v == '{', array: v == '['}
		for dec.More() {
			if n.object {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k.(string))
			}
			kid, err := readNode(dec)
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, kid)
		}
		_, err := dec.Token()
		return n, err
	case string:
		q, _ := json.Marshal(v)
		return &jnode{scalar: string(q)}, nil
	case nil:
		return &jnode{scalar: "null"}, nil
	default:
		return &jnode{scalar: fmt.Sprint(v)}, nil
	}
}

// count returns the number of values in n, n included.
func (n *jnode) count() int {
	c := 1
	for _, k := range n.kids {
		c += k.count()
	}
	return c
}

// variant says how render rewrites a tree: object keys in reverse order; the
// value numbered at (in pre-order; -1 for none) replaced by with; the object
// numbered repeat (-1 for none) given every key again, upper-cased, with
// arrays cut to their last element (which then decodes into the first).
type variant struct {
	reverse bool
	at      int
	with    string
	repeat  int
}

func (n *jnode) render(v variant) []byte {
	var b bytes.Buffer
	next := 0
	n.write(&b, v, &next, false)
	return b.Bytes()
}

// write renders n, numbered *next; lastOnly cuts arrays to their last
// element. Values written a second time (repeat) are numbered past the end.
func (n *jnode) write(b *bytes.Buffer, v variant, next *int, lastOnly bool) {
	i := *next
	*next++
	switch {
	case i == v.at:
		b.WriteString(v.with)
		*next += n.count() - 1
	case n.object:
		b.WriteByte('{')
		order := make([]int, len(n.kids))
		for k := range order {
			order[k] = k
			if v.reverse {
				order[k] = len(order) - 1 - k
			}
		}
		for j, k := range order {
			if j > 0 {
				b.WriteByte(',')
			}
			writeKey(b, n.keys[k])
			n.kids[k].write(b, v, next, lastOnly)
		}
		if i == v.repeat {
			copies := 1 << 30
			for _, k := range order {
				b.WriteByte(',')
				writeKey(b, strings.ToUpper(n.keys[k]))
				n.kids[k].write(b, v, &copies, true)
			}
		}
		b.WriteByte('}')
	case n.array:
		b.WriteByte('[')
		for j, k := range n.kids {
			if lastOnly && j < len(n.kids)-1 {
				*next += k.count()
				continue
			}
			if j > 0 && !lastOnly {
				b.WriteByte(',')
			}
			k.write(b, v, next, lastOnly)
		}
		b.WriteByte(']')
	default:
		b.WriteString(n.scalar)
	}
}

func writeKey(b *bytes.Buffer, k string) {
	q, _ := json.Marshal(k)
	b.Write(q)
	b.WriteByte(':')
}
