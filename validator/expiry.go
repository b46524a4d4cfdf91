package validator

import "time"

// How long stored state matters. Storage uses these times as TTLs.

// lateEvents is how late a report can still arrive: Meta retries webhooks for 7
// days (and the server remembers event keys for 8). Evidence that an older report
// must not undo (a delivery, a resume) is kept that long.
const lateEvents = 8 * day

// epoch is what ExpiresAt returns for a record that holds nothing worth keeping:
// a time long past, never the zero time (which means "forever").
func epoch() time.Time { return time.Unix(0, 0).UTC() }

// ExpiresAt is the latest time anything in the relationship still matters (its
// window, backoffs, pair-rate bucket and sends, the number-wide facts it holds when
// the business does not share them, and a lifted Meta opt-out's evidence against
// late reports), or the zero time when it must be kept forever: an opt-out (Meta's
// or the business's own) or a consent in force. A relationship that holds nothing
// returns the Unix epoch.
func (r *Relationship) ExpiresAt(p *Policy) time.Time {
	if r.MetaOptedOut() || r.OwnOptedOut() || r.Consented() {
		return time.Time{}
	}
	e := r.SenderState.expiresAt(p)
	for i := range r.Senders {
		e = maxTime(e, r.Senders[i].expiresAt(p))
	}
	if len(r.Sends) > 0 {
		w := historyWindow(p)
		for i := range r.Sends {
			e = maxTime(e, r.Sends[i].At.Add(w))
		}
	}
	return maxTime(e, r.Local.ExpiresAt(p))
}

// expiresAt is the latest time anything in one sender's state still matters: its
// window, a referral still waiting for its answer and the free entry point
// window, its pair-rate bucket and backoff, and a lifted Meta opt-out's evidence
// against late reports.
func (st *SenderState) expiresAt(p *Policy) time.Time {
	e := epoch()
	if p.ServiceWindow > 0 && !st.LastInboundAt.IsZero() {
		e = maxTime(e, st.LastInboundAt.Add(p.ServiceWindow))
	}
	if !st.ReferralAt.IsZero() {
		e = maxTime(e, st.ReferralAt.Add(FreeEntryReply+FreeEntryWindow))
	}
	if !st.FreeEntryAt.IsZero() {
		e = maxTime(e, st.FreeEntryAt.Add(FreeEntryWindow))
	}
	e = maxTime(e, st.PairTAT)
	e = maxTime(e, st.limitedUntil())
	if !st.MetaResumeAt.IsZero() {
		e = maxTime(e, st.MetaResumeAt.Add(lateEvents))
	}
	return e
}

// ExpiresAt is the latest time anything in the facts still matters: a cooldown,
// flag or backoff, the streak behind it (kept for as long as the next step of that
// backoff, so that a failure soon after the end escalates and a much later one
// starts over), and deliveries (kept lateEvents, so that an older failure reported
// late does not start a backoff the delivery answered). Never the zero time: facts
// always expire; facts that hold nothing return the Unix epoch.
func (f *NumberFacts) ExpiresAt(p *Policy) time.Time {
	e := epoch()
	if u := f.EcosystemUntil(p); !u.IsZero() {
		e = maxTime(e, u.Add(ecoCooldown(p, f.EcoStreak+1)))
	}
	e = maxTime(e, f.ExperimentUntil(p))
	if u := f.UndeliverableUntil(p); !u.IsZero() {
		e = maxTime(e, u.Add(undeliverableBackoff(p, f.UndeliverableStreak+1)))
	}
	if !f.LastDeliveredAt.IsZero() {
		e = maxTime(e, f.LastDeliveredAt.Add(lateEvents))
	}
	if !f.LastMarketingDeliveredAt.IsZero() {
		e = maxTime(e, f.LastMarketingDeliveredAt.Add(lateEvents))
	}
	return e
}
