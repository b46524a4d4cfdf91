package codec

import (
	"reflect"
	"slices"
	"testing"

	"github.com/sendguard/sendguard/internal/fieldtest"
	"github.com/sendguard/sendguard/validator"
)

// The codec lists every field it writes by hand. These tests fill every field
// of a value (fieldtest.Fill: a field added to the type later is filled too),
// encode and decode it, and want it back whole: a field the codec forgot comes
// back zero, and the test names it.

func TestEveryRelationshipFieldRoundTrips(t *testing.T) {
	var r validator.Relationship
	fieldtest.Fill(&r)
	// What the format keeps so by construction: the implicit sender has no
	// name, a named sender has one, and a send's sender is one of them.
	r.SenderState.Sender = ""
	r.Sends[0].Sender = r.Senders[0].Sender
	wantRoundTrip(t, &r, DecodeRelationship,
		AppendRelationship(nil, &r), "Sender")
}

func TestEveryNumberFactsFieldRoundTrips(t *testing.T) {
	var f validator.NumberFacts
	fieldtest.Fill(&f)
	wantRoundTrip(t, &f, DecodeNumberFacts,
		AppendNumberFacts(nil, &f))
}

func TestEveryBusinessFieldRoundTrips(t *testing.T) {
	var b validator.Business
	fieldtest.Fill(&b)
	// A restriction's kind is one of the kinds the validator knows.
	b.Restrictions[0].Kind = validator.SenderThroughput
	wantRoundTrip(t, &b, DecodeBusiness,
		AppendBusiness(nil, &b))
}

// wantRoundTrip decodes enc and wants in back, with no field zero but those of
// zeroByDesign.
func wantRoundTrip[T any](t *testing.T, in *T, decode func([]byte, *T) error, enc []byte, zeroByDesign ...string) {
	t.Helper()
	if z := slices.DeleteFunc(fieldtest.Zero(in), func(p string) bool { return slices.Contains(zeroByDesign, p) }); len(z) != 0 {
		t.Fatalf("the fixture is not full: %v", z)
	}
	var got T
	if err := decode(enc, &got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if z := slices.DeleteFunc(fieldtest.Zero(&got), func(p string) bool { return slices.Contains(zeroByDesign, p) }); len(z) != 0 {
		t.Errorf("fields lost by the codec (add them to its Append and Decode): %v", z)
	}
	if !reflect.DeepEqual(&got, in) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, *in)
	}
}
