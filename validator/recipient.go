package validator

import (
	"strings"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The rules about who the recipient is and what they agreed to: INVALID_NUMBER,
// REGION_BLOCKED, OPTED_OUT and NO_CONSENT. They have no end (DENY).

// invalidNumber is INVALID_NUMBER: the phone given is not a possible number, is
// spelled nationally with no region to read it by, or (NUMBER_VALIDATION_VALID,
// the default) is not a valid number and nothing in the history proves it real:
// libphonenumber's metadata lags newly allocated ranges, and a number WhatsApp
// delivered to, or that wrote, exists whatever the metadata says.
func invalidNumber(in *Input, h *hit) bool {
	switch in.Check.Number {
	case NumberImpossible, NumberNational:
	case NumberNotValid:
		if in.Policy.NumberValidation == sgv1.NumberValidation_NUMBER_VALIDATION_POSSIBLE || provenReal(in.Rel, in.Facts) {
			return false
		}
	default:
		return false
	}
	*h = hit{rule: sgv1.Rule_RULE_INVALID_NUMBER, verdict: deny}
	return true
}

// provenReal reports whether the history proves the number real: a delivered,
// read or played status of a message to it (the number-wide facts the business
// reads: any business's when it shares number signals, Meta's delivery being a
// fact about the number), or a message or call from it. The proof lasts as long
// as the state keeps it (see ExpiresAt).
func provenReal(rel *Relationship, f *NumberFacts) bool {
	if !f.LastDeliveredAt.IsZero() || !rel.Local.LastDeliveredAt.IsZero() {
		return true
	}
	for i := range rel.states() {
		if !rel.stateAt(i).LastInboundAt.IsZero() {
			return true
		}
	}
	for i := range rel.Sends {
		if rel.Sends[i].Delivered {
			return true
		}
	}
	return false
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
	if c.Region == "" {
		return false
	}
	if c.Category == marketing {
		for _, r := range in.Policy.BlockedRegions {
			if strings.EqualFold(r, c.Region) {
				*h = hit{rule: sgv1.Rule_RULE_REGION_BLOCKED, verdict: deny, n: -1}
				if metaBlocks(c.Region) {
					h.code = 131049
				}
				return true
			}
		}
	}
	// A 130497 learned for the account in this region: every category.
	rs := in.Business.Restrictions
	for i := range rs {
		if rs[i].Kind.ByRegion() && rs[i].Streak > 0 && strings.EqualFold(rs[i].Sender, c.Region) {
			*h = hit{rule: sgv1.Rule_RULE_REGION_BLOCKED, verdict: deny, code: 130497, at: rs[i].At, n: i}
			return true
		}
	}
	return false
}

// metaBlocks reports whether Meta itself refuses marketing to the region.
func metaBlocks(region string) bool { return strings.EqualFold(region, metaBlockedRegion) }

// optedOut reports whether this sender's Meta opt-out record (131050 or a
// user_preferences stop) is in force: a stop not lifted by later evidence (a
// stop and a lift of the same time: the stop wins).
func (st *SenderState) optedOut() bool {
	return !st.MetaStopAt.IsZero() && !st.MetaStopAt.Before(st.MetaResumeAt)
}

// MetaOptedOut reports whether Meta's opt-out record of any sender is in force:
// it blocks marketing from every sender of the business.
func (r *Relationship) MetaOptedOut() bool { return metaStop(r, "") != nil }

// MetaStoppedAt returns when the Meta opt-out record in force that a check from
// sender reports was set (see metaStop; "" for any sender's), if one is.
func (r *Relationship) MetaStoppedAt(sender string) (time.Time, bool) {
	if st := metaStop(r, sender); st != nil {
		return st.MetaStopAt, true
	}
	return time.Time{}, false
}

// metaStop returns the Meta opt-out record in force that a check from sender
// reports: the checking sender's own (when it has one; a check that names no
// sender takes any), else the latest of any other sender's, else nil.
func metaStop(rel *Relationship, sender string) *SenderState {
	var own, other *SenderState
	for i := range rel.states() {
		switch st := rel.stateAt(i); {
		case !st.optedOut():
		case sender == "" || st.Sender == sender:
			if own == nil || st.MetaStopAt.After(own.MetaStopAt) {
				own = st
			}
		case other == nil || st.MetaStopAt.After(other.MetaStopAt):
			other = st
		}
	}
	if own != nil {
		return own
	}
	return other
}

// OwnOptedOut reports whether the business's own opt-out is in force: a stop
// not lifted after it (a stop and a lift of the same time: the stop wins).
func (r *Relationship) OwnOptedOut() bool {
	return !r.OwnStopAt.IsZero() && !r.OwnStopAt.Before(r.OwnStartAt)
}

// Consented reports whether consent is recorded and not withdrawn since (a
// stop at the same time withdraws it).
func (r *Relationship) Consented() bool {
	return !r.ConsentAt.IsZero() && r.ConsentAt.After(r.OwnStopAt)
}

// optedOut is OPTED_OUT, from Meta's record (any sender's: it blocks every sender
// of the business), the business's own, or the suppression entry left by a
// forgotten opt-out. It predicts 131050 only when Meta's record in force is the
// checking sender's, or the check names no sender: Meta delivers to a user who
// opted out only of this business's list, and (as BSPs document it) from a
// number the user did not stop.
func optedOut(in *Input, h *hit) bool {
	if in.Check.Category != marketing {
		return false
	}
	meta := metaStop(in.Rel, in.Check.Sender)
	if meta == nil && !in.Rel.OwnOptedOut() && !in.Check.Suppressed {
		return false
	}
	*h = hit{rule: sgv1.Rule_RULE_OPTED_OUT, verdict: deny}
	if meta != nil && (in.Check.Sender == "" || meta.Sender == in.Check.Sender) {
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
