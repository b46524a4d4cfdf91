package server

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator"
	"github.com/sendguard/sendguard/validator/keyword"
)

// Bounds of a policy: what the rules and the store can honour. SetPolicy answers
// INVALID_ARGUMENT naming the field, and the config file is a startup error
// naming the key, for any value beyond them; README's Configuration section
// lists them.
const (
	maxPolicyCaps     = 8  // frequency_caps
	maxPolicyKeywords = 64 // each keyword list
	maxKeywordBytes   = 64
	maxPolicyList     = 64 // undeliverable_backoff and shadow_rules, as sent
	// maxPolicyDuration bounds every duration: a year and a month, as far ahead
	// as a send may be planned (max_plan_ahead's default).
	maxPolicyDuration = 400 * 24 * time.Hour
	// maxServiceWindow is Meta's customer service window: a longer one would
	// ALLOW free-form messages that Meta refuses (131047).
	maxServiceWindow = 24 * time.Hour
	// maxPairInterval is a week between sends to one number, sustained; the
	// GCRA multiplies it by the history's length.
	maxPairInterval = 7 * 24 * time.Hour
)

// mergePolicy applies a business's overrides o on top of base. Scalars and messages
// that are set replace base's; a repeated field that is not empty replaces base's,
// and a repeated field holding a single zero element (FrequencyCap{count: 0}, a zero
// duration, an empty region or keyword, RULE_UNSPECIFIED) turns the list off.
// Every value is checked against the bounds above; duplicates in a list are
// folded. Errors name the field.
func mergePolicy(base validator.Policy, o *sgv1.Policy) (validator.Policy, error) {
	p := base
	// Copy base's slices so that callers can never alias the defaults.
	p.FrequencyCaps = slices.Clone(base.FrequencyCaps)
	p.UndeliverableBackoff = slices.Clone(base.UndeliverableBackoff)
	p.OptOutKeywords = slices.Clone(base.OptOutKeywords)
	p.OptInKeywords = slices.Clone(base.OptInKeywords)
	p.BlockedRegions = slices.Clone(base.BlockedRegions)
	p.ShadowRules = slices.Clone(base.ShadowRules)
	if base.QuietHours != nil {
		q := *base.QuietHours
		p.QuietHours = &q
	}
	if o == nil {
		return p, nil
	}
	var err error
	if p.FrequencyCaps, err = frequencyCaps(o.GetFrequencyCaps(), p.FrequencyCaps); err != nil {
		return p, err
	}
	durs := []struct {
		name string
		in   *durationpb.Duration
		out  *time.Duration
		max  time.Duration
	}{
		{"ecosystem_cooldown", o.GetEcosystemCooldown(), &p.EcosystemCooldown, maxPolicyDuration},
		{"ecosystem_cooldown_max", o.GetEcosystemCooldownMax(), &p.EcosystemCooldownMax, maxPolicyDuration},
		{"experiment_ttl", o.GetExperimentTtl(), &p.ExperimentTTL, maxPolicyDuration},
		{"service_window", o.GetServiceWindow(), &p.ServiceWindow, maxServiceWindow},
		{"pair_interval", o.GetPairInterval(), &p.PairInterval, maxPairInterval},
		{"template_repeat_window", o.GetTemplateRepeatWindow(), &p.TemplateRepeatWindow, maxPolicyDuration},
	}
	for _, d := range durs {
		if d.in == nil {
			continue
		}
		if *d.out, err = duration(d.name, d.in, false, d.max); err != nil {
			return p, err
		}
	}
	if p.UndeliverableBackoff, err = backoff(o.GetUndeliverableBackoff(), p.UndeliverableBackoff); err != nil {
		return p, err
	}
	if o.PairBurst != nil {
		if p.PairBurst, err = count("pair_burst", o.GetPairBurst(), 0, validator.MaxPairBurst); err != nil {
			return p, err
		}
	}
	if p.OptOutKeywords, err = keywords("opt_out_keywords", o.GetOptOutKeywords(), p.OptOutKeywords); err != nil {
		return p, err
	}
	if p.OptInKeywords, err = keywords("opt_in_keywords", o.GetOptInKeywords(), p.OptInKeywords); err != nil {
		return p, err
	}
	if q := o.GetQuietHours(); q != nil {
		start, err1 := parseClock(q.GetStart())
		end, err2 := parseClock(q.GetEnd())
		switch {
		case err1 != nil:
			return p, fmt.Errorf("quiet_hours.start: %v", err1)
		case err2 != nil:
			return p, fmt.Errorf("quiet_hours.end: %v", err2)
		case start == end:
			p.QuietHours = nil
		default:
			p.QuietHours = &validator.QuietHours{Start: start, End: end}
		}
	}
	if o.MessagingLimit != nil {
		if p.MessagingLimit, err = count("messaging_limit", o.GetMessagingLimit(), 0, math.MaxInt32); err != nil {
			return p, err
		}
	}
	if p.BlockedRegions, err = regions(o.GetBlockedRegions(), p.BlockedRegions); err != nil {
		return p, err
	}
	if o.RequireOptIn != nil {
		p.RequireOptIn = o.GetRequireOptIn()
	}
	if o.ShareNumberSignals != nil {
		p.ShareNumberSignals = o.GetShareNumberSignals()
	}
	if o.Shadow != nil {
		p.Shadow = o.GetShadow()
	}
	if p.ShadowRules, err = shadowRules(o.GetShadowRules(), p.ShadowRules); err != nil {
		return p, err
	}
	if o.DefaultRegion != nil {
		if p.DefaultRegion, err = defaultRegion(o.GetDefaultRegion()); err != nil {
			return p, err
		}
	}
	if v := o.GetNumberValidation(); v != sgv1.NumberValidation_NUMBER_VALIDATION_UNSPECIFIED {
		if _, ok := sgv1.NumberValidation_name[int32(v)]; !ok {
			return p, fmt.Errorf("number_validation: unknown value %d (want NUMBER_VALIDATION_VALID or NUMBER_VALIDATION_POSSIBLE)", v)
		}
		p.NumberValidation = v
	}
	if o.KeywordOptInIsConsent != nil {
		p.KeywordOptInIsConsent = o.GetKeywordOptInIsConsent()
	}
	return p, nil
}

// defaultRegion reads default_region: a region code (see regionCode),
// upper-cased; "" (set explicitly) for none, whatever the deployment's.
func defaultRegion(in string) (string, error) {
	in = strings.TrimSpace(in)
	if in == "" {
		return "", nil
	}
	c, err := regionCode(in)
	if err != nil {
		return "", fmt.Errorf("default_region: %v", err)
	}
	return c, nil
}

// duration checks a duration field: valid, from zero (positive when positive
// is set) to hi.
func duration(field string, d *durationpb.Duration, positive bool, hi time.Duration) (time.Duration, error) {
	v := d.AsDuration() // saturates: a duration of 10,000 years is still over hi
	switch {
	case d.CheckValid() != nil || v < 0 || v > hi:
		if positive {
			return 0, fmt.Errorf("%s: must be a positive duration of at most %s", field, formatDuration(hi))
		}
		return 0, fmt.Errorf("%s: must be a duration from 0s to %s", field, formatDuration(hi))
	case positive && v == 0:
		return 0, fmt.Errorf("%s: must be a positive duration of at most %s", field, formatDuration(hi))
	}
	return v, nil
}

// count checks a count field: from lo to hi.
func count(field string, n int32, lo, hi int) (int, error) {
	if int(n) < lo || int(n) > hi {
		return 0, fmt.Errorf("%s: must be from %d to %d", field, lo, hi)
	}
	return int(n), nil
}

// formatDuration writes a bound the way the config file takes it: whole days as
// "400d", else Go's form ("24h0m0s" becomes "24h").
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == 0:
		return "0s"
	case d%day == 0 && d > day:
		return strconv.Itoa(int(d/day)) + "d"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return d.String()
}

// frequencyCaps reads frequency_caps: each count from 1 to validator.MaxCapCount
// (the history keeps no more sends), each window positive and at most
// maxPolicyDuration; identical caps are folded.
func frequencyCaps(in []*sgv1.FrequencyCap, base []validator.Cap) ([]validator.Cap, error) {
	switch n := len(in); {
	case n == 0:
		return base, nil
	case n > maxPolicyCaps:
		return nil, fmt.Errorf("frequency_caps: at most %d caps", maxPolicyCaps)
	case n == 1 && in[0].GetCount() == 0:
		return nil, nil
	}
	var out []validator.Cap
	for i, c := range in {
		n, err := count(fmt.Sprintf("frequency_caps[%d].count", i), c.GetCount(), 1, validator.MaxCapCount)
		if err != nil {
			return nil, err
		}
		if c.GetWindow() == nil {
			return nil, fmt.Errorf("frequency_caps[%d].window: must be set", i)
		}
		w, err := duration(fmt.Sprintf("frequency_caps[%d].window", i), c.GetWindow(), true, maxPolicyDuration)
		if err != nil {
			return nil, err
		}
		if c := (validator.Cap{Count: n, Window: w}); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// backoff reads undeliverable_backoff: the steps in order (repeats are steps too),
// each positive and at most maxPolicyDuration.
func backoff(in []*durationpb.Duration, base []time.Duration) ([]time.Duration, error) {
	switch n := len(in); {
	case n == 0:
		return base, nil
	case n > maxPolicyList:
		return nil, fmt.Errorf("undeliverable_backoff: at most %d steps", maxPolicyList)
	case n == 1 && in[0].AsDuration() == 0 && in[0].CheckValid() == nil:
		return nil, nil
	}
	out := make([]time.Duration, 0, len(in))
	for i, d := range in {
		v, err := duration(fmt.Sprintf("undeliverable_backoff[%d]", i), d, true, maxPolicyDuration)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// keywords reads a keyword list: each keyword trimmed, 1 to maxKeywordBytes
// bytes of letters, marks, digits, punctuation and spaces of any script, with a
// letter or digit (what keyword.Normalize keeps); keywords that match the same
// messages are folded, the first spelling kept.
func keywords(field string, in, base []string) ([]string, error) {
	switch n := len(in); {
	case n == 0:
		return base, nil
	case n > maxPolicyKeywords:
		return nil, fmt.Errorf("%s: at most %d keywords", field, maxPolicyKeywords)
	case n == 1 && strings.TrimSpace(in[0]) == "":
		return nil, nil
	}
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for i, k := range in {
		k = strings.TrimSpace(k)
		if err := checkKeyword(k); err != nil {
			return nil, fmt.Errorf("%s[%d]: %v", field, i, err)
		}
		if n := keyword.Normalize(k); !seen[n] {
			seen[n] = true
			out = append(out, k)
		}
	}
	return out, nil
}

// checkKeyword tells what is wrong with a trimmed keyword, if anything.
func checkKeyword(k string) error {
	if k == "" || len(k) > maxKeywordBytes {
		return fmt.Errorf("must be 1 to %d bytes", maxKeywordBytes)
	}
	if !utf8.ValidString(k) {
		return errors.New("is not valid UTF-8")
	}
	for _, r := range k {
		if !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.Zs) {
			return fmt.Errorf("%q: only letters, digits, punctuation and spaces (no control characters or symbols)", r)
		}
	}
	if keyword.Normalize(k) == "" {
		return errors.New("needs a letter or digit")
	}
	return nil
}

// regions reads blocked_regions: region codes (see regionCode), upper-cased,
// duplicates folded.
func regions(in, base []string) ([]string, error) {
	switch n := len(in); {
	case n == 0:
		return base, nil
	case n > len(regionCodes):
		return nil, fmt.Errorf("blocked_regions: at most %d regions", len(regionCodes))
	case n == 1 && in[0] == "":
		return nil, nil
	}
	out := make([]string, 0, len(in))
	for i, r := range in {
		c, err := regionCode(strings.TrimSpace(r))
		if err != nil {
			return nil, fmt.Errorf("blocked_regions[%d]: %v", i, err)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// shadowRules reads shadow_rules: known rules but RULE_OPTED_OUT, which is never
// shadowed; duplicates folded.
func shadowRules(in, base []sgv1.Rule) ([]sgv1.Rule, error) {
	switch n := len(in); {
	case n == 0:
		return base, nil
	case n > maxPolicyList:
		return nil, fmt.Errorf("shadow_rules: at most %d rules", maxPolicyList)
	case n == 1 && in[0] == sgv1.Rule_RULE_UNSPECIFIED:
		return nil, nil
	}
	var out []sgv1.Rule
	for i, r := range in {
		if _, ok := sgv1.Rule_name[int32(r)]; !ok || r == sgv1.Rule_RULE_UNSPECIFIED {
			return nil, fmt.Errorf("shadow_rules[%d]: unknown rule %d", i, r)
		}
		if r == sgv1.Rule_RULE_OPTED_OUT {
			return nil, fmt.Errorf("shadow_rules[%d]: RULE_OPTED_OUT is never shadowed", i)
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// parseClock parses "HH:MM" into minutes after midnight.
func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a HH:MM time", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func formatClock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// policyProto renders an effective policy with every field set.
func policyProto(p validator.Policy) *sgv1.Policy {
	out := &sgv1.Policy{
		EcosystemCooldown:     durationpb.New(p.EcosystemCooldown),
		EcosystemCooldownMax:  durationpb.New(p.EcosystemCooldownMax),
		ExperimentTtl:         durationpb.New(p.ExperimentTTL),
		ServiceWindow:         durationpb.New(p.ServiceWindow),
		PairInterval:          durationpb.New(p.PairInterval),
		PairBurst:             proto.Int32(int32(p.PairBurst)),
		OptOutKeywords:        slices.Clone(p.OptOutKeywords),
		OptInKeywords:         slices.Clone(p.OptInKeywords),
		TemplateRepeatWindow:  durationpb.New(p.TemplateRepeatWindow),
		MessagingLimit:        proto.Int32(int32(p.MessagingLimit)),
		BlockedRegions:        slices.Clone(p.BlockedRegions),
		RequireOptIn:          proto.Bool(p.RequireOptIn),
		KeywordOptInIsConsent: proto.Bool(p.KeywordOptInIsConsent),
		ShareNumberSignals:    proto.Bool(p.ShareNumberSignals),
		Shadow:                proto.Bool(p.Shadow),
		ShadowRules:           slices.Clone(p.ShadowRules),
		DefaultRegion:         proto.String(p.DefaultRegion),
		NumberValidation:      p.NumberValidation,
	}
	for _, c := range p.FrequencyCaps {
		out.FrequencyCaps = append(out.FrequencyCaps, &sgv1.FrequencyCap{Count: int32(c.Count), Window: durationpb.New(c.Window)})
	}
	for _, d := range p.UndeliverableBackoff {
		out.UndeliverableBackoff = append(out.UndeliverableBackoff, durationpb.New(d))
	}
	if p.QuietHours != nil {
		out.QuietHours = &sgv1.QuietHours{Start: formatClock(p.QuietHours.Start), End: formatClock(p.QuietHours.End)}
	}
	return out
}

// applyMask returns the overrides after SetPolicy: without a mask, in replaces cur;
// with one, each named top-level field is copied from in (cleared when unset in in).
func applyMask(cur, in *sgv1.Policy, paths []string) (*sgv1.Policy, error) {
	if in == nil {
		in = &sgv1.Policy{}
	}
	if len(paths) == 0 {
		return proto.Clone(in).(*sgv1.Policy), nil
	}
	out := proto.Clone(cur).(*sgv1.Policy)
	if out == nil {
		out = &sgv1.Policy{}
	}
	desc := out.ProtoReflect().Descriptor().Fields()
	src := proto.Clone(in).ProtoReflect()
	dst := out.ProtoReflect()
	for _, path := range paths {
		fd := desc.ByName(protoreflect.Name(path))
		if fd == nil {
			return nil, fmt.Errorf("update_mask: %q is not a Policy field", path)
		}
		if src.Has(fd) {
			dst.Set(fd, src.Get(fd))
		} else {
			dst.Clear(fd)
		}
	}
	return out, nil
}
