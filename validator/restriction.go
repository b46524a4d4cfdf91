package validator

import (
	"cmp"
	"slices"
	"strings"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Account and sender restrictions (ACCOUNT_RESTRICTED, SENDER_LIMITED) are
// business state, like template state: Meta enforces them on the WhatsApp
// Business Account or on one sending number, so one 131048 stops a whole
// campaign from that number at once. Business.Restrictions holds them; this
// file applies the events that start, escalate and lift them, and says how
// long each lasts. The rules that read them are in account_restricted.go and
// sender_limited.go.
//
// The symmetric rule of DESIGN.md: a failure escalates a backoff only when it
// happened after the previous backoff ended (failures of messages in flight
// during a backoff do not), and a success lifts a restriction only when its
// message was *sent* after the restriction began (deliveries of messages in
// flight do not). A success whose send time is unknown (Send.Inferred) lifts
// nothing. A failure dated at or before the last lift is old news: it does not
// bring the restriction back.

// RestrictionKind says what Meta restricted. The values are stored (codec):
// never renumber them.
type RestrictionKind uint8

const (
	// RestrictionNone is the zero value: no restriction.
	RestrictionNone RestrictionKind = iota
	// SenderThroughput is 130429: the number's Cloud API throughput was reached.
	SenderThroughput
	// SenderSpam is 131048: the number's spam rate limit (earlier messages were
	// blocked or flagged). Templates only.
	SenderSpam
	// AccountLocked is 131031: the business account is locked. DENY until lifted.
	AccountLocked
	// AccountPolicy is 368: temporarily blocked for policy violations.
	AccountPolicy
	// AccountPayment is 131042: a payment problem. Templates only.
	AccountPayment
	// AccountBusinessInitiated is an account_update ACCOUNT_RESTRICTION of type
	// RESTRICTED_BIZ_INITIATED_MESSAGING: no templates until its expiration.
	AccountBusinessInitiated
	// AccountUserInitiated is an account_update ACCOUNT_RESTRICTION of type
	// RESTRICTED_CUSTOMER_INITIATED_MESSAGING: no replies to users (free-form
	// messages) until its expiration.
	AccountUserInitiated
	// AccountDisabled is an account_update DISABLED_UPDATE with ban state
	// DISABLE: the account is banned. DENY until REINSTATE or a lift.
	AccountDisabled
	// AccountRegion is 130497: Meta restricts the account from messaging users
	// in one country. Its Sender field holds that region (ISO 3166 alpha-2),
	// not a sender; it gives REGION_BLOCKED (DENY, every category) for
	// recipients of that region until a DELIVERED to the region of a message
	// sent after it, or ClearRestriction naming the region.
	AccountRegion
	numRestrictionKinds
)

// Valid reports whether k is a known kind (not RestrictionNone).
func (k RestrictionKind) Valid() bool { return k > RestrictionNone && k < numRestrictionKinds }

// kindInfo is what a kind means.
type kindInfo struct {
	code    int32 // the Meta error it predicts
	sender  bool  // a sender's (SENDER_LIMITED) rather than the account's
	deny    bool  // DENY until lifted, rather than DEFER for a backoff
	applies func(sgv1.Category) bool
	steps   []time.Duration // the backoff of the n-th consecutive error: steps[min(n, len)-1]
}

func everyCategory(sgv1.Category) bool     { return true }
func serviceCategory(c sgv1.Category) bool { return c == service }

// throughputSteps is 130429's backoff: 1 s doubling to 60 s.
var throughputSteps = []time.Duration{
	time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute,
}

// hourSteps is 131048's and 131042's backoff: 1 h, 6 h, 24 h.
var hourSteps = []time.Duration{time.Hour, 6 * time.Hour, day}

// policySteps is 368's backoff: 24 h, 72 h, 7 d; also the backoff of an
// account_update restriction that gives no expiration.
var policySteps = []time.Duration{day, 72 * time.Hour, week}

var kinds = [numRestrictionKinds]kindInfo{
	SenderThroughput:         {code: 130429, sender: true, applies: everyCategory, steps: throughputSteps},
	SenderSpam:               {code: 131048, sender: true, applies: isTemplate, steps: hourSteps},
	AccountLocked:            {code: 131031, deny: true, applies: everyCategory},
	AccountPolicy:            {code: 368, applies: everyCategory, steps: policySteps},
	AccountPayment:           {code: 131042, applies: isTemplate, steps: hourSteps},
	AccountBusinessInitiated: {code: 368, applies: isTemplate, steps: policySteps},
	AccountUserInitiated:     {code: 368, applies: serviceCategory, steps: policySteps},
	AccountDisabled:          {code: 368, deny: true, applies: everyCategory},
	AccountRegion:            {code: 130497, deny: true, applies: everyCategory},
}

// RestrictionKindOf is the kind a FAILED report's error code starts, or
// RestrictionNone.
func RestrictionKindOf(code int32) RestrictionKind {
	switch code {
	case 130429:
		return SenderThroughput
	case 131048:
		return SenderSpam
	case 131031:
		return AccountLocked
	case 368:
		return AccountPolicy
	case 131042:
		return AccountPayment
	case 130497:
		return AccountRegion
	}
	return RestrictionNone
}

// ByRegion reports whether the kind is kept per region (its Sender field
// holds the region): AccountRegion.
func (k RestrictionKind) ByRegion() bool { return k == AccountRegion }

// Code is the Meta error code the kind predicts.
func (k RestrictionKind) Code() int32 { return kinds[k].code }

// OfSender reports whether the kind is a sender's (SENDER_LIMITED) rather than
// the account's (ACCOUNT_RESTRICTED).
func (k RestrictionKind) OfSender() bool { return kinds[k].sender }

// Rule is the rule the kind gives.
func (k RestrictionKind) Rule() sgv1.Rule {
	if k.ByRegion() {
		return sgv1.Rule_RULE_REGION_BLOCKED
	}
	if k.OfSender() {
		return sgv1.Rule_RULE_SENDER_LIMITED
	}
	return sgv1.Rule_RULE_ACCOUNT_RESTRICTED
}

// Verdict is DENY for a lock or a ban, DEFER for a backoff.
func (k RestrictionKind) Verdict() sgv1.Verdict {
	if kinds[k].deny {
		return deny
	}
	return deferV
}

// Applies reports whether a send of category c is restricted by the kind.
func (k RestrictionKind) Applies(c sgv1.Category) bool { return kinds[k].applies(c) }

// step is the backoff of the streak-th consecutive error (0 for a DENY kind).
func (k RestrictionKind) step(streak int) time.Duration {
	s := kinds[k].steps
	if len(s) == 0 || streak <= 0 {
		return 0
	}
	return s[min(streak, len(s))-1]
}

// MaxRestrictions bounds Business.Restrictions: the account's kinds and the
// sender kinds of some hundred senders. Past it, the restrictions that ended
// longest ago are dropped first.
const MaxRestrictions = 256

// RestrictionMemory is how long a restriction is remembered once it ended or was
// lifted: a failure within it escalates (or, before the lift, is old news);
// after it, the next failure starts over. Meta judges a number's quality over
// the last 7 days.
const RestrictionMemory = week

// Restriction is one account or sender restriction of a business.
type Restriction struct {
	Kind RestrictionKind
	// Sender is the sending number (phone_number_id) of a sender kind; "" is the
	// implicit sender (a report that named none, of a business with several or
	// no known senders), whose restriction applies to every sender. Always ""
	// for the account's kinds.
	Sender string
	// At is when the error (or webhook) that started or last escalated it
	// happened; Streak counts consecutive escalations, 0 once lifted.
	At     time.Time
	Streak int
	// Ends is the end Meta gave (an account_update expiration); zero: the
	// backoff of the kind's table.
	Ends time.Time
	// LiftedAt is the latest lift (a success sent after At, ClearRestriction, a
	// webhook saying it ended); an error at or before it does not restart it.
	LiftedAt time.Time
}

// Region is the region of an AccountRegion restriction ("" for other kinds).
func (r Restriction) Region() string {
	if r.Kind.ByRegion() {
		return r.Sender
	}
	return ""
}

// End is when the restriction stops applying: the end Meta gave, or At plus the
// streak's backoff; the zero time for one that lasts until lifted (a DENY
// kind), or that is not in force.
func (r Restriction) End() time.Time {
	switch {
	case r.Streak <= 0:
		return time.Time{}
	case !r.Ends.IsZero():
		return r.Ends
	case kinds[r.Kind].deny:
		return time.Time{}
	}
	return r.At.Add(r.Kind.step(r.Streak))
}

// Active reports whether the restriction is in force at t.
func (r Restriction) Active(t time.Time) bool {
	if r.Streak <= 0 {
		return false
	}
	end := r.End()
	return end.IsZero() || t.Before(end)
}

// Step is the backoff of the restriction's current streak (zero for a DENY
// kind or an end Meta gave).
func (r Restriction) Step() time.Duration {
	if !r.Ends.IsZero() {
		return 0
	}
	return r.Kind.step(r.Streak)
}

// Concerns reports whether the restriction applies to sends from sender: the
// account's apply to every sender, a sender's to that sender, the implicit
// sender's to every sender, and a check that names no sender ("") is judged
// against every sender.
func (r Restriction) Concerns(sender string) bool {
	return r.Kind.ByRegion() || !r.Kind.OfSender() || sender == "" || r.Sender == "" || r.Sender == sender
}

// forgotten reports whether the restriction no longer matters at now: not in
// force, and ended (or lifted) more than RestrictionMemory ago.
func (r Restriction) forgotten(now time.Time) bool {
	if r.Active(now) {
		return false
	}
	last := maxTime(r.LiftedAt, r.End())
	return !now.Before(last.Add(RestrictionMemory))
}

// RestrictionFailure is a failure (or an account_update webhook) that starts or
// escalates a restriction.
type RestrictionFailure struct {
	Kind   RestrictionKind
	Sender string // for a sender kind: the sender it is attributed to ("" the implicit one); for AccountRegion the region
	At     time.Time
	// SentAt is when the failed message was sent, zero when unknown (a webhook,
	// a failure of a send recorded from statuses only).
	SentAt time.Time
	// Ends is the end Meta gave (account_update's expiration); zero for none.
	Ends time.Time
}

// evidence is the time a failure speaks for: its message's send time when
// known (a message sent during a backoff and failing after it says nothing
// about the time after), else the failure's own time.
func (f *RestrictionFailure) evidence() time.Time {
	if !f.SentAt.IsZero() && f.SentAt.Before(f.At) {
		return f.SentAt
	}
	return f.At
}

// RestrictionSuccess is a SENT or DELIVERED (READ, PLAYED) status from Sender of
// a message of Category that was sent at SentAt; At is the status's time.
type RestrictionSuccess struct {
	Sender   string
	Category sgv1.Category
	SentAt   time.Time
	At       time.Time
	// Delivered is set for a delivery (DELIVERED, READ, PLAYED), not a SENT;
	// Region is the recipient's region. Only a delivery to its region lifts
	// an AccountRegion restriction.
	Delivered bool
	Region    string
}

// ApplyRestrictionFailure applies a failure to the business's restrictions and
// reports whether it changed them. The first failure starts the restriction (it
// began at the failure's time); a later one escalates it only when its message
// was sent (when the send time is unknown: it failed) once the backoff was
// over; a failure of a message sent at or before the last lift, an older one,
// and a repeat of a DENY kind change nothing (an end Meta gives later than the
// known one extends it).
func ApplyRestrictionFailure(b *Business, f RestrictionFailure) bool {
	if !f.Kind.Valid() || f.At.IsZero() || f.Kind.ByRegion() && f.Sender == "" {
		return false
	}
	if !f.Kind.OfSender() && !f.Kind.ByRegion() {
		f.Sender = ""
	}
	i, found := findRestriction(b.Restrictions, f.Kind, f.Sender)
	cur := Restriction{Kind: f.Kind, Sender: f.Sender}
	if found {
		cur = b.Restrictions[i]
	}
	next, ok := failed(cur, f)
	if !ok {
		return false
	}
	if found {
		b.Restrictions = slices.Clone(b.Restrictions)
		b.Restrictions[i] = next
	} else {
		b.Restrictions = slices.Insert(slices.Clone(b.Restrictions), i, next)
	}
	pruneRestrictions(b, f.At)
	return true
}

// RestrictionFailureChanges reports whether ApplyRestrictionFailure(b, f) would
// change b, so a caller can skip writing the business record.
func RestrictionFailureChanges(b *Business, f RestrictionFailure) bool {
	if !f.Kind.Valid() || f.At.IsZero() || f.Kind.ByRegion() && f.Sender == "" {
		return false
	}
	if !f.Kind.OfSender() && !f.Kind.ByRegion() {
		f.Sender = ""
	}
	cur := Restriction{Kind: f.Kind, Sender: f.Sender}
	if i, found := findRestriction(b.Restrictions, f.Kind, f.Sender); found {
		cur = b.Restrictions[i]
	}
	_, ok := failed(cur, f)
	return ok
}

// failed is r after failure f, and whether it changed.
func failed(r Restriction, f RestrictionFailure) (Restriction, bool) {
	if !f.evidence().After(r.LiftedAt) {
		return r, false // old news: a lift came after it
	}
	if !f.Ends.IsZero() && !f.Ends.After(f.At) {
		return r, false // Meta says it has already ended
	}
	if r.Streak <= 0 {
		r.Streak, r.At, r.Ends = 1, f.At, f.Ends
		return r, true
	}
	if !f.Ends.IsZero() {
		// An end Meta gave: the latest one stands.
		if !f.Ends.After(r.Ends) {
			return r, false
		}
		r.Ends = f.Ends
		if f.At.After(r.At) {
			r.At = f.At
		}
		return r, true
	}
	end := r.End()
	if end.IsZero() || f.evidence().Before(end) {
		return r, false // a DENY in force; or older, or in flight during the backoff
	}
	r.Streak, r.At, r.Ends = r.Streak+1, f.At, time.Time{}
	return r, true
}

// ApplyRestrictionSuccess lifts every restriction in force that the success
// proves over: one that concerns its sender (a success whose sender is unknown,
// "", proves only the account's and the implicit sender's), that applies to its
// category (a success of unknown category proves only kinds that apply to
// every send), and that began before the message was sent. The lift is dated at
// the message's send time: a failure of a message sent before it is old news,
// one sent after it is new. It returns the restrictions it lifted, as they were.
func ApplyRestrictionSuccess(b *Business, s RestrictionSuccess) []Restriction {
	var lifted []Restriction
	for i := range b.Restrictions {
		if !lifts(&b.Restrictions[i], s) {
			continue
		}
		if lifted == nil {
			b.Restrictions = slices.Clone(b.Restrictions)
		}
		r := &b.Restrictions[i]
		lifted = append(lifted, *r)
		r.Streak, r.Ends, r.LiftedAt = 0, time.Time{}, maxTime(r.LiftedAt, s.SentAt)
	}
	if lifted != nil {
		pruneRestrictions(b, s.At)
	}
	return lifted
}

// RestrictionSuccessChanges reports whether ApplyRestrictionSuccess(b, s) would
// change b.
func RestrictionSuccessChanges(b *Business, s RestrictionSuccess) bool {
	for i := range b.Restrictions {
		if lifts(&b.Restrictions[i], s) {
			return true
		}
	}
	return false
}

// lifts reports whether success s lifts r (see ApplyRestrictionSuccess).
func lifts(r *Restriction, s RestrictionSuccess) bool {
	if r.Streak <= 0 || s.SentAt.IsZero() || !s.SentAt.After(r.At) {
		return false
	}
	if r.Kind.ByRegion() {
		return s.Delivered && s.Region != "" && strings.EqualFold(s.Region, r.Sender)
	}
	if r.Kind.OfSender() && r.Sender != "" && r.Sender != s.Sender {
		return false
	}
	if s.Category == sgv1.Category_CATEGORY_UNSPECIFIED {
		return kinds[r.Kind].applies(sgv1.Category_CATEGORY_MARKETING) && kinds[r.Kind].applies(service)
	}
	return r.Kind.Applies(s.Category)
}

// ClearRestrictions lifts, at `at`, every restriction that match selects and
// that is in force at `at` (an operator's ClearRestriction), and returns them as
// they were. A failure dated at or before `at` does not bring them back.
func ClearRestrictions(b *Business, match func(*Restriction) bool, at time.Time) []Restriction {
	var cleared []Restriction
	for i := range b.Restrictions {
		r := &b.Restrictions[i]
		if !r.Active(at) || !match(r) {
			continue
		}
		if cleared == nil {
			b.Restrictions = slices.Clone(b.Restrictions)
			r = &b.Restrictions[i]
		}
		cleared = append(cleared, *r)
		r.Streak, r.Ends, r.LiftedAt = 0, time.Time{}, maxTime(r.LiftedAt, at)
	}
	return cleared
}

// LiftRestriction applies a webhook saying a restriction of the account ended
// (an account_update REINSTATE) at `at`: like ClearRestrictions for one kind,
// except that a webhook older than the restriction's start lifts nothing. It
// reports whether anything changed.
func LiftRestriction(b *Business, kind RestrictionKind, at time.Time) bool {
	i, found := findRestriction(b.Restrictions, kind, "")
	if !found || kind.OfSender() {
		return false
	}
	r := b.Restrictions[i]
	if r.Streak <= 0 || !at.After(r.At) {
		return false
	}
	r.Streak, r.Ends, r.LiftedAt = 0, time.Time{}, maxTime(r.LiftedAt, at)
	b.Restrictions = slices.Clone(b.Restrictions)
	b.Restrictions[i] = r
	return true
}

// findRestriction is the index of (kind, sender) in the sorted list, or where
// it would go.
func findRestriction(rs []Restriction, kind RestrictionKind, sender string) (int, bool) {
	return slices.BinarySearchFunc(rs, Restriction{Kind: kind, Sender: sender}, compareRestrictions)
}

// compareRestrictions orders Business.Restrictions: by kind, then sender.
func compareRestrictions(a, b Restriction) int {
	if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	return cmp.Compare(a.Sender, b.Sender)
}

// pruneRestrictions drops the restrictions forgotten at now, and the ones that
// ended longest ago past MaxRestrictions (then the oldest in force: a business
// flooding its own record with senders loses its oldest facts, never its newest).
func pruneRestrictions(b *Business, now time.Time) {
	b.Restrictions = slices.DeleteFunc(b.Restrictions, func(r Restriction) bool { return r.forgotten(now) })
	for len(b.Restrictions) > MaxRestrictions {
		oldest := -1
		for i := range b.Restrictions {
			r := &b.Restrictions[i]
			if oldest < 0 || evictBefore(r, &b.Restrictions[oldest], now) {
				oldest = i
			}
		}
		b.Restrictions = slices.Delete(b.Restrictions, oldest, oldest+1)
	}
	if len(b.Restrictions) == 0 {
		b.Restrictions = nil
	}
}

// evictBefore reports whether a goes before b when the list is over its bound:
// restrictions not in force first, then the one that started earliest.
func evictBefore(a, b *Restriction, now time.Time) bool {
	if aa, ba := a.Active(now), b.Active(now); aa != ba {
		return !aa
	}
	return maxTime(a.At, a.LiftedAt).Before(maxTime(b.At, b.LiftedAt))
}

// ActiveRestrictions returns the restrictions in force at t that concern sender
// (every sender when ""), in stored order.
func ActiveRestrictions(b *Business, sender string, t time.Time) []Restriction {
	var out []Restriction
	for i := range b.Restrictions {
		r := &b.Restrictions[i]
		if r.Active(t) && r.Concerns(sender) {
			out = append(out, *r)
		}
	}
	return out
}

// SentTime returns when the send that a report names (by ref, else by message
// id) was sent, and its category, once ApplyResult has bound the report to it.
// ok is false when no send matches or its send time is not known (Inferred):
// the time of a reservation, or of the earliest SENT report, is a send time;
// the time of a delivery or failure status is not (it only bounds it).
func SentTime(rel *Relationship, ref, messageID string) (at time.Time, cat sgv1.Category, ok bool) {
	i := FindSend(rel, ref, messageID)
	if i < 0 || rel.Sends[i].Inferred {
		return time.Time{}, sgv1.Category_CATEGORY_UNSPECIFIED, false
	}
	return rel.Sends[i].At, rel.Sends[i].Category, true
}
