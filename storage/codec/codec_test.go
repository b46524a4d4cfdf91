package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator"
)

// at builds a time the way the decoder does (UTC, no monotonic reading), so that
// reflect.DeepEqual compares round-tripped values equal.
func at(sec int64) time.Time { return time.Unix(sec, 123_456_789).UTC() }

const base = 1_780_000_000 // 2026-05-28

func fullFacts() validator.NumberFacts {
	return validator.NumberFacts{
		EcoAt:                    at(base + 1),
		EcoStreak:                3,
		ExperimentAt:             at(base + 2),
		UndeliverableAt:          at(base + 3),
		UndeliverableStreak:      -2, // not meaningful, but the codec must keep it
		LastDeliveredAt:          at(base + 4),
		LastMarketingDeliveredAt: at(base + 5),
		WaID:                     "5215512345678",
	}
}

// typicalRelationship is a marketing recipient with a few weeks of history.
func typicalRelationship(sends int) validator.Relationship {
	r := validator.Relationship{
		SenderState: validator.SenderState{
			MetaStopAt:     at(base - 900),
			MetaResumeAt:   at(base - 800),
			LastInboundAt:  at(base - 500),
			WindowClosedAt: at(base - 400),
			PairTAT:        at(base + 6),
			PairStreak:     2,
			PairLimitedAt:  at(base - 300),
		},
		OwnStopAt:      at(base - 700),
		OwnStopReason:  "STOP keyword",
		OwnStartAt:     at(base - 600),
		OwnStartReason: "SetOptOut(false): signed up on the web form",
		ConsentAt:      at(base - 600),
		ConsentReason:  "SetOptOut(false): signed up on the web form",
		UserID:         "BR.1502576394655843",
		WaID:           "5215512345678",
		Local:          fullFacts(),
	}
	for i := range sends {
		r.Sends = append(r.Sends, validator.Send{
			At:         at(base + int64(i)*3600),
			Ref:        fmt.Sprintf("ref-%08d", i),
			MessageID:  fmt.Sprintf("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjQ%04d", i),
			Category:   sgv1.Category_CATEGORY_MARKETING,
			Template:   "spring_sale_v2",
			CampaignID: "cmp-2026-05",
			Failed:     i%3 == 1,
			Reached:    i%2 == 0,
			Delivered:  i%3 == 0,
			Inferred:   i%4 == 3,
			Slot:       i%5 == 0,
		})
	}
	for i := range 5 {
		r.Events = append(r.Events, validator.Event{At: at(base + int64(i)), Text: "delivered spring_sale_v2"})
	}
	return r
}

func fullBusiness() validator.Business {
	return validator.Business{
		Templates: map[string][]validator.TemplateState{
			"spring_sale_v2": {{PausedAt: at(base), Pauses: 1}, {Language: "pt_BR", PausedAt: at(base + 1), Pauses: 2, LiftedAt: at(base + 1), BlockedLast: true}},
			"otp":            {{DisabledAt: at(base + 10), OKAt: at(base + 20)}},
			"welcome":        {{}},
			"promo":          {{Language: "en_US", MarkedAt: at(base + 30), ClearedAt: at(base + 3)}},
		},
		Tier:    -1,
		TierAt:  at(base + 40),
		Reached: []validator.ReachBucket{{Minute: base / 60, Count: 7}, {Minute: base/60 + 1, Count: 1}},
		Restrictions: []validator.Restriction{
			{Kind: validator.SenderSpam, Sender: "106540352242922", At: at(base), Streak: 2, LiftedAt: at(base - 100)},
			{Kind: validator.SenderSpam, Sender: "206540352242922", At: at(base + 1), Streak: 0, LiftedAt: at(base + 50)},
			{Kind: validator.AccountLocked, At: at(base + 2), Streak: 1},
			{Kind: validator.AccountBusinessInitiated, At: at(base + 3), Streak: 1, Ends: at(base + 86400)},
		},
	}
}

// TestBusinessWithoutRestrictions: a business without restrictions encodes as
// it did before they existed, and a record written then decodes.
func TestBusinessWithoutRestrictions(t *testing.T) {
	b := fullBusiness()
	b.Restrictions = nil
	// No templates, one bucket (minute 5, count 2): as a pre-issue-14 build wrote it.
	old := AppendBusiness(nil, &validator.Business{Reached: []validator.ReachBucket{{Minute: 5, Count: 2}}})
	if want := []byte{Version, 0, 1, 10, 4}; !bytes.Equal(old, want) {
		t.Fatalf("encoding of a business without restrictions = %x, want the old format %x", old, want)
	}
	var got validator.Business
	if err := DecodeBusiness(AppendBusiness(nil, &b), &got); err != nil || got.Restrictions != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("decode without restrictions: %v, %+v", err, got)
	}
}

// withSenders gives r two named senders, each with its own state, and
// attributes its sends to them and to the implicit sender in turn.
func withSenders(r validator.Relationship) validator.Relationship {
	r.ReferralAt, r.FreeEntryAt = at(base-100), at(base-90)
	r.Senders = []validator.SenderState{
		{Sender: "106540352242922", MetaStopAt: at(base - 50), LastInboundAt: at(base - 40), ReferralAt: at(base - 40),
			FreeEntryAt: at(base - 30), PairTAT: at(base + 12), PairStreak: 1, PairLimitedAt: at(base - 20)},
		{Sender: "301234567890123", MetaResumeAt: at(base - 10), WindowClosedAt: at(base - 5)},
	}
	for i := range r.Sends {
		switch i % 3 {
		case 1:
			r.Sends[i].Sender = "106540352242922"
		case 2:
			r.Sends[i].Sender = "301234567890123"
		}
	}
	return r
}

// TestRelationshipWithoutSendersEncodesAsBefore: a relationship that never
// heard of a sender is written byte for byte as before issue 14 (no trailer),
// so a record written by the previous release decodes as the implicit
// sender's state, and the hot path's records do not grow.
func TestRelationshipWithoutSendersEncodesAsBefore(t *testing.T) {
	r := typicalRelationship(10)
	b := AppendRelationship(nil, &r)
	r.Senders = []validator.SenderState{{Sender: "106540352242922"}}
	withTrailer := AppendRelationship(nil, &r)
	if !bytes.HasPrefix(withTrailer, b) || len(withTrailer) <= len(b) {
		t.Fatalf("the senders' trailer does not extend the old encoding (%d then %d bytes)", len(b), len(withTrailer))
	}
	var got validator.Relationship
	if err := DecodeRelationship(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Senders != nil || got.ReferralAt != (time.Time{}) {
		t.Errorf("an old record decodes with senders: %+v", got.Senders)
	}
}

func TestRelationshipRoundTrip(t *testing.T) {
	for name, r := range map[string]validator.Relationship{
		"zero":    {},
		"typical": typicalRelationship(10),
		"full":    typicalRelationship(validator.MaxSends),
		"unicode": {OwnStopReason: "¡Basta! 停止", Sends: []validator.Send{{Template: "ação"}}},
		"negative times": {
			SenderState: validator.SenderState{MetaStopAt: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)},
			Sends:       []validator.Send{{At: at(-5), Category: sgv1.Category(math.MinInt32)}},
		},
		"senders":               withSenders(typicalRelationship(10)),
		"implicit free entry":   {SenderState: validator.SenderState{ReferralAt: at(base), FreeEntryAt: at(base + 60)}},
		"senders without sends": {Senders: []validator.SenderState{{Sender: "106540352242922", MetaStopAt: at(base)}}},
	} {
		t.Run(name, func(t *testing.T) {
			b := AppendRelationship(nil, &r)
			var got validator.Relationship
			if err := DecodeRelationship(b, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
			}
		})
	}
}

func TestDecodeReplacesEverything(t *testing.T) {
	got := typicalRelationship(3)
	if err := DecodeRelationship(AppendRelationship(nil, &validator.Relationship{}), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, validator.Relationship{}) {
		t.Fatalf("decoding the zero value left %+v", got)
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	r := typicalRelationship(2)
	b := AppendRelationship([]byte("prefix"), &r)
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatal("prefix overwritten")
	}
	var got validator.Relationship
	if err := DecodeRelationship(b[len("prefix"):], &got); err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("decode after prefix: %v", err)
	}
}

func TestNumberFactsRoundTrip(t *testing.T) {
	for name, f := range map[string]validator.NumberFacts{"zero": {}, "full": fullFacts()} {
		t.Run(name, func(t *testing.T) {
			var got validator.NumberFacts
			if err := DecodeNumberFacts(AppendNumberFacts(nil, &f), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, f)
			}
		})
	}
}

func TestBusinessRoundTrip(t *testing.T) {
	for name, b := range map[string]validator.Business{"zero": {}, "full": fullBusiness()} {
		t.Run(name, func(t *testing.T) {
			var got validator.Business
			if err := DecodeBusiness(AppendBusiness(nil, &b), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, b) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, b)
			}
		})
	}
}

func TestBusinessEncodingIsDeterministic(t *testing.T) {
	b := fullBusiness()
	first := AppendBusiness(nil, &b)
	for range 20 { // map iteration order varies from run to run
		if again := AppendBusiness(nil, &b); !bytes.Equal(again, first) {
			t.Fatalf("two encodings of one value differ:\n%x\n%x", first, again)
		}
	}
}

func TestTimeEdges(t *testing.T) {
	r := validator.Relationship{
		SenderState: validator.SenderState{
			MetaStopAt:   time.Unix(0, 0),                             // the epoch reads back as "never"
			MetaResumeAt: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), // clamped
		},
		OwnStopAt:  time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), // clamped
		OwnStartAt: time.Date(2026, 5, 1, 12, 0, 0, 5, time.FixedZone("BRT", -3*3600)),
	}
	var got validator.Relationship
	if err := DecodeRelationship(AppendRelationship(nil, &r), &got); err != nil {
		t.Fatal(err)
	}
	if !got.MetaStopAt.IsZero() {
		t.Errorf("epoch decoded as %v, want the zero time", got.MetaStopAt)
	}
	if want := time.Unix(0, math.MaxInt64).UTC(); !got.MetaResumeAt.Equal(want) {
		t.Errorf("year 9999 decoded as %v, want %v", got.MetaResumeAt, want)
	}
	if want := time.Unix(0, math.MinInt64).UTC(); !got.OwnStopAt.Equal(want) {
		t.Errorf("year 1000 decoded as %v, want %v", got.OwnStopAt, want)
	}
	if !got.OwnStartAt.Equal(r.OwnStartAt) || got.OwnStartAt.Location() != time.UTC {
		t.Errorf("zoned time decoded as %v, want %v in UTC", got.OwnStartAt, r.OwnStartAt)
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	r := typicalRelationship(3)
	good := AppendRelationship(nil, &r)

	// Every strict prefix of a valid encoding is truncated.
	for n := range len(good) {
		var got validator.Relationship
		if err := DecodeRelationship(good[:n], &got); !errors.Is(err, ErrInvalid) {
			t.Fatalf("prefix of %d/%d bytes: err = %v, want ErrInvalid", n, len(good), err)
		}
		if !reflect.DeepEqual(got, validator.Relationship{}) {
			t.Fatalf("prefix of %d bytes: value not zeroed on error", n)
		}
	}

	bad := map[string][]byte{
		"trailing byte":   append(bytes.Clone(good), 0),
		"unknown version": append([]byte{Version + 1}, good[1:]...),
		// Version, 8 zero fields, then a list of 2^62 sends.
		"huge send count": {Version, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40},
		// One send with every field empty and an unknown flag bit.
		"unknown flags": append([]byte{Version, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x80}, make([]byte, relTail)...),
		// One send whose category does not fit an int32 (zig-zag 2^32).
		"category range":  {Version, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x20, 0, 0, 0},
		"varint overflow": {Version, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		// A string longer than the input.
		"string length": {Version, 0, 0, 0, 0x7f, 'x'},
	}
	over := typicalRelationship(validator.MaxSends + 1) // more than any history keeps
	bad["sends over MaxSends"] = AppendRelationship(nil, &over)
	over = typicalRelationship(0)
	for range validator.MaxEvents + 1 {
		over.Events = append(over.Events, validator.Event{Text: "x"})
	}
	bad["events over MaxEvents"] = AppendRelationship(nil, &over)
	over = typicalRelationship(0)
	for i := range validator.MaxSenders + 1 {
		over.Senders = append(over.Senders, validator.SenderState{Sender: fmt.Sprintf("%03d", i)})
	}
	bad["senders over MaxSenders"] = AppendRelationship(nil, &over)
	unsorted := withSenders(typicalRelationship(0))
	unsorted.Senders[0], unsorted.Senders[1] = unsorted.Senders[1], unsorted.Senders[0]
	bad["senders out of order"] = AppendRelationship(nil, &unsorted)
	unnamed := typicalRelationship(0)
	unnamed.Senders = []validator.SenderState{{}}
	bad["unnamed sender"] = AppendRelationship(nil, &unnamed)
	index := withSenders(typicalRelationship(1))
	b := AppendRelationship(nil, &index)
	b[len(b)-1] = 3 // the one send's sender: past the two named
	bad["send's sender out of range"] = b
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			var got validator.Relationship
			if err := DecodeRelationship(b, &got); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}

	t.Run("duplicate template", func(t *testing.T) {
		b := []byte{Version, 2, 1, 'a', 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 0}
		var got validator.Business
		if err := DecodeBusiness(b, &got); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
	})
	for name, tail := range map[string][]byte{
		"empty restrictions":          {0},
		"unknown restriction kind":    {1, 99, 0, 0, 0, 0, 0},
		"kind none":                   {1, 0, 0, 0, 0, 0, 0},
		"account restriction, sender": {1, byte(validator.AccountLocked), 1, 'a', 0, 0, 0, 0},
		"restrictions out of order": {2, byte(validator.AccountLocked), 0, 0, 0, 0, 0,
			byte(validator.SenderSpam), 0, 0, 0, 0, 0},
		"restriction repeated": {2, byte(validator.SenderSpam), 1, 'a', 0, 0, 0, 0,
			byte(validator.SenderSpam), 1, 'a', 0, 0, 0, 0},
		"restriction truncated": {1, byte(validator.SenderSpam), 1, 'a', 0, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			b := append([]byte{Version, 0, 0}, tail...) // no templates, no buckets
			var got validator.Business
			if err := DecodeBusiness(b, &got); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	t.Run("wrong type", func(t *testing.T) {
		var f validator.NumberFacts
		if err := DecodeNumberFacts(good, &f); !errors.Is(err, ErrInvalid) {
			t.Fatalf("a relationship decoded as number facts: err = %v", err)
		}
	})
}

// The sanity checks above use hand-built bytes; make sure the ones meant to be
// otherwise valid really are (so each exercises the check it names).
func TestHandBuiltEncodingsAreOtherwiseValid(t *testing.T) {
	oneSend := append([]byte{Version, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, sendFailed}, make([]byte, relTail)...)
	var r validator.Relationship
	if err := DecodeRelationship(oneSend, &r); err != nil || len(r.Sends) != 1 || !r.Sends[0].Failed {
		t.Fatalf("one-send encoding: %v, %+v", err, r)
	}
	b := []byte{Version, 2, 1, 'a', 0, 0, 0, 0, 1, 'b', 0, 0, 0, 0, 0}
	var biz validator.Business
	if err := DecodeBusiness(b, &biz); err != nil || len(biz.Templates) != 2 {
		t.Fatalf("two-template encoding: %v, %+v", err, biz)
	}
	two := []byte{Version, 0, 0, 2, byte(validator.SenderSpam), 1, 'a', 0, 0, 0, 0,
		byte(validator.SenderSpam), 1, 'b', 0, 0, 0, 0}
	if err := DecodeBusiness(two, &biz); err != nil || len(biz.Restrictions) != 2 {
		t.Fatalf("two-restriction encoding: %v, %+v", err, biz)
	}
}

func TestDecodedStringsDoNotAliasInput(t *testing.T) {
	r := typicalRelationship(2)
	b := AppendRelationship(nil, &r)
	var got validator.Relationship
	if err := DecodeRelationship(b, &got); err != nil {
		t.Fatal(err)
	}
	clear(b) // as Badger may reuse its value buffer after the transaction
	if !reflect.DeepEqual(got, r) {
		t.Fatal("decoded value changed when the input buffer was overwritten")
	}
}

func FuzzDecodeRelationship(f *testing.F) {
	for _, r := range []validator.Relationship{{}, typicalRelationship(1), typicalRelationship(4), withSenders(typicalRelationship(3))} {
		f.Add(AppendRelationship(nil, &r))
	}
	f.Add([]byte{})
	f.Add([]byte{Version})
	f.Add([]byte{Version, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r1 validator.Relationship
		if err := DecodeRelationship(b, &r1); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		enc1 := AppendRelationship(nil, &r1)
		var r2 validator.Relationship
		if err := DecodeRelationship(enc1, &r2); err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if !reflect.DeepEqual(r1, r2) {
			t.Fatalf("round trip changed the value:\n%+v\n%+v", r1, r2)
		}
		if enc2 := AppendRelationship(nil, &r2); !bytes.Equal(enc1, enc2) {
			t.Fatalf("encoding is not stable:\n%x\n%x", enc1, enc2)
		}
	})
}

func FuzzDecodeBusiness(f *testing.F) {
	for _, b := range []validator.Business{{}, fullBusiness()} {
		f.Add(AppendBusiness(nil, &b))
	}
	f.Add([]byte{Version, 2, 1, 'a', 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b1 validator.Business
		if err := DecodeBusiness(data, &b1); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		enc := AppendBusiness(nil, &b1)
		var b2 validator.Business
		if err := DecodeBusiness(enc, &b2); err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if !reflect.DeepEqual(b1, b2) {
			t.Fatalf("round trip changed the value:\n%+v\n%+v", b1, b2)
		}
	})
}

func BenchmarkAppendRelationship(b *testing.B) {
	r := typicalRelationship(10)
	buf := AppendRelationship(nil, &r)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRelationship(buf[:0], &r)
	}
}

func BenchmarkDecodeRelationship(b *testing.B) {
	for _, tc := range []struct {
		name string
		r    validator.Relationship
	}{
		{"typical", typicalRelationship(10)},
		{"typical-two-senders", withSenders(typicalRelationship(10))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			buf := AppendRelationship(nil, &tc.r)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			var got validator.Relationship
			for b.Loop() {
				if err := DecodeRelationship(buf, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// relTail is the size of the zero-valued fields that follow Sends in a
// relationship: PairTAT, PairStreak, PairLimitedAt, UserID, WaID, the 8 fields of
// Local and the Events count.
const relTail = 14

// TestSections installs two sections for the test's length (the real ones
// come with the fields they hold) and checks how they are written and read.
func TestSections(t *testing.T) {
	saved := sections
	t.Cleanup(func() { sections = saved })
	// Two sections that each hold one of the relationship's strings, so that
	// the test needs no field of its own: 'a' keeps OwnStopReason's copy in
	// OwnStartReason when OwnStopReason is "a", 'b' when it is "b" or "ab".
	mk := func(tag byte, want string) section {
		return section{
			tag:     tag,
			present: func(r *validator.Relationship) bool { return bytes.ContainsRune([]byte(r.OwnStopReason), rune(tag)) },
			append: func(dst []byte, r *validator.Relationship) []byte {
				return appendString(dst, want)
			},
			decode: func(d *decoder, r *validator.Relationship) { r.OwnStartReason += d.string(want) },
		}
	}
	sections = []section{mk('a', "A"), mk('b', "B")}

	for _, tc := range []struct {
		reason, want string
		senders      bool
	}{
		{"", "", false}, {"a", "A", false}, {"b", "B", false}, {"ab", "AB", false}, {"ab", "AB", true},
	} {
		r := typicalRelationship(3)
		r.OwnStopReason, r.OwnStartReason = tc.reason, ""
		if tc.senders {
			r.Senders = []validator.SenderState{{Sender: "106540352242922"}}
		}
		b := AppendRelationship(nil, &r)
		var got validator.Relationship
		if err := DecodeRelationship(b, &got); err != nil {
			t.Fatalf("%q: %v", tc.reason, err)
		}
		if got.OwnStartReason != tc.want || len(got.Senders) != len(r.Senders) {
			t.Errorf("%q (senders %v): sections read %q, %d senders; want %q", tc.reason, tc.senders, got.OwnStartReason, len(got.Senders), tc.want)
		}
	}

	// A record without sections is the record of before; each bad tag sequence
	// is refused.
	r := typicalRelationship(3)
	r.OwnStopReason = "ab"
	b := AppendRelationship(nil, &r)
	i := bytes.LastIndexByte(b, 'a') // the 'a' tag: "A" and the 'b' section follow
	if i < 0 || !bytes.Equal(b[i:], []byte{'a', 1, 'A', 'b', 1, 'B'}) {
		t.Fatalf("sections not at the end as expected: % x", b[max(0, len(b)-8):])
	}
	for name, tail := range map[string][]byte{
		"unknown tag":  {'c', 1, 'C'},
		"out of order": {'b', 1, 'B', 'a', 1, 'A'},
		"repeated":     {'a', 1, 'A', 'a', 1, 'A'},
		"truncated":    {'a', 5, 'A'},
	} {
		bad := append(slices.Clone(b[:i]), tail...)
		var got validator.Relationship
		if err := DecodeRelationship(bad, &got); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}

// TestConsentSection: consent is kept apart from the lift of the business's
// own opt-out (section 'c', written only when reading the record as an older
// one would not give it back), and a record written before is read as the
// README's upgrade note says: a lift whose reason names its keyword is
// re-judged by this release's opt-in keywords (START, UNSTOP: the lift stands,
// no consent; VOLTAR, ALTA: no lift, the opt-out is in force again), any other
// lift stands as lift and consent.
func TestConsentSection(t *testing.T) {
	stop, lift, consent := at(base-700), at(base-600), at(base-500)
	mk := func(startReason string, consentAt time.Time, consentReason string) validator.Relationship {
		r := typicalRelationship(2)
		r.OwnStopAt, r.OwnStartAt, r.OwnStartReason = stop, lift, startReason
		r.ConsentAt, r.ConsentReason = consentAt, consentReason
		return r
	}
	type state struct {
		optedOut, consented bool
		consentAt           time.Time
		consentReason       string
	}
	for _, tc := range []struct {
		name        string
		rel         validator.Relationship
		written     bool  // a 'c' section is written
		now, legacy state // read back from this release's record, and from the record of before
	}{
		{"SetOptOut(false): lift and consent", mk("web form", lift, "web form"), false,
			state{false, true, lift, "web form"}, state{false, true, lift, "web form"}},
		{"START keyword, not consent", mk(`keyword "START"`, time.Time{}, ""), true,
			state{false, false, time.Time{}, ""}, state{false, false, time.Time{}, ""}},
		{"START keyword recorded as consent", mk(`keyword "START"`, lift, `keyword "START"`), true,
			state{false, true, lift, `keyword "START"`}, state{false, false, time.Time{}, ""}},
		{"VOLTAR keyword", mk(`keyword "VOLTAR"`, lift, `keyword "VOLTAR"`), true,
			state{false, true, lift, `keyword "VOLTAR"`}, state{true, false, time.Time{}, ""}},
		{"alta keyword", mk(`keyword "alta"`, lift, `keyword "alta"`), true,
			state{false, true, lift, `keyword "alta"`}, state{true, false, time.Time{}, ""}},
		{"a consent apart from the lift", mk("web form", consent, "double opt-in"), true,
			state{false, true, consent, "double opt-in"}, state{false, true, lift, "web form"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, b []byte, want state) {
				t.Helper()
				var got validator.Relationship
				if err := DecodeRelationship(b, &got); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				g := state{got.OwnOptedOut(), got.Consented(), got.ConsentAt, got.ConsentReason}
				if !g.consentAt.Equal(want.consentAt) || g.optedOut != want.optedOut || g.consented != want.consented || g.consentReason != want.consentReason {
					t.Errorf("%s: read %+v, want %+v", what, g, want)
				}
			}
			b := AppendRelationship(nil, &tc.rel)
			saved := sections
			sections = nil // as the release before wrote it: no consent, the lift was consent
			old := AppendRelationship(nil, &tc.rel)
			sections = saved
			if written := !bytes.Equal(b, old); written != tc.written {
				t.Errorf("section written %v, want %v", written, tc.written)
			}
			check("this release's record", b, tc.now)
			check("the record of before", old, tc.legacy)
		})
	}
}

// TestSendLanguages: each send's template language round-trips in section
// 't'; a relationship without languages encodes as before the section existed.
func TestSendLanguages(t *testing.T) {
	r := typicalRelationship(3)
	before := AppendRelationship(nil, &r)
	r.Sends[1].Language = "pt_BR"
	b := AppendRelationship(nil, &r)
	var got validator.Relationship
	if err := DecodeRelationship(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
	r.Sends[1].Language = ""
	if after := AppendRelationship(nil, &r); !bytes.Equal(after, before) {
		t.Error("a relationship without languages encodes differently than before section 't'")
	}
}

// TestBusinessTemplatesByNameOnly: a business record written before
// languages were kept (templates by name only) decodes as states known
// without a language, which apply to every language; a name and language
// twice is refused.
func TestBusinessTemplatesByNameOnly(t *testing.T) {
	old := []byte{Version, 1, 5, 'p', 'r', 'o', 'm', 'o', 0, 2, 0, 0, 0} // Pauses 1 (zigzag)
	var b validator.Business
	if err := DecodeBusiness(old, &b); err != nil {
		t.Fatal(err)
	}
	if st := b.Templates["promo"]; len(st) != 1 || st[0].Language != "" || st[0].Pauses != 1 {
		t.Fatalf("old record decodes as %+v", b.Templates)
	}
	if again := AppendBusiness(nil, &b); !bytes.Equal(again, old) {
		t.Errorf("re-encoded as %v, want %v (unchanged)", again, old)
	}
	dup := validator.Business{Templates: map[string][]validator.TemplateState{"promo": {{Language: "en"}, {Language: "en", Pauses: 1}}}}
	if err := DecodeBusiness(AppendBusiness(nil, &dup), &b); err == nil {
		t.Error("a template named twice in one language decoded")
	}
}
