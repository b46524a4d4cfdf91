package validator

import (
	"slices"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator/keyword"
)

// Cap allows at most Count marketing sends in any window of length Window.
type Cap struct {
	Count  int
	Window time.Duration
}

// QuietHours is a daily period in the recipient's local time, as minutes after local
// midnight. End before Start wraps past midnight.
type QuietHours struct {
	Start, End int
}

// Policy is one business's effective policy: the deployment defaults with the
// business's overrides applied. A zero duration or count turns its rule off.
type Policy struct {
	FrequencyCaps        []Cap
	EcosystemCooldown    time.Duration
	EcosystemCooldownMax time.Duration
	ExperimentTTL        time.Duration
	ServiceWindow        time.Duration
	UndeliverableBackoff []time.Duration
	PairInterval         time.Duration
	PairBurst            int
	OptOutKeywords       []string
	OptInKeywords        []string
	QuietHours           *QuietHours // nil = off
	TemplateRepeatWindow time.Duration
	MessagingLimit       int // unique users reached outside the window per rolling 24 h; 0 = off
	BlockedRegions       []string
	RequireOptIn         bool
	// KeywordOptInIsConsent: an opt-in keyword (START) records consent for
	// RequireOptIn, besides lifting the business's own opt-out. Off by
	// default: only SetOptOut(false) records consent.
	KeywordOptInIsConsent bool
	// ShareNumberSignals: the number-wide facts (131049, 130472, 131026) are
	// pooled with the deployment's other businesses. Off by default (the
	// WhatsApp Business Solution Terms: one client's Meta data must not
	// restrict another client).
	ShareNumberSignals bool
	Shadow             bool        // the whole business in shadow mode
	ShadowRules        []sgv1.Rule // rules in shadow mode
	// NumberValidation is what INVALID_NUMBER denies besides impossible
	// numbers: NUMBER_VALIDATION_POSSIBLE, nothing more; anything else (VALID,
	// the default), a number that is not valid unless the history proves it
	// real (recipient.go).
	NumberValidation sgv1.NumberValidation
	// DefaultRegion is the region (ISO 3166 alpha-2) nationally spelled phones
	// are read by when a request names none; "" for none. No rule reads it: the
	// server parses phones with it.
	DefaultRegion string
}

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// Defaults returns DESIGN.md's defaults.
func Defaults() Policy {
	return Policy{
		FrequencyCaps:        []Cap{{Count: 1, Window: day}, {Count: 3, Window: week}},
		EcosystemCooldown:    day,
		EcosystemCooldownMax: week,
		ExperimentTTL:        30 * day,
		ServiceWindow:        day,
		UndeliverableBackoff: []time.Duration{day, 72 * time.Hour, week},
		PairInterval:         6 * time.Second,
		PairBurst:            45,
		OptOutKeywords:       slices.Clone(keyword.DefaultOptOut),
		OptInKeywords:        slices.Clone(keyword.DefaultOptIn),
		BlockedRegions:       []string{"US"},
		NumberValidation:     sgv1.NumberValidation_NUMBER_VALIDATION_VALID,
	}
}

// Shadowed reports whether rule r is in shadow mode. RULE_OPTED_OUT never is.
func (p *Policy) Shadowed(r sgv1.Rule) bool {
	if r == sgv1.Rule_RULE_OPTED_OUT {
		return false
	}
	if p.Shadow {
		return true
	}
	for _, s := range p.ShadowRules {
		if s == r {
			return true
		}
	}
	return false
}
