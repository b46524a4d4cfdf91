package validator

import "time"

// Meta's messaging tier (Business.Tier): the limit its
// business_capability_update webhook gives the business portfolio, used as the
// messaging limit when neither the policy nor the deployment sets one (the
// server decides; MESSAGING_LIMIT reads Policy.MessagingLimit).

// TierChanges reports whether ApplyTier(b, tier, at) would change b.
func TierChanges(b *Business, tier int, at time.Time) bool {
	return tier != 0 && tier != b.Tier && (b.TierAt.IsZero() || at.After(b.TierAt))
}

// ApplyTier records Meta's messaging limit for the business (its
// business_capability_update webhook: -1 unlimited) as of at; an older one
// never overwrites a newer one.
func ApplyTier(b *Business, tier int, at time.Time) {
	if TierChanges(b, tier, at) {
		b.Tier, b.TierAt = tier, at
	}
}
