package validator

import (
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// ACCOUNT_RESTRICTED: Meta restricted the business's WhatsApp Business Account
// (131031 locked: DENY; 368 policy block and 131042 payment problem: DEFER with
// a growing backoff; an account_update restriction or ban). It reads the
// account's restrictions in Business.Restrictions (restriction.go) and applies
// to every sender of the account, for the categories each kind restricts
// (131042 and a business-initiated restriction: templates only).

func accountRestricted(in *Input, t time.Time, h *hit) bool {
	return restricted(in, t, h, false)
}

// restricted finds the strongest restriction of one level (the account's, or
// the senders') in force at t for the check: DENY over DEFER, then the latest
// end. h.n is its index in in.Business.Restrictions, for the sentence.
func restricted(in *Input, t time.Time, h *hit, sender bool) bool {
	rs := in.Business.Restrictions
	best := -1
	for i := range rs {
		r := &rs[i]
		if r.Kind.OfSender() != sender || r.Kind.ByRegion() || !r.Kind.Applies(in.Check.Category) ||
			!r.Concerns(in.Check.Sender) || !r.Active(t) {
			continue
		}
		if best < 0 || stronger(r, &rs[best]) {
			best = i
		}
	}
	if best < 0 {
		return false
	}
	r := &rs[best]
	*h = hit{rule: r.Kind.Rule(), verdict: r.Kind.Verdict(), code: r.Kind.Code(), until: r.End(),
		at: r.At, n: best, d: r.Step()}
	return true
}

// stronger reports whether restriction a decides over b: a DENY over a DEFER,
// then the one that ends later.
func stronger(a, b *Restriction) bool {
	if av, bv := a.Kind.Verdict(), b.Kind.Verdict(); av != bv {
		return av == sgv1.Verdict_VERDICT_DENY
	}
	return a.End().After(b.End())
}
