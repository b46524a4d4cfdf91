package validator

import "time"

// SENDER_LIMITED: Meta limited a sending number (130429 throughput reached,
// 131048 spam rate limit; 131048 restricts templates only). DEFER with a growing
// backoff (restriction.go). A check from a sender reads that sender's limits and
// those of the implicit sender (a limit reported without a sender); a check
// without a sender is judged against every sender of the business: any
// sender's limit applies.

func senderLimited(in *Input, t time.Time, h *hit) bool {
	return restricted(in, t, h, true)
}
