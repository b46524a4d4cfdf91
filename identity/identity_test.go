package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		region string // region to read national spellings by
		e164   string
		want   string // Number.Region
		fold   Fold
		input  string
		valid  bool
	}{
		// One US number, every accepted spelling.
		{"us e164", "+16505551234", "", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us digits only", "16505551234", "", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us digits only, spaces around", " 16505551234\t", "", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us brackets", "+1 (650) 555-1234", "", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us dashes with region", "1-650-555-1234", "US", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us dots", "+1.650.555.1234", "", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us slash and square", "+1 [650] 555/1234", "", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us unicode separators", "+1\u00a0650\u2013555\u20111234", "", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us national", "(650) 555-1234", "US", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us national lower-case region", "650 555 1234", "us", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us national digits", "6505551234", "US", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us digits with region", "16505551234", "US", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us e164 with other region", "+16505551234", "BR", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us 00 with other region", "00 1 650 555 1234", "US", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us 00 without region", "0016505551234", "", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us via IDD from GB", "00 1 650 555 1234", "GB", "+16505551234", "US", FoldNone, "16505551234", true},
		{"us via IDD from US", "011 1 650 555 1234", "US", "+16505551234", "US", FoldNone, "16505551234", true},
		{"gb via IDD from US", "011 44 7400 123456", "US", "+447400123456", "GB", FoldNone, "447400123456", true},
		// International when national is not valid: a US number in a Brazilian file.
		{"us digits in region BR", "16505551234", "BR", "+16505551234", "US", FoldNone, "16505551234", true},
		// +1 shared by the US and Canada: libphonenumber tells them apart by area code.
		{"canada toronto", "+1 416 555 0123", "", "+14165550123", "CA", FoldNone, "14165550123", true},
		{"canada digits", "14165550123", "", "+14165550123", "CA", FoldNone, "14165550123", true},
		{"canada national", "(416) 555-0123", "US", "+14165550123", "CA", FoldNone, "14165550123", true},
		{"gb national mobile", "07400 123456", "GB", "+447400123456", "GB", FoldNone, "447400123456", true},

		// Mexico: libphonenumber calls the WhatsApp ID "5215512345678" not even
		// possible (11-digit national number); it folds to +525512345678.
		{"mx canonical", "+525512345678", "", "+525512345678", "MX", FoldNone, "525512345678", true},
		{"mx whatsapp id", "5215512345678", "", "+525512345678", "MX", FoldMexico, "5215512345678", true},
		{"mx whatsapp id plus", "+52 1 55 1234 5678", "", "+525512345678", "MX", FoldMexico, "5215512345678", true},
		{"mx whatsapp id with region", "5215512345678", "US", "+525512345678", "MX", FoldMexico, "5215512345678", true},
		{"mx whatsapp id with its region", "5215512345678", "MX", "+525512345678", "MX", FoldMexico, "5215512345678", true},
		{"mx guadalajara", "5213312345678", "", "+523312345678", "MX", FoldMexico, "5213312345678", true},
		{"mx national", "55 1234 5678", "MX", "+525512345678", "MX", FoldNone, "525512345678", true},
		// The old national mobile prefix '1' is read nationally first: Mexican.
		{"mx national old mobile prefix", "1 55 1234 5678", "MX", "+525512345678", "MX", FoldMexico, "5215512345678", true},

		// Brazil: the 8-digit mobile "551187654321" is invalid for
		// libphonenumber; it folds to the 9-digit +5511987654321.
		{"br canonical", "+55 11 98765-4321", "", "+5511987654321", "BR", FoldNone, "5511987654321", true},
		{"br old mobile", "551187654321", "", "+5511987654321", "BR", FoldBrazil, "551187654321", true},
		{"br old mobile plus", "+55 (11) 8765-4321", "", "+5511987654321", "BR", FoldBrazil, "551187654321", true},
		{"br old mobile rio", "552187654321", "", "+5521987654321", "BR", FoldBrazil, "552187654321", true},
		{"br old mobile national", "(11) 8765-4321", "BR", "+5511987654321", "BR", FoldBrazil, "551187654321", true},
		{"br crm national", "(31) 99551-1909", "BR", "+5531995511909", "BR", FoldNone, "5531995511909", true},
		{"br crm national digits", "31995511909", "BR", "+5531995511909", "BR", FoldNone, "5531995511909", true},
		{"br digits with country code and region", "5531995511909", "BR", "+5531995511909", "BR", FoldNone, "5531995511909", true},
		// libphonenumber strips the trunk '0' itself.
		{"br national trunk", "011 98765 4321", "BR", "+5511987654321", "BR", FoldNone, "5511987654321", true},
		// Landlines are valid as given and left alone.
		{"br landline", "551133334444", "", "+551133334444", "BR", FoldNone, "551133334444", true},
		{"br landline 5", "551153456789", "", "+551153456789", "BR", FoldNone, "551153456789", true},
		// 8-digit "7xxx" numbers in area 11 are valid MOBILE as given in
		// libphonenumber's metadata, so they are never rewritten.
		{"br valid 8-digit mobile", "551171234567", "", "+551171234567", "BR", FoldNone, "551171234567", true},

		// Argentina: libphonenumber itself folds the national "15" prefix
		// into the "9" mobile form while parsing (region AR's transform rule).
		{"ar canonical", "+54 9 11 1234 5678", "", "+5491112345678", "AR", FoldNone, "5491112345678", true},
		{"ar 15 plus", "+54 11 15 1234 5678", "", "+5491112345678", "AR", FoldArgentina, "54111512345678", true},
		{"ar 15 digits", "54111512345678", "", "+5491112345678", "AR", FoldArgentina, "54111512345678", true},
		{"ar 15 trunk", "+54 011 15 1234 5678", "", "+5491112345678", "AR", FoldArgentina, "540111512345678", true},
		{"ar 15 national", "011 15 1234 5678", "AR", "+5491112345678", "AR", FoldArgentina, "5491112345678", true},
		{"ar 15 cordoba", "+54 351 15 512 3456", "", "+5493515123456", "AR", FoldArgentina, "54351155123456", true},
		{"ar 15 4-digit area", "+54 2966 15 42 3456", "", "+5492966423456", "AR", FoldArgentina, "54296615423456", true},
		// Both '9' and "15": libphonenumber leaves it (too long); this package folds it.
		{"ar 9 and 15", "+54 9 11 15 1234 5678", "", "+5491112345678", "AR", FoldArgentina, "549111512345678", true},
		{"ar 9 and 15 cordoba", "549351155123456", "", "+5493515123456", "AR", FoldArgentina, "549351155123456", true},
		// Without '9' the number is a valid landline: never rewritten.
		{"ar landline", "541112345678", "", "+541112345678", "AR", FoldNone, "541112345678", true},

		// Digits that start with the region's calling code and are a valid
		// international number: libphonenumber's national pattern for DE and
		// ID also takes the whole string (as +49 4915123456789).
		{"de whatsapp id with region", "4915123456789", "DE", "+4915123456789", "DE", FoldNone, "4915123456789", true},
		{"id whatsapp id with region", "6281234567890", "ID", "+6281234567890", "ID", FoldNone, "6281234567890", true},
		{"de national", "0151 23456789", "DE", "+4915123456789", "DE", FoldNone, "4915123456789", true},

		// Possible but not valid numbers pass unchanged, not Valid.
		{"nanpa exchange 1xx", "+16501234567", "", "+16501234567", "", FoldNone, "16501234567", false},
		{"nanpa no such area code", "+11951373735", "", "+11951373735", "", FoldNone, "11951373735", false},
		{"non-geographic unassigned", "+882 1234 5678", "", "+88212345678", "", FoldNone, "88212345678", false},
		{"br unassigned mobile", "+55 11 1234 5678", "", "+551112345678", "BR", FoldNone, "551112345678", false},
		// Neither reading valid: the region's own wins over a foreign one.
		{"br possible national over possible foreign", "1112345678", "BR", "+551112345678", "BR", FoldNone, "551112345678", false},
		// Non-geographic freephone: valid, no ISO region.
		{"freephone 800", "+800 1234 5678", "", "+80012345678", "", FoldNone, "80012345678", true},
		// A region libphonenumber has no numbering plan for: digits are still
		// read internationally.
		{"digits in region without a plan", "5511987654321", "AQ", "+5511987654321", "BR", FoldNone, "5511987654321", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse(tt.raw, tt.region)
			if err != nil {
				t.Fatalf("Parse(%q, %q): %v", tt.raw, tt.region, err)
			}
			want := Number{E164: tt.e164, Region: tt.want, Fold: tt.fold, Input: tt.input, Valid: tt.valid}
			if n != want {
				t.Fatalf("Parse(%q, %q) = %+v, want %+v", tt.raw, tt.region, n, want)
			}
			// The canonical form parses to itself, unfolded, whatever the region.
			for _, region := range []string{"", "US", "BR", "DE"} {
				again, err := Parse(n.E164, region)
				if err != nil || again.E164 != n.E164 || again.Fold != FoldNone || again.Region != n.Region || again.Valid != n.Valid {
					t.Fatalf("Parse(%q, %q) = %+v, %v; want itself, FoldNone", n.E164, region, again, err)
				}
			}
		})
	}
}

// TestParseNational: a spelling that is national by its look is never read
// without a region, and says how to fix it.
func TestParseNational(t *testing.T) {
	for _, raw := range []string{
		"(31) 99551-1909",    // the Brazilian CRM: not the Netherlands' +31 995511909
		"31 99551-1909",      //
		"(650) 555-1234",     // US
		"1-650-555-1234",     // US with its country code but no '+'
		"650.555.1234",       //
		"55 1234 5678",       // MX
		"07400 123456",       // GB, trunk prefix
		"07400123456",        // digits only, but a trunk prefix: not international
		"011 1 650 555 1234", // the US international prefix needs the region
		"5411151234 5678",    // a space makes it national
	} {
		n, err := Parse(raw, "")
		if !errors.Is(err, ErrNational) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q, \"\") = %+v, %v; want ErrNational", raw, n, err)
		}
		if err != nil && !strings.Contains(err.Error(), "set a region") {
			t.Errorf("Parse(%q): %q does not name the fix", raw, err)
		}
	}
}

// TestLibphonenumberFacts pins what the fold rules rely on, so a metadata
// update that changes them fails here first.
func TestLibphonenumberFacts(t *testing.T) {
	facts := []struct {
		raw      string
		possible bool
		valid    bool
		typ      phonenumbers.PhoneNumberType
	}{
		{"+5215512345678", false, false, phonenumbers.UNKNOWN},           // MX WhatsApp ID: not even possible
		{"+525512345678", true, true, phonenumbers.FIXED_LINE_OR_MOBILE}, // MX canonical
		{"+551187654321", true, false, phonenumbers.UNKNOWN},             // BR 8-digit mobile: invalid
		{"+5511987654321", true, true, phonenumbers.MOBILE},              // BR 9-digit mobile
		{"+551133334444", true, true, phonenumbers.FIXED_LINE},           // BR landline
		{"+541112345678", true, true, phonenumbers.FIXED_LINE},           // AR without 9: a landline
		{"+5491112345678", true, true, phonenumbers.MOBILE},              // AR mobile
		{"+549111512345678", false, false, phonenumbers.UNKNOWN},         // AR 9 and 15: too long
		{"+14165550123", true, true, phonenumbers.FIXED_LINE_OR_MOBILE},  // CA
		{"+16505551234", true, true, phonenumbers.FIXED_LINE_OR_MOBILE},  // US
		{"+16501234567", true, false, phonenumbers.UNKNOWN},              // possible, not valid
	}
	for _, f := range facts {
		pn, err := phonenumbers.Parse(f.raw, "")
		if err != nil {
			t.Fatalf("phonenumbers.Parse(%q): %v", f.raw, err)
		}
		if got := phonenumbers.IsPossibleNumber(pn); got != f.possible {
			t.Errorf("IsPossibleNumber(%s) = %v, want %v", f.raw, got, f.possible)
		}
		if got := phonenumbers.IsValidNumber(pn); got != f.valid {
			t.Errorf("IsValidNumber(%s) = %v, want %v", f.raw, got, f.valid)
		}
		if got := phonenumbers.GetNumberType(pn); got != f.typ {
			t.Errorf("GetNumberType(%s) = %v, want %v", f.raw, got, f.typ)
		}
	}
	// libphonenumber folds the Argentine "15" itself.
	pn, err := phonenumbers.Parse("+54 11 15 1234 5678", "")
	if err != nil || phonenumbers.Format(pn, phonenumbers.E164) != "+5491112345678" {
		t.Errorf("phonenumbers.Parse(+54 11 15 1234 5678) = %v, %v; want +5491112345678", pn, err)
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name, raw, region string
	}{
		{"empty", "", ""},
		{"only separators", " - ( ) ", ""},
		{"only plus", "+", ""},
		{"letters", "+1 650 CALL NOW", ""},
		{"extension", "+1 650 555 1234 x12", ""},
		{"letter o for zero", "+1 65O 555 1234", ""},
		{"plus in the middle", "1+6505551234", ""},
		{"two pluses", "++16505551234", ""},
		{"too short", "+1 650", ""},
		{"too short digits", "12", ""},
		{"too long", "+1 650 555 1234 5678 9", ""},
		{"unknown country code", "+999 123 456 789", ""},
		{"unknown country code digits", "999123456789", ""},
		{"country code zero", "+0 650 555 1234", ""},
		{"national without region", "(650) 555-1234 0", ""},
		{"only 00", "00", ""},
		{"only 00 with region", "00", "BR"},
		{"local only", "+1 555 1234", ""},
		{"mx whatsapp id not mobile", "+52 1 00 1234 5678", ""},
		{"over 64 bytes", "+1 650 555 1234" + strings.Repeat(" ", 50), ""},
		{"unknown region", "0650 555 1234", "XX"},
		{"national too short", "555", "US"},
		{"non-ascii digits", "+١٦٥٠٥٥٥١٢٣٤", ""},
		{"nul byte", "+1650555\x001234", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse(tt.raw, tt.region)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q, %q) = %+v, %v; want ErrInvalid", tt.raw, tt.region, n, err)
			}
			if n != (Number{}) {
				t.Fatalf("Parse(%q) returned %+v with an error", tt.raw, n)
			}
		})
	}
	// Exactly 64 bytes is still accepted.
	raw := "+1 650 555 1234" + strings.Repeat(" ", MaxInputLen-len("+1 650 555 1234"))
	if _, err := Parse(raw, ""); err != nil {
		t.Fatalf("Parse(64 bytes): %v", err)
	}
}

func TestWaID(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"5215512345678", "5215512345678"},
		{"551187654321", "551187654321"},
		{"+1 (650) 555-1234", ""},
		{"5491112345678", ""},
	} {
		n, err := Parse(tt.raw, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := n.WaID(); got != tt.want {
			t.Errorf("Parse(%q).WaID() = %q, want %q", tt.raw, got, tt.want)
		}
	}
	if got := (Number{}).WaID(); got != "" {
		t.Errorf("zero Number WaID = %q", got)
	}
}

func TestUnfold(t *testing.T) {
	tests := []struct {
		e164 string
		f    Fold
		want string
	}{
		{"+525512345678", FoldMexico, "5215512345678"},
		{"+5511987654321", FoldBrazil, "551187654321"},
		{"+5491112345678", FoldArgentina, "5491112345678"},
		{"+16505551234", FoldNone, "16505551234"},
		// Shapes that do not fit the fold: canonical digits.
		{"+5215512345678", FoldMexico, "5215512345678"},
		{"+551133334444", FoldBrazil, "551133334444"},
	}
	for _, tt := range tests {
		if got := Unfold(tt.e164, tt.f); got != tt.want {
			t.Errorf("Unfold(%q, %v) = %q, want %q", tt.e164, tt.f, got, tt.want)
		}
	}
	// Round trips: whatever folded spelling Parse saw, Unfold rebuilds it,
	// and parsing the rebuilt spelling gives the same number and fold.
	for _, raw := range []string{"5215512345678", "5213312345678", "551187654321", "552187654321", "551287654321"} {
		n, err := Parse(raw, "")
		if err != nil {
			t.Fatal(err)
		}
		if n.Fold == FoldNone {
			t.Fatalf("Parse(%q) did not fold", raw)
		}
		u := Unfold(n.E164, n.Fold)
		if u != raw || u != n.WaID() {
			t.Errorf("Unfold(%q, %v) = %q, want %q (= WaID %q)", n.E164, n.Fold, u, raw, n.WaID())
		}
		back, err := Parse(u, "")
		if err != nil || back != n {
			t.Errorf("Parse(Unfold) = %+v, %v; want %+v", back, err, n)
		}
	}
	// Argentina: Unfold gives the canonical digits, which parse to themselves.
	n, _ := Parse("+54 11 15 1234 5678", "")
	if u := Unfold(n.E164, n.Fold); u != "5491112345678" {
		t.Errorf("Unfold(%q, argentina) = %q", n.E164, u)
	}
}

func TestFoldString(t *testing.T) {
	for f, want := range map[Fold]string{FoldNone: "none", FoldMexico: "mexico", FoldBrazil: "brazil", FoldArgentina: "argentina", 9: "Fold(9)"} {
		if got := f.String(); got != want {
			t.Errorf("Fold(%d).String() = %q, want %q", f, got, want)
		}
	}
}

func TestZones(t *testing.T) {
	tests := []struct {
		raw  string
		want []string
	}{
		{"+16505551234", []string{"America/Los_Angeles"}},
		{"+14165550123", []string{"America/Toronto"}},
		{"+5511987654321", []string{"America/Sao_Paulo"}},
		{"+525512345678", []string{"America/Mexico_City"}},
	}
	for _, tt := range tests {
		n, err := Parse(tt.raw, "")
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // second round comes from the cache
			got := Zones(n)
			if len(got) != len(tt.want) {
				t.Fatalf("Zones(%s) = %v, want %v", tt.raw, got, tt.want)
			}
			for i, loc := range got {
				if loc.String() != tt.want[i] {
					t.Errorf("Zones(%s)[%d] = %v, want %v", tt.raw, i, loc, tt.want[i])
				}
			}
		}
	}
	// A number whose prefix maps to several zones.
	n, err := Parse("+1 650 123 4567", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := Zones(n); len(got) == 0 {
		t.Errorf("Zones(%s) is empty", n.E164)
	}
	// Non-geographic numbers map to "Etc/Unknown", which is dropped.
	n, err = Parse("+800 1234 5678", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := Zones(n); got != nil {
		t.Errorf("Zones(%s) = %v, want nil", n.E164, got)
	}
	if got := Zones(Number{}); got != nil {
		t.Errorf("Zones(zero) = %v, want nil", got)
	}
	// The result is the caller's own: changing it does not touch the cache.
	n, _ = Parse("+16505551234", "")
	z := Zones(n)
	z[0] = nil
	if Zones(n)[0] == nil {
		t.Error("Zones returned the cached slice")
	}
}

func TestValidUserID(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"BR.1502576394655843", true},
		{"US.ENT.123abc", true},
		{"US.ENT", true}, // "ENT" is itself 3 alphanumerics
		{"MX.a", true},
		{"BR." + strings.Repeat("a", 128), true},
		{"US.ENT." + strings.Repeat("Z", 128), true},
		{"br.123", false},
		{"Br.123", false},
		{"BR.", false},
		{"BR", false},
		{"", false},
		{"BR.12-34", false},
		{"BR.12.34", false},
		{"BRA.1234", false},
		{"B1.1234", false},
		{"US.ENT.", false},
		{"US.ENT.12.3", false},
		{"BR.123 ", false},
		{"BR.12é", false},
		{"BR." + strings.Repeat("a", 129), false},
		{"US.ENT." + strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		if got := ValidUserID(tt.s); got != tt.want {
			t.Errorf("ValidUserID(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

// FuzzParse checks Parse's promises on any input and region: errors are
// ErrInvalid; a national spelling is never read without a region; '+' and
// "00" mean the same whatever the region; the canonical form is a fixed point,
// read the same with any region; Valid is libphonenumber's IsValidNumber of
// the canonical form.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"+16505551234", "16505551234", "+1 (650) 555-1234", "1-650-555-1234", "(650) 555-1234",
		"5215512345678", "551187654321", "551133334444", "+54 11 15 1234 5678", "+54 9 11 15 1234 5678",
		"541112345678", "+999123456789", "+1 555 1234", "07400 123456", "00 1 650 555 1234", "",
		"+\u00a01\u2013650", "+882 1234 5678", "abc", "(31) 99551-1909", "31995511909", "011 44 7700 900123",
		"4915123456789", "+11951373735", "0055 31 99551 1909",
	} {
		for _, region := range []string{"", "US", "BR", "AR", "MX", "GB", "DE", "br", "AQ", "ZZ"} {
			f.Add(s, region)
		}
	}
	f.Fuzz(func(t *testing.T, raw, region string) {
		if d := digitsOnly(raw); d != "" {
			checkSplit(t, d)
			checkValidity(t, d, region)
		}
		n, err := Parse(raw, region)
		if region == "" && nationalLook(raw) && !errors.Is(err, ErrNational) {
			t.Fatalf("Parse(%q, \"\") = %+v, %v: a national spelling read without a region", raw, n, err)
		}
		if rest, ok := strings.CutPrefix(strings.TrimLeft(raw, " "), "+"); ok && len(raw) < MaxInputLen {
			// "00" is '+', whatever the region.
			n00, err00 := Parse("00"+rest, region)
			if n00 != n || (err00 == nil) != (err == nil) {
				t.Fatalf("Parse(%q, %q) = %+v, %v but with 00: %+v, %v", raw, region, n, err, n00, err00)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q, %q): error %v is not ErrInvalid", raw, region, err)
			}
			return
		}
		if !strings.HasPrefix(n.E164, "+") || len(n.E164) < 2 {
			t.Fatalf("Parse(%q, %q).E164 = %q", raw, region, n.E164)
		}
		for _, r := range []string{"", region, "US"} {
			again, err := Parse(n.E164, r)
			if err != nil {
				t.Fatalf("Parse(%q, %q) = %+v but Parse(%q, %q): %v", raw, region, n, n.E164, r, err)
			}
			if again.E164 != n.E164 || again.Fold != FoldNone || again.Valid != n.Valid {
				t.Fatalf("Parse(%q, %q) = %+v but Parse(%q, %q) = %+v", raw, region, n, n.E164, r, again)
			}
		}
		if pn, err := phonenumbers.Parse(n.E164, ""); err != nil || phonenumbers.IsValidNumber(pn) != n.Valid {
			t.Fatalf("Parse(%q, %q) = %+v; phonenumbers: %v valid=%v", raw, region, n, err, err == nil && phonenumbers.IsValidNumber(pn))
		}
		if n.Fold != FoldNone {
			// The fold's spelling parses back to the same number.
			if back, err := Parse(Unfold(n.E164, n.Fold), ""); err != nil || back.E164 != n.E164 {
				t.Fatalf("Parse(Unfold(%+v)) = %+v, %v", n, back, err)
			}
		}
		_ = Zones(n)
	})
}

// nationalLook reports whether raw is national by its look: digits with
// separators between them, or a leading single '0', without '+' or "00".
func nationalLook(raw string) bool {
	s := strings.Trim(raw, " \t")
	if s == "" || len(raw) > MaxInputLen || strings.ContainsRune(s, '+') || strings.HasPrefix(digitsOnly(s), "00") {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && !isUnicodeSeparator(r) && !strings.ContainsRune(" \t-.()[]/", r) {
			return false // not a phone at all: ErrInvalid
		}
	}
	d := digitsOnly(s)
	first := strings.IndexAny(s, "0123456789")
	last := strings.LastIndexAny(s, "0123456789")
	return d != "" && (d[0] == '0' || first >= 0 && strings.Trim(s[first:last+1], "0123456789") != "")
}

func digitsOnly(s string) string {
	var b []byte
	for i := 0; i < len(s) && len(b) < 20; i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b = append(b, s[i])
		}
	}
	return string(b)
}

var sink Number

func BenchmarkParse(b *testing.B) {
	for _, bb := range []struct{ name, raw, region string }{
		{"e164", "+16505551234", ""},
		{"digits", "5511987654321", ""},
		{"formatted", "+1 (650) 555-1234", ""},
		{"national", "(650) 555-1234", "US"},
		{"fold_mx", "5215512345678", ""},
		{"fold_br", "551187654321", ""},
		// With a region (a request's, a policy's or the deployment's).
		{"e164_region", "+5511987654321", "BR"},
		{"digits_region", "5511987654321", "BR"},
		{"national_br", "(31) 99551-1909", "BR"},
		{"national_digits_br", "31995511909", "BR"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n, err := Parse(bb.raw, bb.region)
				if err != nil {
					b.Fatal(err)
				}
				sink = n
			}
		})
	}
}

func BenchmarkZones(b *testing.B) {
	n, _ := Parse("+16505551234", "")
	b.ReportAllocs()
	for b.Loop() {
		_ = Zones(n)
	}
}
