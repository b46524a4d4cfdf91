package identity

import (
	"regexp"
	"strconv"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// The validity check of the hot path. phonenumbers.GetRegionCodeForNumber and
// IsValidNumberForRegion answer from the metadata's patterns, but on every call
// they rebuild each pattern string, look it up in a cache behind a global lock,
// and match most patterns twice: most of the cost of parsing a valid number.
// regionOf and validFor give the same answers from patterns compiled once per
// region (TestFastValidityAgrees and FuzzParse check the agreement).

// descMatcher is one number description (fixed line, mobile, ...) of a region:
// phonenumbers' isNumberMatchingDesc with its pattern compiled once.
type descMatcher struct {
	lengths []int32 // possible lengths of the national number; empty: any
	re      *regexp.Regexp
}

func newDescMatcher(d *phonenumbers.PhoneNumberDesc) (descMatcher, error) {
	// The very pattern phonenumbers builds: a nil description has the empty
	// pattern, which no national number matches.
	re, err := regexp.Compile("^(?:" + d.GetNationalNumberPattern() + ")$")
	if err != nil {
		return descMatcher{}, err
	}
	var lengths []int32
	if d != nil {
		lengths = d.GetPossibleLength()
	}
	return descMatcher{lengths: lengths, re: re}, nil
}

func (d *descMatcher) match(nsn string) bool {
	if len(d.lengths) > 0 {
		ok := false
		for _, l := range d.lengths {
			if int32(len(nsn)) == l {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return d.re.MatchString(nsn)
}

// regionMatcher is what validity needs of one region's metadata.
type regionMatcher struct {
	id      string
	cc      int32
	general descMatcher
	// types are the descriptions after general, fixed line and mobile, in
	// phonenumbers' order (premium rate, toll free, shared cost, VoIP, personal
	// number, pager, UAN, voicemail).
	fixed, mobile  descMatcher
	types          [8]descMatcher
	sameFixedMob   bool
	leadingDigits  *regexp.Regexp // nil when the region has none
	hasLeadingRule bool
}

// known is getNumberTypeHelper(nsn) != UNKNOWN. The order of the tests differs
// (mobile, the common answer on WhatsApp, then fixed line, then the rest); the
// result does not. When the region's fixed-line and mobile patterns are the
// same, the fixed-line test answers for both, as in phonenumbers.
func (r *regionMatcher) known(nsn string) bool {
	if !r.general.match(nsn) {
		return false
	}
	if !r.sameFixedMob && r.mobile.match(nsn) || r.fixed.match(nsn) {
		return true
	}
	for i := range r.types {
		if r.types[i].match(nsn) {
			return true
		}
	}
	return false
}

type validityTables struct {
	byCC   map[int32][]*regionMatcher // regions of a calling code, in GetRegionCodesForCountryCode's order
	nonGeo map[int32]*regionMatcher   // the "001" entity of a global calling code
}

// validity is nil when the metadata could not be compiled: callers then use
// phonenumbers itself.
var validity = sync.OnceValue(func() *validityTables {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil
	}
	byID := map[string]*regionMatcher{}
	t := &validityTables{byCC: map[int32][]*regionMatcher{}, nonGeo: map[int32]*regionMatcher{}}
	for _, md := range coll.GetMetadata() {
		r := &regionMatcher{id: md.GetId(), cc: md.GetCountryCode(), sameFixedMob: md.GetSameMobileAndFixedLinePattern()}
		descs := []struct {
			dst *descMatcher
			src *phonenumbers.PhoneNumberDesc
		}{
			{&r.general, md.GetGeneralDesc()}, {&r.fixed, md.GetFixedLine()}, {&r.mobile, md.GetMobile()},
			{&r.types[0], md.GetPremiumRate()}, {&r.types[1], md.GetTollFree()}, {&r.types[2], md.GetSharedCost()},
			{&r.types[3], md.GetVoip()}, {&r.types[4], md.GetPersonalNumber()}, {&r.types[5], md.GetPager()},
			{&r.types[6], md.GetUan()}, {&r.types[7], md.GetVoicemail()},
		}
		for _, d := range descs {
			if *d.dst, err = newDescMatcher(d.src); err != nil {
				return nil
			}
		}
		if ld := md.GetLeadingDigits(); ld != "" {
			if r.leadingDigits, err = regexp.Compile("^(?:" + ld + ")"); err != nil {
				return nil
			}
			r.hasLeadingRule = true
		}
		if r.id == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY {
			t.nonGeo[r.cc] = r
			continue
		}
		byID[r.id] = r
	}
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		ids := phonenumbers.GetRegionCodesForCountryCode(cc)
		for _, id := range ids {
			r := byID[id]
			if r == nil {
				if id == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY && len(ids) == 1 {
					continue // a global calling code: see nonGeo
				}
				return nil // metadata we do not understand: use phonenumbers
			}
			t.byCC[int32(cc)] = append(t.byCC[int32(cc)], r)
		}
	}
	return t
})

// nationalSignificant is phonenumbers.GetNationalSignificantNumber without its
// allocations for the common case (no Italian leading zero).
func nationalSignificant(pn *phonenumbers.PhoneNumber) string {
	if pn.GetItalianLeadingZero() && pn.GetNumberOfLeadingZeros() > 0 {
		return phonenumbers.GetNationalSignificantNumber(pn)
	}
	return strconv.FormatUint(pn.GetNationalNumber(), 10)
}

// regionAndValidity returns phonenumbers.GetRegionCodeForNumber(pn) and
// whether phonenumbers.IsValidNumberForRegion(pn, region) holds.
func regionAndValidity(pn *phonenumbers.PhoneNumber) (string, bool) {
	t := validity()
	if t == nil {
		region := phonenumbers.GetRegionCodeForNumber(pn)
		return region, region != "" && phonenumbers.IsValidNumberForRegion(pn, region)
	}
	cc := pn.GetCountryCode()
	regions := t.byCC[cc]
	nsn := nationalSignificant(pn)
	var r *regionMatcher
	switch {
	case len(regions) == 0:
		// Not a calling code of any region: a global (non-geographic) one
		// answers "001", anything else "".
		ng := t.nonGeo[cc]
		if ng == nil {
			return phonenumbers.GetRegionCodeForNumber(pn), false
		}
		r = ng
	case len(regions) == 1:
		r = regions[0]
	default:
		for _, c := range regions {
			if c.hasLeadingRule {
				if c.leadingDigits.MatchString(nsn) {
					r = c
					break
				}
			} else if c.known(nsn) {
				r = c
				break
			}
		}
		if r == nil {
			return "", false
		}
	}
	return r.id, r.cc == cc && r.known(nsn)
}

// e164 is phonenumbers.Format(pn, phonenumbers.E164) for a number with a
// national number: "+", the calling code and the national significant number.
func e164(pn *phonenumbers.PhoneNumber) string {
	if pn.GetNationalNumber() == 0 {
		return phonenumbers.Format(pn, phonenumbers.E164)
	}
	var buf [32]byte
	b := append(buf[:0], '+')
	b = strconv.AppendInt(b, int64(pn.GetCountryCode()), 10)
	if pn.GetItalianLeadingZero() && pn.GetNumberOfLeadingZeros() > 0 {
		return string(b) + phonenumbers.GetNationalSignificantNumber(pn)
	}
	b = strconv.AppendUint(b, pn.GetNationalNumber(), 10)
	return string(b)
}
