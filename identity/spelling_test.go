package identity

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// spellings are the ways a CRM, a spreadsheet or a person writes one number:
// libphonenumber's national and international formats, and the same with the
// separators changed.
func spellings(formatted string) []string {
	out := []string{formatted}
	for _, f := range []func(string) string{
		func(s string) string { return strings.ReplaceAll(s, " ", "-") },
		func(s string) string { return strings.ReplaceAll(s, " ", ".") },
		func(s string) string { return strings.ReplaceAll(s, "-", " ") },
		bracketFirstGroup,
	} {
		if v := f(formatted); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// bracketFirstGroup puts the first group of digits (after a '+' and its country
// code, if any) in brackets: "31 99551-1909" -> "(31) 99551-1909".
func bracketFirstGroup(s string) string {
	if strings.ContainsAny(s, "()") {
		return s
	}
	prefix := ""
	if strings.HasPrefix(s, "+") {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			return s
		}
		prefix, s = s[:i+1], s[i+1:]
	}
	i := strings.IndexAny(s, " -")
	if i <= 0 {
		return prefix + s
	}
	return prefix + "(" + s[:i] + ")" + s[i:]
}

// hasSeparator reports whether digits are separated somewhere in s (what makes a
// spelling national by its look).
func hasSeparator(s string) bool {
	s = strings.TrimSpace(s)
	return strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0
}

// TestEverySpellingOfEveryRegion: for every region libphonenumber knows, its
// example mobile number in every spelling lands on one E.164 — nationally
// spelled with the region, internationally spelled with or without any
// region — and the national spelling that has separators is ErrNational
// without a region: never a valid number of another country.
func TestEverySpellingOfEveryRegion(t *testing.T) {
	regions := slices.Sorted(func(yield func(string) bool) {
		for r := range phonenumbers.GetSupportedRegions() {
			if !yield(r) {
				return
			}
		}
	})
	checked, nationalChecked := 0, 0
	for _, region := range regions {
		ex := phonenumbers.GetExampleNumberForType(region, phonenumbers.MOBILE)
		if ex == nil {
			continue
		}
		want := phonenumbers.Format(ex, phonenumbers.E164)
		cc := strconv.Itoa(int(ex.GetCountryCode()))
		nsn := want[1+len(cc):]
		other := "US"
		if region == "US" {
			other = "BR"
		}
		lands := func(raw, r string) {
			t.Helper()
			checked++
			n, err := Parse(raw, r)
			if err != nil || n.E164 != want {
				t.Errorf("%s: Parse(%q, %q) = %s, %v; want %s", region, raw, r, n.E164, err, want)
			}
		}
		national := phonenumbers.Format(ex, phonenumbers.NATIONAL)
		if fix, ok := nationalFormatBugs[region]; ok {
			if national != fix.got {
				t.Errorf("%s: phonenumbers formats %s nationally as %q, no longer %q: drop the exception", region, want, national, fix.got)
			}
			national = fix.want
		}
		nationals := spellings(national)
		if !hasSeparator(national) {
			// Formatted without separators (BO "71234567", FK "51234"): a CRM
			// may still group the digits.
			nationals = append(nationals, national[:len(national)/2]+" "+national[len(national)/2:])
		}
		for _, s := range nationals {
			lands(s, region)
			lands(s, strings.ToLower(region))
		}
		lands(digitsOf(national), region)
		intl := phonenumbers.Format(ex, phonenumbers.INTERNATIONAL)
		for _, r := range []string{"", region, other} {
			lands(want, r)
			lands("00"+cc+nsn, r)
			lands("00 "+strings.TrimPrefix(intl, "+"), r)
			for _, s := range spellings(intl) {
				lands(s, r)
			}
		}
		lands(cc+nsn, "")     // Meta's webhook spelling
		lands(cc+nsn, region) // and the same with the region
		for _, s := range nationals {
			if !hasSeparator(s) {
				continue // digits only: read internationally without a region
			}
			nationalChecked++
			n, err := Parse(s, "")
			if !errors.Is(err, ErrNational) {
				t.Errorf("%s: Parse(%q, \"\") = %+v, %v; want ErrNational", region, s, n, err)
			}
		}
	}
	if checked < 5000 || nationalChecked < 500 {
		t.Fatalf("only %d spellings (%d national without region) checked", checked, nationalChecked)
	}
	t.Logf("%d spellings land on their number; %d national spellings without a region are ErrNational", checked, nationalChecked)
}

// nationalFormatBugs are example numbers that nyaruka/phonenumbers (v1.8.1)
// formats nationally unlike libphonenumber: where a format's first group is
// not $1 (Argentina's mobiles), it puts the national prefix in front of group 1
// instead of the first group the format uses. Java's libphonenumber writes
// "011 15-2345-6789", as Argentines do; "09 15-2345-6789" is nobody's spelling.
var nationalFormatBugs = map[string]struct{ got, want string }{
	"AR": {got: "09 15-2345-6789", want: "011 15-2345-6789"},
}

func digitsOf(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// TestCRMSpellings: how CRM exports of seven countries spell their numbers,
// read with the country as region and without one. Without a region an
// international spelling lands on its number, and one that is national by its
// look is ErrNational; digits only are read internationally then (the webhook
// convention), which the last column pins: mostly numbers that are not valid
// or not even possible (INVALID_NUMBER by default), but a national US number
// without its region is a valid Egyptian one.
func TestCRMSpellings(t *testing.T) {
	const national = "national" // without a region: ErrNational
	tests := []struct {
		region, raw, want string
		without           string // E.164 without a region, or national
	}{
		{"BR", "(31) 99551-1909", "+5531995511909", national},
		{"BR", "31 99551-1909", "+5531995511909", national},
		{"BR", "031 99551 1909", "+5531995511909", national},
		{"BR", "(031) 99551-1909", "+5531995511909", national},
		{"BR", "31995511909", "+5531995511909", "+31995511909"}, // possible in NL, not valid: INVALID_NUMBER
		{"BR", "5531995511909", "+5531995511909", "+5531995511909"},
		{"BR", "+55 31 99551-1909", "+5531995511909", "+5531995511909"},
		{"BR", "+55 (31) 99551-1909", "+5531995511909", "+5531995511909"},
		{"BR", "0055 31 99551 1909", "+5531995511909", "+5531995511909"},
		{"BR", "(31) 9551-1909", "+5531995511909", national}, // pre-2012 8-digit mobile
		{"BR", "553195511909", "+5531995511909", "+5531995511909"},
		{"BR", "(31) 3555-1909", "+553135551909", national}, // landline

		{"MX", "55 1234 5678", "+525512345678", national},
		{"MX", "(55) 1234-5678", "+525512345678", national},
		{"MX", "5512345678", "+525512345678", "+5512345678"}, // possible in BR, not valid
		{"MX", "+52 1 55 1234 5678", "+525512345678", "+525512345678"},
		{"MX", "5215512345678", "+525512345678", "+525512345678"},
		{"MX", "+52 55 1234 5678", "+525512345678", "+525512345678"},

		{"AR", "011 15-2345-6789", "+5491123456789", national},
		{"AR", "11 15 2345-6789", "+5491123456789", national},
		{"AR", "(011) 15 2345-6789", "+5491123456789", national},
		{"AR", "9 11 2345-6789", "+5491123456789", national},
		{"AR", "+54 9 11 2345-6789", "+5491123456789", "+5491123456789"},
		{"AR", "5491123456789", "+5491123456789", "+5491123456789"},
		{"AR", "+54 11 15 2345 6789", "+5491123456789", "+5491123456789"},

		{"IN", "98765 43210", "+919876543210", national},
		{"IN", "098765 43210", "+919876543210", national},
		{"IN", "9876543210", "+919876543210", "+9876543210"}, // not possible: INVALID_NUMBER
		{"IN", "+91 98765 43210", "+919876543210", "+919876543210"},
		{"IN", "91-98765-43210", "+919876543210", national},
		{"IN", "919876543210", "+919876543210", "+919876543210"},

		{"GB", "07700 900123", "+447700900123", national},
		{"GB", "07700900123", "+447700900123", national}, // trunk '0': national
		{"GB", "(07700) 900 123", "+447700900123", national},
		{"GB", "+44 7700 900123", "+447700900123", "+447700900123"},
		{"GB", "+44 (0)7700 900123", "+447700900123", "+447700900123"},
		{"GB", "447700900123", "+447700900123", "+447700900123"},
		{"GB", "0044 7700 900123", "+447700900123", "+447700900123"},

		{"DE", "0151 23456789", "+4915123456789", national},
		{"DE", "0151/23456789", "+4915123456789", national},
		{"DE", "(0151) 2345 6789", "+4915123456789", national},
		{"DE", "+49 151 23456789", "+4915123456789", "+4915123456789"},
		{"DE", "+49 (0)151 23456789", "+4915123456789", "+4915123456789"},
		{"DE", "4915123456789", "+4915123456789", "+4915123456789"},
		{"DE", "0049 151 23456789", "+4915123456789", "+4915123456789"},

		{"US", "(201) 555-0123", "+12015550123", national},
		{"US", "201-555-0123", "+12015550123", national},
		{"US", "201.555.0123", "+12015550123", national},
		{"US", "1 (201) 555-0123", "+12015550123", national},
		// Digits only and national: without a region it is Egypt's +20 1555 0123,
		// by the webhook convention. An export like this one needs its region.
		{"US", "2015550123", "+12015550123", "+2015550123"},
		{"US", "12015550123", "+12015550123", "+12015550123"},
		{"US", "+1 201-555-0123", "+12015550123", "+12015550123"},
		{"US", "011 44 7700 900123", "+447700900123", national}, // the US international prefix
	}
	for _, tt := range tests {
		n, err := Parse(tt.raw, tt.region)
		if err != nil || n.E164 != tt.want {
			t.Errorf("%s: Parse(%q, %q) = %s, %v; want %s", tt.region, tt.raw, tt.region, n.E164, err, tt.want)
		}
		n, err = Parse(tt.raw, "")
		switch {
		case tt.without == national:
			if !errors.Is(err, ErrNational) {
				t.Errorf("%s: Parse(%q, \"\") = %+v, %v; want ErrNational", tt.region, tt.raw, n, err)
			}
		case hasSeparator(tt.raw) && !strings.HasPrefix(tt.raw, "+") && !strings.HasPrefix(tt.raw, "00"):
			t.Errorf("%s: %q is national by its look: the table must say so", tt.region, tt.raw)
		case err == nil && n.E164 == tt.without:
		case errors.Is(err, ErrInvalid) && tt.without == "+"+digitsOf(tt.raw):
			// Not even possible read internationally.
		default:
			t.Errorf("%s: Parse(%q, \"\") = %s, %v; want %s", tt.region, tt.raw, n.E164, err, tt.without)
		}
	}
}
