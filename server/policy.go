package server

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator"
)

// Limits on a policy, so that one business cannot make every check slow.
const (
	maxPolicyCaps     = 8
	maxPolicyKeywords = 64
	maxPolicyList     = 64
	maxKeywordBytes   = 64
)

// mergePolicy applies a business's overrides o on top of base. Scalars and messages
// that are set replace base's; a repeated field that is not empty replaces base's,
// and a repeated field holding a single zero element (FrequencyCap{count: 0}, a zero
// duration, an empty region, RULE_UNSPECIFIED) turns the list off. Errors name the
// field.
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
	if n := len(o.FrequencyCaps); n > 0 {
		if n > maxPolicyCaps {
			return p, fmt.Errorf("frequency_caps: at most %d caps", maxPolicyCaps)
		}
		p.FrequencyCaps = nil
		if !(n == 1 && o.FrequencyCaps[0].GetCount() == 0) {
			for i, c := range o.FrequencyCaps {
				w := c.GetWindow().AsDuration()
				if c.GetCount() <= 0 || w <= 0 || !c.GetWindow().IsValid() {
					return p, fmt.Errorf("frequency_caps[%d]: count and window must be positive", i)
				}
				p.FrequencyCaps = append(p.FrequencyCaps, validator.Cap{Count: int(c.GetCount()), Window: w})
			}
		}
	}
	durs := []struct {
		name string
		in   *durationpb.Duration
		out  *time.Duration
	}{
		{"ecosystem_cooldown", o.EcosystemCooldown, &p.EcosystemCooldown},
		{"ecosystem_cooldown_max", o.EcosystemCooldownMax, &p.EcosystemCooldownMax},
		{"experiment_ttl", o.ExperimentTtl, &p.ExperimentTTL},
		{"service_window", o.ServiceWindow, &p.ServiceWindow},
		{"pair_interval", o.PairInterval, &p.PairInterval},
		{"template_repeat_window", o.TemplateRepeatWindow, &p.TemplateRepeatWindow},
	}
	for _, d := range durs {
		if d.in == nil {
			continue
		}
		if !d.in.IsValid() || d.in.AsDuration() < 0 {
			return p, fmt.Errorf("%s: must be a non-negative duration", d.name)
		}
		*d.out = d.in.AsDuration()
	}
	if n := len(o.UndeliverableBackoff); n > 0 {
		if n > maxPolicyList {
			return p, fmt.Errorf("undeliverable_backoff: at most %d steps", maxPolicyList)
		}
		p.UndeliverableBackoff = nil
		if !(n == 1 && o.UndeliverableBackoff[0].AsDuration() == 0) {
			for i, d := range o.UndeliverableBackoff {
				if !d.IsValid() || d.AsDuration() <= 0 {
					return p, fmt.Errorf("undeliverable_backoff[%d]: must be a positive duration", i)
				}
				p.UndeliverableBackoff = append(p.UndeliverableBackoff, d.AsDuration())
			}
		}
	}
	if o.PairBurst != nil {
		if *o.PairBurst < 0 {
			return p, fmt.Errorf("pair_burst: must not be negative")
		}
		p.PairBurst = int(*o.PairBurst)
	}
	var err error
	if p.OptOutKeywords, err = keywords("opt_out_keywords", o.OptOutKeywords, p.OptOutKeywords); err != nil {
		return p, err
	}
	if p.OptInKeywords, err = keywords("opt_in_keywords", o.OptInKeywords, p.OptInKeywords); err != nil {
		return p, err
	}
	if q := o.QuietHours; q != nil {
		start, err1 := parseClock(q.Start)
		end, err2 := parseClock(q.End)
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
		if *o.MessagingLimit < 0 {
			return p, fmt.Errorf("messaging_limit: must not be negative")
		}
		p.MessagingLimit = int(*o.MessagingLimit)
	}
	if n := len(o.BlockedRegions); n > 0 {
		if n > maxPolicyList {
			return p, fmt.Errorf("blocked_regions: at most %d regions", maxPolicyList)
		}
		p.BlockedRegions = nil
		if !(n == 1 && o.BlockedRegions[0] == "") {
			for i, r := range o.BlockedRegions {
				if len(r) != 2 {
					return p, fmt.Errorf("blocked_regions[%d]: %q is not a two-letter region code", i, r)
				}
				p.BlockedRegions = append(p.BlockedRegions, strings.ToUpper(r))
			}
		}
	}
	if o.RequireOptIn != nil {
		p.RequireOptIn = *o.RequireOptIn
	}
	if o.ShareNumberSignals != nil {
		p.ShareNumberSignals = *o.ShareNumberSignals
	}
	if o.Shadow != nil {
		p.Shadow = *o.Shadow
	}
	if n := len(o.ShadowRules); n > 0 {
		p.ShadowRules = nil
		if !(n == 1 && o.ShadowRules[0] == sgv1.Rule_RULE_UNSPECIFIED) {
			for i, r := range o.ShadowRules {
				if _, ok := sgv1.Rule_name[int32(r)]; !ok || r == sgv1.Rule_RULE_UNSPECIFIED {
					return p, fmt.Errorf("shadow_rules[%d]: unknown rule %d", i, r)
				}
				if !slices.Contains(p.ShadowRules, r) {
					p.ShadowRules = append(p.ShadowRules, r)
				}
			}
		}
	}
	return p, nil
}

func keywords(field string, in, base []string) ([]string, error) {
	if len(in) == 0 {
		return base, nil
	}
	if len(in) > maxPolicyKeywords {
		return nil, fmt.Errorf("%s: at most %d keywords", field, maxPolicyKeywords)
	}
	if len(in) == 1 && strings.TrimSpace(in[0]) == "" {
		return nil, nil
	}
	out := make([]string, 0, len(in))
	for i, k := range in {
		k = strings.TrimSpace(k)
		if k == "" || len(k) > maxKeywordBytes {
			return nil, fmt.Errorf("%s[%d]: must be 1 to %d bytes", field, i, maxKeywordBytes)
		}
		out = append(out, k)
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
		EcosystemCooldown:    durationpb.New(p.EcosystemCooldown),
		EcosystemCooldownMax: durationpb.New(p.EcosystemCooldownMax),
		ExperimentTtl:        durationpb.New(p.ExperimentTTL),
		ServiceWindow:        durationpb.New(p.ServiceWindow),
		PairInterval:         durationpb.New(p.PairInterval),
		PairBurst:            proto.Int32(int32(p.PairBurst)),
		OptOutKeywords:       slices.Clone(p.OptOutKeywords),
		OptInKeywords:        slices.Clone(p.OptInKeywords),
		TemplateRepeatWindow: durationpb.New(p.TemplateRepeatWindow),
		MessagingLimit:       proto.Int32(int32(p.MessagingLimit)),
		BlockedRegions:       slices.Clone(p.BlockedRegions),
		RequireOptIn:         proto.Bool(p.RequireOptIn),
		ShareNumberSignals:   proto.Bool(p.ShareNumberSignals),
		Shadow:               proto.Bool(p.Shadow),
		ShadowRules:          slices.Clone(p.ShadowRules),
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
