package codec

import (
	"strconv"
	"strings"
	"time"

	"github.com/sendguard/sendguard/validator"
	"github.com/sendguard/sendguard/validator/keyword"
)

// consentSection ('c') holds the relationship's consent (ConsentAt,
// ConsentReason), kept apart from the lift of the business's own opt-out
// since issue 14. It is written only when reading the record as one written
// before (see upgradeConsent) would not give the relationship back: a
// relationship without a lift or consent, or whose consent is its lift by
// SetOptOut(false) (the common case), encodes as before.
var consentSection = section{
	tag:     'c',
	present: needsConsentSection,
	append: func(dst []byte, r *validator.Relationship) []byte {
		dst = appendTime(dst, r.ConsentAt)
		return appendString(dst, r.ConsentReason)
	},
	decode: func(d *decoder, r *validator.Relationship) {
		r.ConsentAt = d.time("ConsentAt")
		r.ConsentReason = d.string("ConsentReason")
	},
	absent: upgradeConsent,
}

// legacyOptIn matches the opt-in keywords a lift recorded before issue 14 is
// re-judged by: this release's defaults (START, UNSTOP).
var legacyOptIn = keyword.NewMatcher(keyword.DefaultOptIn)

// upgradeConsent reads a record written before consent was kept apart, when
// every opt-in (SetOptOut(false) and every opt-in keyword, VOLTAR and ALTA
// included) both lifted the business's own opt-out and recorded consent. A lift
// whose stored reason names its keyword (`keyword "VOLTAR"`) is re-judged by
// this release's defaults: an opt-in keyword (START, UNSTOP) still lifts the
// opt-out but is no longer consent (keyword_opt_in_is_consent is off by
// default); any other word (VOLTAR, VOLVER, INICIAR, ALTA: chatbot navigation)
// lifts nothing, so the opt-out it lifted is in force again. A lift whose reason
// names no keyword (SetOptOut(false), an import) stands, as lift and consent.
func upgradeConsent(r *validator.Relationship) {
	if r.OwnStartAt.IsZero() {
		return
	}
	word, ok := storedKeyword(r.OwnStartReason)
	switch {
	case !ok:
		r.ConsentAt, r.ConsentReason = r.OwnStartAt, r.OwnStartReason
	case legacyOptIn.Match(word):
		// The lift stands; consent is not recorded.
	default:
		validator.AddEvent(r, r.OwnStartAt, "on upgrade: "+r.OwnStartReason+" is not an opt-in keyword; the opt-out it lifted is in force again")
		r.OwnStartAt, r.OwnStartReason = time.Time{}, ""
	}
}

// storedKeyword returns the keyword of a reason recorded for an inbound
// keyword (validator.KeywordReason): `keyword "<text>"`.
func storedKeyword(reason string) (string, bool) {
	q, ok := strings.CutPrefix(reason, "keyword ")
	if !ok {
		return "", false
	}
	w, err := strconv.Unquote(q)
	return w, err == nil
}

// needsConsentSection reports whether upgradeConsent, applied to r without its
// consent, would not give r back.
func needsConsentSection(r *validator.Relationship) bool {
	if r.OwnStartAt.IsZero() {
		return !r.ConsentAt.IsZero() || r.ConsentReason != ""
	}
	if _, ok := storedKeyword(r.OwnStartReason); ok {
		return true
	}
	return !r.ConsentAt.Equal(r.OwnStartAt) || r.ConsentReason != r.OwnStartReason
}
