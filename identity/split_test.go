package identity

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// checkSplit fails if splitIntl answers for digits and disagrees with
// phonenumbers.Parse.
func checkSplit(t testing.TB, digits string) (fast bool) {
	t.Helper()
	pn, ccLen := splitIntl(digits)
	if pn == nil {
		return false
	}
	want, err := phonenumbers.Parse("+"+digits, "")
	if err != nil {
		t.Fatalf("splitIntl(%q) = %v but phonenumbers.Parse: %v", digits, pn, err)
	}
	if pn.GetCountryCode() != want.GetCountryCode() || pn.GetNationalNumber() != want.GetNationalNumber() ||
		pn.GetItalianLeadingZero() != want.GetItalianLeadingZero() || pn.GetNumberOfLeadingZeros() != want.GetNumberOfLeadingZeros() ||
		phonenumbers.Format(pn, phonenumbers.E164) != phonenumbers.Format(want, phonenumbers.E164) {
		t.Fatalf("splitIntl(%q) = %v, phonenumbers.Parse = %v", digits, pn, want)
	}
	if ccLen != len(strconv.Itoa(int(want.GetCountryCode()))) {
		t.Fatalf("splitIntl(%q) country code length %d", digits, ccLen)
	}
	return true
}

// TestSplitIntlAgrees checks the fast path against phonenumbers.Parse on the
// example numbers of every region and type, and on mutations of them.
func TestSplitIntlAgrees(t *testing.T) {
	var samples []string
	types := []phonenumbers.PhoneNumberType{
		phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE, phonenumbers.PREMIUM_RATE,
		phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER,
		phonenumbers.UAN, phonenumbers.VOICEMAIL,
	}
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range types {
			if ex := phonenumbers.GetExampleNumberForType(region, typ); ex != nil {
				samples = append(samples, phonenumbers.Format(ex, phonenumbers.E164)[1:])
			}
		}
	}
	for cc := range phonenumbers.GetSupportedGlobalNetworkCallingCodes() {
		if ex := phonenumbers.GetExampleNumberForNonGeoEntity(cc); ex != nil {
			samples = append(samples, phonenumbers.Format(ex, phonenumbers.E164)[1:])
		}
	}
	if len(samples) < 500 {
		t.Fatalf("only %d example numbers", len(samples))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	fast, total := 0, 0
	for _, s := range samples {
		variants := []string{s, s[:len(s)-1], s + "1", s + "15"}
		for range 10 {
			b := []byte(s)
			i := 1 + rng.IntN(len(b)-1)
			b[i] = byte('0' + rng.IntN(10))
			variants = append(variants, string(b))
		}
		// trunk "0", Argentine-style "15" and '9' after the country code
		for l := 1; l <= 3 && l < len(s); l++ {
			variants = append(variants, s[:l]+"0"+s[l:], s[:l]+"15"+s[l:], s[:l]+"9"+s[l:], s[:l]+"1"+s[l:])
		}
		for _, v := range variants {
			total++
			if checkSplit(t, v) {
				fast++
			}
		}
	}
	t.Logf("fast path taken for %d of %d inputs", fast, total)
	for _, d := range []string{"16505551234", "5511987654321", "525512345678", "5491112345678", "447400123456"} {
		if pn, _ := splitIntl(d); pn == nil {
			t.Errorf("splitIntl(%q) took the slow path", d)
		}
	}
}
