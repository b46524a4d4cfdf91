package identity

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// checkValidity fails if regionAndValidity or e164 disagree with phonenumbers on
// the reading of "+"+digits (and of digits in region, when given).
func checkValidity(t testing.TB, digits, region string) {
	t.Helper()
	for _, in := range []struct{ raw, region string }{{"+" + digits, ""}, {digits, region}} {
		if in.region == "" && in.raw == digits {
			continue
		}
		pn, err := phonenumbers.Parse(in.raw, in.region)
		if err != nil {
			continue
		}
		wantRegion := phonenumbers.GetRegionCodeForNumber(pn)
		wantValid := wantRegion != "" && phonenumbers.IsValidNumberForRegion(pn, wantRegion)
		region, valid := regionAndValidity(pn)
		if valid != wantValid || valid && region != wantRegion {
			t.Fatalf("regionAndValidity(%q in %q) = %q, %v; phonenumbers: %q, %v", in.raw, in.region, region, valid, wantRegion, wantValid)
		}
		if got, want := e164(pn), phonenumbers.Format(pn, phonenumbers.E164); got != want {
			t.Fatalf("e164(%q in %q) = %q, phonenumbers.Format: %q", in.raw, in.region, got, want)
		}
	}
}

// TestFastValidityAgrees checks the precompiled validity check against
// phonenumbers on the example numbers of every region and type, mutations of
// them, and random digits.
func TestFastValidityAgrees(t *testing.T) {
	if validity() == nil {
		t.Fatal("the validity tables did not build: every number takes the slow path")
	}
	types := []phonenumbers.PhoneNumberType{
		phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE, phonenumbers.PREMIUM_RATE,
		phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER,
		phonenumbers.UAN, phonenumbers.VOICEMAIL,
	}
	var samples []string
	regions := []string{""}
	for region := range phonenumbers.GetSupportedRegions() {
		regions = append(regions, region)
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
	rng := rand.New(rand.NewPCG(3, 4))
	n := 0
	for _, s := range samples {
		variants := []string{s, s[:len(s)-1], s + "1", "0" + s}
		for range 6 {
			b := []byte(s)
			b[rng.IntN(len(b))] = byte('0' + rng.IntN(10))
			variants = append(variants, string(b))
		}
		for _, v := range variants {
			checkValidity(t, v, regions[rng.IntN(len(regions))])
			n++
		}
	}
	for range 20_000 {
		d := strconv.FormatUint(rng.Uint64N(1e15), 10)
		checkValidity(t, d[:4+rng.IntN(len(d)-3)], regions[rng.IntN(len(regions))])
		n++
	}
	t.Logf("%d inputs agree", n)
}
