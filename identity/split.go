package identity

import (
	"regexp"
	"strconv"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// splitIntl is the fast path of parsing "+<digits>": it splits the digits
// into country calling code and national number itself and returns the
// number phonenumbers.Parse("+"+digits, "") would return, or nil when it
// cannot be sure that they agree, in which case the caller must use
// phonenumbers.Parse. It skips phonenumbers.Parse's work on general input
// (extension and punctuation regexes, builders), about half of the cost of
// parsing a valid number.
//
// For "+<digits>", phonenumbers.Parse takes the country code as the shortest
// known prefix (codes are prefix-free) and then may rewrite the national
// number: it strips a national prefix that the region's
// national_prefix_for_parsing pattern matches at the start (applying its
// transform rule, e.g. Argentina's "15"), and it records leading zeros. The
// fast path therefore gives up when the national number starts with '0',
// when that pattern matches a non-empty prefix or captures anything, and on
// lengths phonenumbers.Parse rejects. TestSplitIntlAgrees and FuzzParse
// check the agreement.
func splitIntl(digits string) (*phonenumbers.PhoneNumber, int) {
	if digits == "" || digits[0] == '0' {
		return nil, 0
	}
	tab := callingCodes()
	for l := 1; l <= 3 && l < len(digits); l++ {
		cc, err := strconv.Atoi(digits[:l])
		if err != nil {
			return nil, 0
		}
		info, ok := tab[cc]
		if !ok {
			continue
		}
		rest := digits[l:]
		if len(rest) < 2 || len(rest) > 17 || rest[0] == '0' || info.prefixMatches(rest) {
			return nil, 0
		}
		nn, err := strconv.ParseUint(rest, 10, 64)
		if err != nil {
			return nil, 0
		}
		cc32 := int32(cc)
		return &phonenumbers.PhoneNumber{CountryCode: &cc32, NationalNumber: &nn}, l
	}
	return nil, 0
}

// ccInfo is what the fast path needs to know about one calling code.
type ccInfo struct {
	literal string         // national prefix for parsing when it is plain digits
	re      *regexp.Regexp // otherwise, the anchored pattern; nil if none
}

// prefixMatches reports whether phonenumbers.Parse might strip or transform
// a national prefix at the start of nsn.
func (c ccInfo) prefixMatches(nsn string) bool {
	if c.re == nil {
		return c.literal != "" && len(nsn) >= len(c.literal) && nsn[:len(c.literal)] == c.literal
	}
	loc := c.re.FindStringSubmatchIndex(nsn)
	if loc == nil {
		return false
	}
	if loc[1] > 0 { // a non-empty match
		return true
	}
	for i := 2; i < len(loc); i += 2 {
		if loc[i] >= 0 { // a group took part: a transform rule may apply
			return true
		}
	}
	return false
}

var callingCodes = sync.OnceValue(func() map[int]ccInfo {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil // every number takes the slow path
	}
	tab := make(map[int]ccInfo)
	for _, md := range coll.GetMetadata() {
		cc := int(md.GetCountryCode())
		// phonenumbers.Parse uses the metadata of the main region of the
		// calling code, or of the non-geographic entity "001".
		if main := phonenumbers.GetRegionCodeForCountryCode(cc); main != md.GetId() {
			continue
		}
		var info ccInfo
		if p := md.GetNationalPrefixForParsing(); p != "" {
			if isDigits(p) {
				info.literal = p
			} else {
				re, err := regexp.Compile("^(?:" + p + ")")
				if err != nil {
					continue // unknown to the fast path: slow path
				}
				info.re = re
			}
		}
		tab[cc] = info
	}
	return tab
})

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
