package validator

import (
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// All times are UTC; the zero time means "never".

// The send history (Relationship.Sends) keeps what the policy's rules need, within
// their windows (see TrimSends):
//   - the newest max(BaseSends, 2 x PairBurst) sends of any kind: the pair rate's
//     GCRA is judged from send times, so it holds a burst back only with a burst's
//     worth of sends in the history, and the sustained rate after a full burst
//     only over the sends it still has (exact for a burst and as many sends again;
//     see gcraFree);
//   - and, older than those, the newest sends that count toward the frequency caps
//     (marketing, not failed), up to the largest cap's count, so that a cap is
//     enforced however many sends of other kinds follow.
//
// MaxCapCount and MaxPairBurst bound a cap's count and the pair burst (SetPolicy
// and the config file refuse more), so no history holds more than MaxSends. They
// cover every cap a sender could mean for one person (five a week for a year) and
// bursts far beyond Meta's own 45, while keeping the record of the busiest number
// to some tens of KB (decoded on every check of that number) and the rules linear
// in it.
const (
	BaseSends    = 64
	MaxCapCount  = 256
	MaxPairBurst = 128
	MaxSends     = 2*MaxPairBurst + MaxCapCount
)

// MaxEvents bounds Relationship.Events (the recent history shown by GetContact).
const MaxEvents = 20

// Send is one send to a recipient recorded by a reservation or a SENT report.
type Send struct {
	At        time.Time
	Ref       string // the client's message_ref, "" if none
	MessageID string // Meta's wamid, once a report binds it
	Category  sgv1.Category
	Template  string
	// Language is the template's language ("" unknown).
	Language   string
	CampaignID string
	// Failed is set by a FAILED report for this send: it no longer counts toward the
	// business's own frequency caps (it still counted for pair rate: Meta saw it).
	Failed bool
	// Delivered is set by a delivered/read/played report. A delivered send always
	// counts, even when another device reported it failed (multi-device).
	Delivered bool
	// Reached is set when this send reached the user outside the service window
	// (counts toward the messaging limit).
	Reached bool
	// Slot is set when this send's reservation took a slot of the business's
	// messaging limit (counted in Business.Reached). The slot is held while
	// the send has not failed: a FAILED report gives it back, and a delivery
	// reported after that (multi-device) takes it again (see SlotHeld).
	Slot bool
	// Sender is the sending number ("" the implicit sender): the pair rate and
	// the free entry point are per sender.
	Sender string
	// Inferred is set when At is not a known send time: the send was recorded
	// from a delivery or failure status (whose time only bounds the send time
	// from above), and no reservation or SENT report has named it since. Such a
	// send never lifts a restriction (see SentTime).
	Inferred bool
}

// Event is one entry of a recipient's recent history, for humans (GetContact).
type Event struct {
	At   time.Time
	Text string
}

// NumberFacts are the facts about a number that Meta holds across all businesses
// (ECOSYSTEM_LIMIT, EXPERIMENT, UNDELIVERABLE). With share_number_signals they are
// stored once per number; without it, per relationship (Relationship.Local).
type NumberFacts struct {
	// EcoAt is the time of the 131049 that started or last escalated the cooldown;
	// EcoStreak counts consecutive escalations (0 = no cooldown). The cooldown is
	// policy.EcosystemCooldown * 2^(EcoStreak-1), capped at EcosystemCooldownMax.
	EcoAt     time.Time
	EcoStreak int
	// ExperimentAt is the last 130472; the flag lasts policy.ExperimentTTL.
	ExperimentAt time.Time
	// UndeliverableAt is the 131026 that started or last escalated the backoff;
	// UndeliverableStreak counts consecutive escalations (0 = none). The backoff is
	// policy.UndeliverableBackoff[min(streak, len)-1].
	UndeliverableAt     time.Time
	UndeliverableStreak int
	// LastDeliveredAt is the latest delivered/read/played status of any message;
	// LastMarketingDeliveredAt the latest of a marketing message.
	LastDeliveredAt          time.Time
	LastMarketingDeliveredAt time.Time
	// WaID is the spelling Meta used for the number (recipient_id, wa_id, from) when
	// it differs from the canonical E.164 digits.
	WaID string
}

// SenderState is what a relationship holds per sender (the business phone
// number, Meta's phone_number_id): Meta keeps the customer service window, the
// free entry point window, the pair rate and its marketing opt-out record per
// business phone number (DESIGN.md, Who is who).
type SenderState struct {
	// Sender is the phone_number_id; "" is the implicit sender: events that
	// named no sender when the business had no single known one, and
	// everything recorded before sendguard kept senders apart. The implicit
	// sender's state concerns every sender (see concerns).
	Sender string
	// Meta's opt-out record: 131050 or a user_preferences stop at MetaStopAt;
	// lifted by Meta's evidence from this sender at MetaResumeAt (a
	// user_preferences resume, or the send time of a delivered marketing
	// message sent after the stop). In force when MetaStopAt is set and not
	// before MetaResumeAt: a stop and a lift of the same time, the stop wins.
	MetaStopAt   time.Time
	MetaResumeAt time.Time
	// The customer service window: opened by the last inbound message or call;
	// closed early by a 131047 at WindowClosedAt (after LastInboundAt).
	LastInboundAt  time.Time
	WindowClosedAt time.Time
	// The free entry point: ReferralAt is the latest inbound message that came
	// from a click-to-WhatsApp ad or a Page button (an ad referral);
	// FreeEntryAt is the business's first answer within FreeEntryReply of it,
	// which opens a FreeEntryWindow-long window (see freeEntryOpen).
	ReferralAt  time.Time
	FreeEntryAt time.Time
	// Pair rate (GCRA): PairTAT is the theoretical arrival time of the next send.
	PairTAT time.Time
	// Pair rate after 131056: PairStreak consecutive 131056s, the last at PairLimitedAt;
	// blocked until PairLimitedAt + 4^PairStreak seconds. Reset by a delivery.
	PairStreak    int
	PairLimitedAt time.Time
}

// MaxSenders bounds Relationship.Senders. A business has a handful of numbers
// (Meta starts a WABA at 2 and rarely allows more than 20); the state of a
// sender beyond the bound is kept as the implicit sender's, which concerns
// every sender, so nothing learned is lost, only attributed more widely.
const MaxSenders = 32

// Relationship is what one business knows about one recipient.
type Relationship struct {
	// SenderState is the implicit sender's state (Sender ""). Embedded, so a
	// relationship whose events never name a sender reads as it did before
	// senders were kept apart, and encodes as compactly.
	SenderState
	// Senders are the named senders' states, sorted by Sender, at most
	// MaxSenders; nil while no event named a sender.
	Senders []SenderState
	// The business's own opt-out (an opt-out keyword or button, SetOptOut(true))
	// and its lift (an opt-in keyword, SetOptOut(false)). The opt-out is in
	// force when OwnStopAt is set and not before OwnStartAt: a stop and a lift
	// of the same time, the stop wins.
	OwnStopAt      time.Time
	OwnStopReason  string
	OwnStartAt     time.Time
	OwnStartReason string
	// Consent (for NO_CONSENT and require_opt_in), kept apart from the lift:
	// recorded by SetOptOut(false), and by an opt-in keyword only with
	// keyword_opt_in_is_consent. In force when ConsentAt is after OwnStopAt (a
	// later or simultaneous stop withdraws it).
	ConsentAt     time.Time
	ConsentReason string
	// Sends are the recent sends, oldest first, at most MaxSends (see TrimSends).
	Sends []Send
	// UserID is the business-scoped user ID linked to this number; WaID the learned
	// WhatsApp-ID spelling (also kept in NumberFacts when shared).
	UserID string
	WaID   string
	// Local holds the number-wide facts when the business does not share them.
	Local NumberFacts
	// Events are the recent events, oldest first, at most MaxEvents.
	Events []Event
}

// TemplateState is one template of one business in one language.
type TemplateState struct {
	// Language is the template's language ("pt_BR"); "" is a state known
	// without one (a report that named none, a record written before languages
	// were kept), which applies to every language of the template.
	Language string
	// PausedAt is the last 132015 (or PAUSED webhook); Pauses counts them (the
	// pause lasts 3 h the first time, 6 h after). DisabledAt is the last 132016
	// (or DISABLED webhook). OKAt is the latest SENT or DELIVERED report of the
	// template: it lifts a disable that came before it.
	PausedAt   time.Time
	Pauses     int
	DisabledAt time.Time
	OKAt       time.Time
	// LiftedAt is Meta's latest APPROVED or REINSTATED webhook: it lifts a pause
	// and a disable before it. BlockedLast is set when the last pause or
	// disable has LiftedAt's time and arrived after the approval (events of
	// equal time apply in arrival order).
	LiftedAt    time.Time
	BlockedLast bool
	// MarkedAt is when Meta started treating the template as marketing (a
	// marketing pricing.category, a category update to marketing; it may lie
	// ahead: an impending update); ClearedAt the latest completed category
	// update to another category. Marked from MarkedAt while MarkedAt is after
	// ClearedAt.
	MarkedAt  time.Time
	ClearedAt time.Time
}

// ReachBucket counts users first reached (outside the window) in one minute.
type ReachBucket struct {
	Minute int64 // Unix minutes
	Count  int
}

// Business is the business-level state that rules read.
type Business struct {
	// Templates are the templates' states by name, each name's languages
	// sorted ("" first).
	Templates map[string][]TemplateState
	// Reached counts, per minute, the unique users reached outside the service window
	// in the last 24 h (the messaging limit); oldest first, trimmed to 24 h.
	Reached []ReachBucket
	// Restrictions are the account's and its senders' restrictions (in force, or
	// remembered for escalation), sorted by kind then sender; at most
	// MaxRestrictions (restriction.go).
	Restrictions []Restriction
	// Tier is the messaging limit Meta last gave the business (its
	// business_capability_update webhook), as of TierAt: 0 unknown, -1
	// unlimited. Used as the messaging limit when the policy sets none.
	Tier   int
	TierAt time.Time
}
