package validator

import (
	"slices"
	"time"
)

// MergeRelationship folds src (a history kept under a bare user ID) into dst,
// keeping the sends that p keeps. It is idempotent: folding the same src twice
// gives the same dst.
func MergeRelationship(dst, src *Relationship, p *Policy) {
	mergeSender(dst.State(""), &src.SenderState)
	for i := range src.Senders {
		mergeSender(dst.State(src.Senders[i].Sender), &src.Senders[i])
	}
	if src.OwnStopAt.After(dst.OwnStopAt) {
		dst.OwnStopAt, dst.OwnStopReason = src.OwnStopAt, src.OwnStopReason
	}
	if src.OwnStartAt.After(dst.OwnStartAt) {
		dst.OwnStartAt, dst.OwnStartReason = src.OwnStartAt, src.OwnStartReason
	}
	if src.ConsentAt.After(dst.ConsentAt) {
		dst.ConsentAt, dst.ConsentReason = src.ConsentAt, src.ConsentReason
	}
	if dst.WaID == "" {
		dst.WaID = src.WaID
	}
	for _, snd := range src.Sends {
		if snd.Ref != "" || snd.MessageID != "" {
			if FindSend(dst, snd.Ref, snd.MessageID) >= 0 {
				continue
			}
		} else if slices.Contains(dst.Sends, snd) {
			continue
		}
		dst.Sends = append(dst.Sends, snd)
	}
	slices.SortStableFunc(dst.Sends, func(a, b Send) int { return a.At.Compare(b.At) })
	TrimSends(dst, p)
	for _, e := range src.Events {
		if !slices.Contains(dst.Events, e) {
			dst.Events = append(dst.Events, e)
		}
	}
	slices.SortStableFunc(dst.Events, func(a, b Event) int { return a.At.Compare(b.At) })
	if len(dst.Events) > MaxEvents {
		dst.Events = dst.Events[len(dst.Events)-MaxEvents:]
	}
}

// mergeSender folds one sender's state src into dst (the same sender's),
// keeping for each fact the later record.
func mergeSender(dst, src *SenderState) {
	later := func(d *time.Time, s time.Time) {
		if s.After(*d) {
			*d = s
		}
	}
	later(&dst.MetaStopAt, src.MetaStopAt)
	later(&dst.MetaResumeAt, src.MetaResumeAt)
	later(&dst.LastInboundAt, src.LastInboundAt)
	later(&dst.WindowClosedAt, src.WindowClosedAt)
	later(&dst.ReferralAt, src.ReferralAt)
	if src.FreeEntryAt.After(dst.FreeEntryAt) {
		dst.FreeEntryAt = src.FreeEntryAt
	}
	later(&dst.PairTAT, src.PairTAT)
	if src.PairLimitedAt.After(dst.PairLimitedAt) {
		dst.PairLimitedAt, dst.PairStreak = src.PairLimitedAt, src.PairStreak
	}
}

// MergeFacts folds src into dst, keeping for each fact the later record.
func MergeFacts(dst, src *NumberFacts) {
	if src.EcoAt.After(dst.EcoAt) {
		dst.EcoAt, dst.EcoStreak = src.EcoAt, src.EcoStreak
	}
	if src.ExperimentAt.After(dst.ExperimentAt) {
		dst.ExperimentAt = src.ExperimentAt
	}
	if src.UndeliverableAt.After(dst.UndeliverableAt) {
		dst.UndeliverableAt, dst.UndeliverableStreak = src.UndeliverableAt, src.UndeliverableStreak
	}
	if src.LastDeliveredAt.After(dst.LastDeliveredAt) {
		dst.LastDeliveredAt = src.LastDeliveredAt
	}
	if src.LastMarketingDeliveredAt.After(dst.LastMarketingDeliveredAt) {
		dst.LastMarketingDeliveredAt = src.LastMarketingDeliveredAt
	}
	if dst.WaID == "" {
		dst.WaID = src.WaID
	}
}
