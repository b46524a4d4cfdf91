package identity

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// MaxInputLen is the longest raw input, in bytes, that [Parse] accepts.
const MaxInputLen = 64

// ErrInvalid is returned (wrapped, with detail) by [Parse] for input that is
// not a possible phone number, or that cannot be read without a region. Test
// with errors.Is.
var ErrInvalid = errors.New("identity: invalid phone number")

// ErrNational is returned by [Parse] for a phone spelled nationally (no '+' or
// "00": brackets, spaces, dashes, a trunk '0') when no region is given to read
// it by. It wraps [ErrInvalid]. Reading such a spelling as international would
// put it under another country's number: "(31) 99551-1909" from a Brazilian
// CRM is not the Netherlands' +31 995511909.
var ErrNational = fmt.Errorf("%w: national format: set a region", ErrInvalid)

// Number is a recipient's number after parsing.
type Number struct {
	E164   string // canonical "+5511987654321"
	Region string // ISO region code from libphonenumber ("US", "CA", "BR"); "" if unknown
	Fold   Fold   // which WhatsApp-ID folding was applied (FoldNone if none)
	// Valid says whether libphonenumber calls the number valid (within the
	// ranges its metadata knows are assigned), or it was folded into a valid
	// mobile number. A number that is only possible (the right length for its
	// country) is not: whether to send to it is policy (number_validation).
	// (Next to Fold: a Number stays 56 bytes, and the server's recipient
	// small enough for closures to capture by value.)
	Valid bool
	// Input is the digits-only spelling as given, country code included, e.g.
	// "5215512345678". For input parsed in national format (see [Parse]) it is
	// the number libphonenumber read, before any WhatsApp-ID folding. Used as
	// the learned WhatsApp ID when it differs from E164 without '+'.
	Input string
}

// WaID returns the WhatsApp-ID spelling (digits only, no '+') to remember for
// n: n.Input when it differs from the canonical digits, else "".
func (n Number) WaID() string {
	if n.Input == "" || n.Input == strings.TrimPrefix(n.E164, "+") {
		return ""
	}
	return n.Input
}

// Fold says which WhatsApp-ID folding turned the spelling as given into the
// canonical number.
type Fold uint8

const (
	// FoldNone means the number was canonical as given (up to formatting).
	FoldNone Fold = iota
	// FoldMexico means the '1' after the country code 52 was dropped.
	FoldMexico
	// FoldBrazil means a '9' was inserted in front of an 8-digit mobile subscriber number.
	FoldBrazil
	// FoldArgentina means a national "15" mobile prefix (or a missing '9') was folded
	// into the "+54 9 <area> <number>" mobile form, by libphonenumber itself or
	// by this package.
	FoldArgentina
)

// String returns "none", "mexico", "brazil" or "argentina".
func (f Fold) String() string {
	switch f {
	case FoldNone:
		return "none"
	case FoldMexico:
		return "mexico"
	case FoldBrazil:
		return "brazil"
	case FoldArgentina:
		return "argentina"
	}
	return "Fold(" + strconv.Itoa(int(f)) + ")"
}

// quality ranks a reading of the input.
type quality uint8

const (
	qNone     quality = iota // not a possible number
	qPossible                // possible, not valid, not foldable
	qGood                    // valid as given, or folded into a valid mobile number
)

// Parse reads a phone number in any spelling and returns its canonical form.
// region (ISO 3166 alpha-2, any case; "" for none) is the region national
// spellings are read by. The rules (DESIGN.md, "Number identity"):
//
//   - A leading '+' or "00" is international, whatever the region.
//   - Digits only, without a region: international (country code first), the
//     spelling of Meta's webhooks and of most APIs ("16505551234"); a leading
//     single '0' is a trunk prefix, national: [ErrNational].
//   - Digits only, with a region: read nationally first, by libphonenumber, so
//     that the region's trunk prefix ("0") and international prefix ("011"
//     from the US) are understood; and internationally when that is not a
//     valid number. When both readings are merely possible, the region's wins.
//     One exception, for digits that start with the region's own calling code
//     and read internationally as a valid number: that reading wins. It is
//     what libphonenumber does itself for most regions ("5531995511909" in
//     region BR), but in a few (e.g. DE and ID) its national pattern also
//     takes the whole string, and "4915123456789", a German WhatsApp ID, would become
//     +49 4915123456789.
//   - Any other spelling (spaces, brackets, dashes, dots, slashes) without '+'
//     or "00" is national by its look: with a region it is read as digits only
//     above; without one it is [ErrNational], never another country's number.
//
// Anything else (letters, a '+' after the first digit, more than
// [MaxInputLen] bytes, no digits) is rejected with [ErrInvalid], as is a
// number that libphonenumber does not consider possible (unknown country
// code, wrong length). A length that is possible only for local dialling
// (phonenumbers.IS_POSSIBLE_LOCAL_ONLY, e.g. "+1 555 1234" without an area
// code) is rejected too, although phonenumbers.IsPossibleNumber accepts it:
// no message can reach it. A possible number that is not valid is returned
// with [Number.Valid] false: the caller decides (libphonenumber's metadata
// lags newly opened ranges).
//
// A spelling is folded (see [Fold]) only when it is invalid as given and the
// folded form is a valid mobile number (type MOBILE or FIXED_LINE_OR_MOBILE);
// a number valid as given is never rewritten.
func Parse(raw, region string) (Number, error) {
	sp, err := scan(raw)
	if err != nil {
		return Number{}, err
	}
	intl := string(sp.buf[:sp.n])
	switch {
	case sp.plus:
		return international(intl)
	case sp.n >= 3 && intl[1] == '0' && intl[2] == '0':
		// "00" then the country code.
		return international("+" + intl[3:])
	case region == "" && (sp.formatted || intl[1] == '0'):
		return Number{}, ErrNational
	case region == "":
		return international(intl)
	}
	return national(intl, strings.ToUpper(region))
}

// spelling is a phone as scanned: '+' and its digits in buf[:n].
type spelling struct {
	buf [MaxInputLen + 1]byte // len(raw) <= MaxInputLen bounds the digits
	n   int
	// plus: it starts with '+'; formatted: it has separators between its
	// digits (spaces, brackets, dashes...), not only around them.
	plus, formatted bool
}

// scan checks the characters of raw and collects its digits.
func scan(raw string) (spelling, error) {
	if raw == "" {
		return spelling{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(raw) > MaxInputLen {
		return spelling{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxInputLen)
	}
	sp := spelling{n: 1}
	sp.buf[0] = '+'
	sep := false // a separator since the last digit
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c >= '0' && c <= '9':
			if sep && sp.n > 1 {
				sp.formatted = true
			}
			sep = false
			sp.buf[sp.n] = c
			sp.n++
			i++
			continue
		case c == '+':
			if sp.plus || sp.n > 1 {
				return spelling{}, fmt.Errorf("%w: misplaced '+'", ErrInvalid)
			}
			sp.plus = true
		case c == ' ' || c == '\t' || c == '-' || c == '.' || c == '(' || c == ')' || c == '[' || c == ']' || c == '/':
			sep = true
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(raw[i:])
			if !isUnicodeSeparator(r) {
				return spelling{}, fmt.Errorf("%w: unexpected character %q", ErrInvalid, r)
			}
			sep = true
			i += size
			continue
		default:
			return spelling{}, fmt.Errorf("%w: unexpected character %q", ErrInvalid, c)
		}
		i++
	}
	if sp.n == 1 {
		return spelling{}, fmt.Errorf("%w: no digits", ErrInvalid)
	}
	return sp, nil
}

// international reads intl ("+" and digits) as an international number.
func international(intl string) (Number, error) {
	n, q, err := parseIntl(intl)
	if q == qNone {
		return Number{}, err
	}
	return stable(n, intl)
}

// national reads intl's digits by region: see [Parse].
func national(intl, region string) (Number, error) {
	digits := intl[1:]
	var (
		ir    Number
		iq    quality
		ierr  error
		tried bool
	)
	if cc := callingCodeOf(region); cc != "" && strings.HasPrefix(digits, cc) {
		ir, iq, ierr = parseIntl(intl)
		if iq == qGood {
			return stable(ir, intl)
		}
		tried = true
	}
	nr, nq, nerr := parseNational(digits, region)
	if nq == qGood {
		return stable(nr, "")
	}
	if !tried {
		ir, iq, ierr = parseIntl(intl)
	}
	switch {
	case iq == qGood:
		return stable(ir, intl)
	case nq == qPossible:
		return stable(nr, "")
	case iq == qPossible:
		return stable(ir, intl)
	case errors.Is(nerr, errNoRegion):
		// A region libphonenumber has no numbering plan for (AQ, BV...).
		return Number{}, fmt.Errorf("%w (read internationally: %v)", nerr, ierr)
	}
	return Number{}, nerr
}

// errNoRegion is the error of a national reading in a region that
// libphonenumber has no numbering plan for.
var errNoRegion = fmt.Errorf("%w: no numbering plan known for the region", ErrInvalid)

// parseNational reads digits as a number of region, by libphonenumber.
func parseNational(digits, region string) (Number, quality, error) {
	pn, err := phonenumbers.Parse(digits, region)
	if err != nil {
		if errors.Is(err, phonenumbers.ErrInvalidCountryCode) {
			return Number{}, qNone, errNoRegion
		}
		return Number{}, qNone, libError(err)
	}
	return resolve(pn, phonenumbers.Format(pn, phonenumbers.E164)[1:], digits)
}

// callingCodeOf returns the country calling code of region ("BR" -> "55"), or
// "" when libphonenumber does not know the region.
func callingCodeOf(region string) string {
	return regionCallingCodes()[region]
}

var regionCallingCodes = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for r := range phonenumbers.GetSupportedRegions() {
		if cc := phonenumbers.GetCountryCodeForRegion(r); cc > 0 {
			m[r] = strconv.Itoa(cc)
		}
	}
	return m
})

// parseIntl reads intl ("+" and digits) as an international number.
func parseIntl(intl string) (Number, quality, error) {
	given := intl[1:]
	pn, ccLen := splitIntl(given)
	if pn == nil {
		var err error
		if pn, err = phonenumbers.Parse(intl, ""); err != nil {
			return Number{}, qNone, libError(err)
		}
		ccLen = len(strconv.Itoa(int(pn.GetCountryCode())))
	}
	return resolve(pn, given, given[min(ccLen, len(given)):])
}

// stable makes sure n.E164 is a fixed point: parsing it gives itself,
// unfolded. That holds by construction when n.E164 is the very string that
// was parsed internationally (parsed; "" for a national reading), unfolded:
// the same string parses the same way. That is the hot path. Otherwise
// libphonenumber rewrote the input (national or trunk prefix stripped,
// leading zeros kept, a fold), and in rare corner cases its E.164 output
// does not read back as itself (found by FuzzParse: national "000000000" in
// region BY formats as +37500000000, which parses as a shorter number, its
// leading zeros taken for a national prefix); such a number is re-read until
// it is stable, and rejected if it does not settle.
func stable(n Number, parsed string) (Number, error) {
	if n.E164 == parsed && n.Fold == FoldNone {
		return n, nil
	}
	for range 3 {
		r, q, err := parseIntl(n.E164)
		if q == qNone {
			return Number{}, fmt.Errorf("%w: no stable canonical form (%v)", ErrInvalid, err)
		}
		if r.E164 == n.E164 && r.Fold == FoldNone {
			return n, nil
		}
		n.E164, n.Region, n.Valid = r.E164, r.Region, r.Valid
		if n.Fold == FoldNone {
			n.Fold = r.Fold
		}
	}
	return Number{}, fmt.Errorf("%w: no stable canonical form", ErrInvalid)
}

// isUnicodeSeparator reports the non-ASCII characters accepted as
// separators: no-break and thin spaces, dashes and the minus sign.
func isUnicodeSeparator(r rune) bool {
	switch r {
	case '\u00a0', '\u2007', '\u2009', '\u200a', '\u202f', '\u3000', '\u2212':
		return true
	}
	return r >= '\u2010' && r <= '\u2015'
}

func libError(err error) error {
	if errors.Is(err, phonenumbers.ErrInvalidCountryCode) {
		return fmt.Errorf("%w: unknown country code", ErrInvalid)
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

// resolve judges one libphonenumber reading of the input. input is the
// spelling to record in Number.Input; givenNat is the part of the digits as
// given that follows the country code (all digits for a national reading).
func resolve(pn *phonenumbers.PhoneNumber, input, givenNat string) (Number, quality, error) {
	// GetRegionCodeForNumber + IsValidNumberForRegion is what IsValidNumber
	// does; regionAndValidity answers both from precompiled patterns.
	region, valid := regionAndValidity(pn)
	if valid {
		return number(pn, region, input, argentinaFold(pn, givenNat), true), qGood, nil
	}
	if fpn, fregion, f, ok := fold(pn); ok {
		return number(fpn, fregion, input, f, true), qGood, nil
	}
	switch r := phonenumbers.IsPossibleNumberWithReason(pn); r {
	case phonenumbers.IS_POSSIBLE:
		return number(pn, region, input, argentinaFold(pn, givenNat), false), qPossible, nil
	case phonenumbers.INVALID_COUNTRY_CODE:
		return Number{}, qNone, fmt.Errorf("%w: unknown country code", ErrInvalid)
	default:
		return Number{}, qNone, fmt.Errorf("%w: not a possible number (%s)", ErrInvalid, reasonText(r))
	}
}

func reasonText(r phonenumbers.ValidationResult) string {
	switch r {
	case phonenumbers.TOO_SHORT:
		return "too short"
	case phonenumbers.TOO_LONG:
		return "too long"
	case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
		return "local number without area code"
	case phonenumbers.INVALID_LENGTH:
		return "invalid length"
	}
	return "reason " + strconv.Itoa(int(r))
}

func number(pn *phonenumbers.PhoneNumber, region, input string, f Fold, valid bool) Number {
	if region == phonenumbers.UNKNOWN_REGION || region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY {
		region = ""
	}
	return Number{
		E164:   e164(pn),
		Region: region,
		Fold:   f,
		Input:  input,
		Valid:  valid,
	}
}

// argentinaFold reports FoldArgentina when libphonenumber itself turned an
// Argentine number into the "9 <area> <number>" mobile form: its parser
// folds the national "15" prefix ("+54 11 15 1234 5678" parses as
// +5491112345678) through the region's national-prefix transform rule.
func argentinaFold(pn *phonenumbers.PhoneNumber, givenNat string) Fold {
	if pn.GetCountryCode() != 54 {
		return FoldNone
	}
	nsn := phonenumbers.GetNationalSignificantNumber(pn)
	if nsn == "" || nsn[0] != '9' {
		return FoldNone
	}
	// A trunk "0" or an international prefix in front is not a fold.
	if strings.HasSuffix(givenNat, nsn) {
		return FoldNone
	}
	return FoldArgentina
}

// fold tries the WhatsApp-ID folds on a number that is invalid as given. It
// returns the folded number, its region and the fold if the folded form is a
// valid mobile number.
func fold(pn *phonenumbers.PhoneNumber) (*phonenumbers.PhoneNumber, string, Fold, bool) {
	cc := pn.GetCountryCode()
	nsn := phonenumbers.GetNationalSignificantNumber(pn)
	switch cc {
	case 52:
		// Mexico: WhatsApp IDs keep the old mobile '1' after 52:
		// "52 1 55 1234 5678" is +52 55 1234 5678. libphonenumber dropped the
		// '1' from its metadata and calls the 11-digit form not even possible.
		if len(nsn) == 11 && nsn[0] == '1' {
			if p, region, ok := mobile(cc, nsn[1:]); ok {
				return p, region, FoldMexico, true
			}
		}
	case 55:
		// Brazil: pre-2012 8-digit mobile subscriber numbers (first digit
		// 6-9) after a 2-digit area code get the '9' in front:
		// "55 11 8765 4321" is +55 11 98765 4321. Landlines (2-5) are valid
		// as given and never reach this point.
		if len(nsn) == 10 && nsn[2] >= '6' && nsn[2] <= '9' {
			if p, region, ok := mobile(cc, nsn[:2]+"9"+nsn[2:]); ok {
				return p, region, FoldBrazil, true
			}
		}
	case 54:
		// Argentina: mobile is "9 <area> <number>" with a 2-4 digit area code
		// and a "15" national mobile prefix after the area code that must go.
		// libphonenumber already folds "<area> 15 <number>" when parsing; this
		// covers the leftovers, e.g. both '9' and "15" ("54 9 11 15 1234 5678"),
		// and a 10-digit number lacking the '9' that is invalid as given.
		for _, c := range argentinaCandidates(nsn) {
			if p, region, ok := mobile(cc, c); ok {
				return p, region, FoldArgentina, true
			}
		}
	}
	return nil, "", FoldNone, false
}

func argentinaCandidates(nsn string) []string {
	var out []string
	if strings.HasPrefix(nsn, "9") {
		for l := 2; l <= 4; l++ {
			if len(nsn) > 1+l+2 && nsn[1+l:1+l+2] == "15" {
				out = append(out, nsn[:1+l]+nsn[1+l+2:])
			}
		}
		return out
	}
	for l := 2; l <= 4; l++ {
		if len(nsn) > l+2 && nsn[l:l+2] == "15" {
			out = append(out, "9"+nsn[:l]+nsn[l+2:])
		}
	}
	if len(nsn) == 10 {
		out = append(out, "9"+nsn)
	}
	return out
}

// mobile builds cc+nsn and reports whether it is a valid mobile number.
func mobile(cc int32, nsn string) (*phonenumbers.PhoneNumber, string, bool) {
	if nsn == "" || nsn[0] == '0' {
		return nil, "", false
	}
	nn, err := strconv.ParseUint(nsn, 10, 64)
	if err != nil {
		return nil, "", false
	}
	p := &phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: &nn}
	switch phonenumbers.GetNumberType(p) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		return p, phonenumbers.GetRegionCodeForNumber(p), true
	}
	return nil, "", false
}

// Unfold rebuilds the WhatsApp-ID spelling (digits only, no '+') from a
// canonical E.164 number and the [Fold] that produced it, for when only a
// keyed hash and the fold are stored:
//
//   - FoldMexico: "+525512345678" -> "5215512345678"
//   - FoldBrazil: "+5511987654321" -> "551187654321"
//   - FoldArgentina, FoldNone: the canonical digits ("+5491112345678" ->
//     "5491112345678"). The Argentine spellings carry a "15" whose place
//     depends on the area-code length and is not worth rebuilding: WhatsApp
//     itself uses the "549..." form.
//
// If e164 does not have the shape the fold implies, the canonical digits are
// returned.
func Unfold(e164 string, f Fold) string {
	d := strings.TrimPrefix(e164, "+")
	switch f {
	case FoldMexico:
		if len(d) == 12 && strings.HasPrefix(d, "52") {
			return "521" + d[2:]
		}
	case FoldBrazil:
		if len(d) == 13 && strings.HasPrefix(d, "55") && d[4] == '9' {
			return d[:4] + d[5:]
		}
	}
	return d
}
