package validator

import (
	"strings"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The rules about who the recipient is and what they agreed to: INVALID_NUMBER,
// REGION_BLOCKED, OPTED_OUT and NO_CONSENT. They have no end (DENY).

// invalidNumber is INVALID_NUMBER: the phone given is not a possible number.
func invalidNumber(in *Input, h *hit) bool {
	if !in.Check.InvalidNumber {
		return false
	}
	*h = hit{rule: sgv1.Rule_RULE_INVALID_NUMBER, verdict: deny}
	return true
}

// metaBlockedRegion is the region whose numbers Meta delivers no marketing
// templates to (131049 since 2025-04-01). A Canadian +1 number has region CA.
const metaBlockedRegion = "US"

// regionBlocked is REGION_BLOCKED: no marketing to numbers of the policy's
// blocked_regions. For US numbers that is Meta's rule (they fail with 131049); any
// other region in the list is the business's own choice, an unwanted send rather
// than a doomed one, so it predicts no Meta error.
func regionBlocked(in *Input, h *hit) bool {
	c := &in.Check
	if c.Category != marketing || c.Region == "" {
		return false
	}
	for _, r := range in.Policy.BlockedRegions {
		if strings.EqualFold(r, c.Region) {
			*h = hit{rule: sgv1.Rule_RULE_REGION_BLOCKED, verdict: deny}
			if metaBlocks(c.Region) {
				h.code = 131049
			}
			return true
		}
	}
	return false
}

// metaBlocks reports whether Meta itself refuses marketing to the region.
func metaBlocks(region string) bool { return strings.EqualFold(region, metaBlockedRegion) }

// MetaOptedOut reports whether Meta's opt-out record (131050 or a user_preferences
// stop) is in force.
func (r *Relationship) MetaOptedOut() bool { return r.MetaStopAt.After(r.MetaResumeAt) }

// OwnOptedOut reports whether the business's own opt-out is in force.
func (r *Relationship) OwnOptedOut() bool { return r.OwnStopAt.After(r.OwnStartAt) }

// Consented reports whether an opt-in is recorded and not withdrawn since.
func (r *Relationship) Consented() bool {
	return !r.OwnStartAt.IsZero() && r.OwnStartAt.After(r.OwnStopAt)
}

// optedOut is OPTED_OUT, from Meta's record, the business's own, or the suppression
// entry left by a forgotten opt-out. It predicts 131050 only when Meta's record is
// in force: Meta delivers to a user who opted out only of this business's list.
func optedOut(in *Input, h *hit) bool {
	if in.Check.Category != marketing {
		return false
	}
	meta := in.Rel.MetaOptedOut()
	if !meta && !in.Rel.OwnOptedOut() && !in.Check.Suppressed {
		return false
	}
	*h = hit{rule: sgv1.Rule_RULE_OPTED_OUT, verdict: deny}
	if meta {
		h.code = 131050
	}
	return true
}

// noConsent is NO_CONSENT: the policy requires a recorded opt-in for marketing.
func noConsent(in *Input, h *hit) bool {
	if in.Check.Category != marketing || !in.Policy.RequireOptIn || in.Rel.Consented() {
		return false
	}
	*h = hit{rule: sgv1.Rule_RULE_NO_CONSENT, verdict: deny}
	return true
}
