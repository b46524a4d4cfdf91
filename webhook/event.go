package webhook

import (
	"strconv"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Kind says what an [Event] reports. The zero value is not a kind.
type Kind uint8

const (
	// KindStatus is a status update of a message the business sent.
	KindStatus Kind = iota + 1
	// KindMessage is a message the user sent to the business.
	KindMessage
	// KindCall is a call the user placed to the business (USER_INITIATED).
	KindCall
	// KindUserPreference is the user stopping or resuming marketing messages.
	KindUserPreference
	// KindAccountRestriction is one restriction of an account_update
	// ACCOUNT_RESTRICTION: Meta restricted the WhatsApp Business Account until
	// an expiration.
	KindAccountRestriction
	// KindAccountBan is an account_update DISABLED_UPDATE: the account was
	// disabled, scheduled to be, or reinstated.
	KindAccountBan
	// KindIdentityChange is a system message: the user changed number
	// (MessageType "user_changed_number") or BSUID ("user_changed_user_id").
	// Phone and UserID are the old identity, NewPhone and NewUserID the new.
	KindIdentityChange
	// KindTemplateStatus is a message_template_status_update: Meta paused,
	// disabled, approved or reinstated a template (TemplateEvent).
	KindTemplateStatus
	// KindTemplateCategory is a template_category_update: a template's
	// category changed (PreviousCategory → NewCategory) or is going to
	// (CorrectCategory from CategoryUpdateAt).
	KindTemplateCategory
	// KindCapability is a business_capability_update: the business's
	// messaging limit (Tier).
	KindCapability
	// KindQuality is a phone_number_quality_update: a sending number's quality
	// or limit changed (QualityEvent).
	KindQuality
)

func (k Kind) String() string {
	switch k {
	case KindStatus:
		return "status"
	case KindMessage:
		return "message"
	case KindCall:
		return "call"
	case KindUserPreference:
		return "user_preference"
	case KindAccountRestriction:
		return "account_restriction"
	case KindAccountBan:
		return "account_ban"
	case KindIdentityChange:
		return "identity_change"
	case KindTemplateStatus:
		return "template_status"
	case KindTemplateCategory:
		return "template_category"
	case KindCapability:
		return "capability"
	case KindQuality:
		return "quality"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Size limits, in bytes. An event whose identifying field is longer is
// skipped and counted as "field_too_long"; a longer descriptive field is
// emptied and counted as "field_dropped:<name>". Nothing is truncated.
const (
	MaxPhoneLen         = 64   // Phone
	MaxUserIDLen        = 140  // UserID, ParentUserID (a BSUID is at most 2+1+4+128 bytes)
	MaxMessageIDLen     = 256  // MessageID (wamid or wacid)
	MaxPhoneNumberIDLen = 128  // PhoneNumberID (it becomes the business_id)
	MaxCallbackDataLen  = 512  // CallbackData (Meta's own limit on biz_opaque_callback_data)
	MaxTextLen          = 4096 // Text
	MaxButtonPayloadLen = 1024 // ButtonPayload (ReportInbound's button_payload limit)
	MaxShortLen         = 256  // Username, MessageType, PreferenceCategory, Restriction, BanState
	MaxErrorTextLen     = 1024 // ErrorTitle, ErrorDetails
)

// MaxEvents is the largest number of events Parse returns for one body, and
// the cap on what it decodes of one body: entries, changes, contacts, and
// items (statuses, messages, calls and user_preferences together). Meta
// batches up to 1,000 statuses per POST; what lies beyond a cap is skipped
// unread and counted as "too_many_events".
const MaxEvents = 10_000

// Event is one event of a webhook body, flattened.
type Event struct {
	Kind Kind
	// PhoneNumberID is value.metadata.phone_number_id: the business number
	// that sent the message or was written to or called. Never empty.
	PhoneNumberID string
	// Timestamp is when Meta says the event happened, in UTC. Zero when the
	// body has none or an unparsable one (the server stamps it then).
	Timestamp time.Time

	// The user. Phone is the number as Meta sends it (digits, no "+"):
	// recipient_id of a status, from of a message or call, wa_id of a
	// preference. UserID is the business-scoped user ID (BSUID), ParentUserID
	// the parent BSUID of linked portfolios, Username the user's WhatsApp
	// username. Phone may be empty (a user with a username whose number Meta
	// withholds); then UserID is set. At least one of the two is set.
	Phone, UserID, ParentUserID, Username string

	// NewPhone and NewUserID are the user's new number (system.wa_id) and
	// new BSUID (system.user_id) of a KindIdentityChange.
	NewPhone, NewUserID string

	// MessageID is the wamid of a status or message, or the wacid of a call.
	// Always set for statuses, messages and calls; empty for preferences.
	MessageID string
	// Status is set for KindStatus.
	Status sgv1.MessageStatus
	// ErrorCode, ErrorTitle and ErrorDetails come from the first entry of
	// errors[] of a failed status (code, title, error_data.details).
	// ErrorCode is 0 if Meta sent none.
	ErrorCode    int32
	ErrorTitle   string
	ErrorDetails string
	// Category is the pricing category of a status (marketing_lite counts as
	// marketing, authentication_international as authentication,
	// referral_conversion as service); unspecified when absent or unknown.
	Category sgv1.Category
	// PricingCategory is the status's pricing.category verbatim
	// ("marketing", "marketing_lite", "utility", ...; "" when absent).
	PricingCategory string
	// CallbackData is the status's biz_opaque_callback_data, which senders
	// set to their message_ref.
	CallbackData string

	// MessageType is messages[].type ("text", "image", "button",
	// "interactive", "reaction", ...) for KindMessage, and the call event
	// ("connect" or "terminate") for KindCall.
	MessageType string
	// Text is what the user wrote: text.body, the button.text of a "button"
	// reply (a template's quick-reply button, such as Meta's marketing
	// opt-out button), the button_reply or list_reply title of an
	// "interactive" reply; empty for every other type.
	Text string
	// ButtonPayload is the button.payload of a "button" reply, or the
	// button_reply id of an "interactive" one: what the business set as the
	// button's payload or id. The server matches keywords against it as
	// against Text.
	ButtonPayload string

	// PreferenceStop is true when the user stopped (value "stop") and false
	// when the user resumed ("resume") the PreferenceCategory, e.g.
	// "marketing_messages".
	PreferenceStop     bool
	PreferenceCategory string
	// Referral is set for a KindMessage that carries Meta's referral object:
	// the user wrote from a click-to-WhatsApp ad or a Page button's post (a
	// free entry point).
	Referral bool

	// WABAID is the WhatsApp Business Account of an account event (entry[].id);
	// such an event has no PhoneNumberID and no user. Its Timestamp is
	// entry[].time.
	WABAID string
	// Restriction is the restriction_type of a KindAccountRestriction (e.g.
	// RESTRICTED_BIZ_INITIATED_MESSAGING); RestrictionEnds its expiration, zero
	// when absent or unreadable (counted as "bad_timestamp").
	Restriction     string
	RestrictionEnds time.Time
	// BanState is the waba_ban_state of a KindAccountBan: DISABLE, REINSTATE or
	// SCHEDULE_FOR_DISABLE.
	BanState string

	// Template and TemplateLanguage name the template of a KindTemplateStatus
	// or KindTemplateCategory (message_template_name, _language; the language
	// may be empty). TemplateEvent is a status update's event (PAUSED,
	// DISABLED, APPROVED, REINSTATED; Parse returns only these), PauseTitle its
	// other_info.title (FIRST_PAUSE, SECOND_PAUSE, UNPAUSE, ...).
	Template, TemplateLanguage string
	TemplateEvent, PauseTitle  string
	// A category update: completed (PreviousCategory → NewCategory), or
	// impending (CorrectCategory, from CategoryUpdateAt; NewCategory is then
	// the current one). Categories are Meta's, upper-case (MARKETING,
	// UTILITY, AUTHENTICATION).
	PreviousCategory, NewCategory, CorrectCategory string
	CategoryUpdateAt                               time.Time
	// Tier is the messaging limit of a KindCapability (-1 unlimited; never
	// 0), or of a KindQuality that carries one (0 when it does not).
	Tier int
	// QualityEvent is a KindQuality's event (FLAGGED, UNFLAGGED, UPGRADE,
	// DOWNGRADE, ONBOARDING, THROUGHPUT_UPGRADE, or "other");
	// DisplayPhoneNumber the number it is about, as displayed (Meta names no
	// phone_number_id); CurrentLimit its current_limit, verbatim.
	QualityEvent, DisplayPhoneNumber, CurrentLimit string
}

// Stats counts what Parse skipped, by reason, so the server can count it in
// its metrics: nothing is dropped silently. Reasons are short lower-case
// tokens from a closed set (see [Reasons]): a reason never holds text from
// the body, so a metric labelled with it cannot grow without bound.
//
// Reasons: unknown_object, missing_field, unknown_field:<field> (<field> one
// of Meta's documented fields that Parse does not read, or "other"), message_echoes, value_errors, type_mismatch,
// missing_phone_number_id, missing_id, missing_recipient, missing_status,
// unknown_status:{none,other}, ignored_status:{deleted,warning},
// call_status, group_status, group_message, system_message,
// business_initiated_call, unknown_call_direction:{none,other},
// unknown_call_event:{none,other}, unknown_preference:{none,other},
// bad_timestamp (the event is kept with a zero time), bad_error_code (kept
// with code 0), field_too_long, bad_field (control characters in an
// identifier), field_dropped:<name> (kept without that field),
// too_many_events; of account_update: account_event:<event> (<event> one of
// the lower-cased events Meta documents that Parse does not read, "none" or
// "other"), empty_restriction_info, missing_restriction_type,
// missing_ban_state, missing_waba_id; of the template, capability and quality
// updates: template_event:<event> (a status event that does not change
// whether a template may be sent, lower-cased, "none" or "other"),
// missing_template_name, category_update:none (neither form), missing_limit,
// quality_event:none.
type Stats struct {
	// Skipped maps a reason to how many items it applied to. Nil when nothing
	// was skipped.
	Skipped map[string]int
}

// Total returns the number of skipped items over all reasons.
func (s Stats) Total() int {
	n := 0
	for _, c := range s.Skipped {
		n += c
	}
	return n
}

// documentedFields are the change fields Meta documents for the
// whatsapp_business_account object (its webhooks reference, 2026) other
// than those Parse reads (messages, calls, user_preferences) or counts
// (smb_message_echoes). A change of one of these is counted as
// "unknown_field:<field>"; any other field as "unknown_field:other".
var documentedFields = []string{
	"account_alerts", "account_review_update", "automatic_events",
	"flows", "history", "message_echoes",
	"message_template_components_update", "message_template_quality_update",
	"partner_solutions", "payment_configuration_update",
	"phone_number_name_update", "security", "smb_app_state_sync",
	"template_correct_category_detection", "tracking_events",
}

// templateEvents are the message_template_status_update events Meta documents
// (its reference, 2026) that do not change whether a template may be sent
// (Parse reads PAUSED, DISABLED, APPROVED and REINSTATED), lower-cased: each
// is counted as "template_event:<event>", any other as "template_event:other".
var templateEvents = []string{
	"archived", "deleted", "flagged", "in_appeal", "limit_exceeded", "locked", "pending",
	"pending_deletion", "rejected", "unarchived", "unlocked",
}

var knownTemplateEvents = func() map[string]bool {
	m := make(map[string]bool, len(templateEvents))
	for _, e := range templateEvents {
		m[e] = true
	}
	return m
}()

// QualityEvents are the phone_number_quality_update events Meta and BSPs
// document; another event is reported as "other".
var QualityEvents = []string{"FLAGGED", "UNFLAGGED", "UPGRADE", "DOWNGRADE", "ONBOARDING", "THROUGHPUT_UPGRADE"}

// knownFields indexes documentedFields.
var knownFields = func() map[string]bool {
	m := make(map[string]bool, len(documentedFields))
	for _, f := range documentedFields {
		m[f] = true
	}
	return m
}()

// accountEvents are the account_update events Meta documents (its reference,
// 2026) other than those Parse reads (ACCOUNT_RESTRICTION, DISABLED_UPDATE),
// lower-cased: an event of one of these is counted as "account_event:<event>",
// any other as "account_event:other".
var accountEvents = []string{
	"account_deleted", "account_violation", "ad_account_linked", "auth_intl_price_eligibility_update",
	"business_primary_location_country_update", "mm_lite_terms_signed", "partner_added",
	"partner_app_installed", "partner_app_uninstalled", "partner_client_certification_status_update",
	"partner_removed", "volume_based_pricing_tier_update", "account_offboarded", "account_reconnected",
}

// knownAccountEvents indexes accountEvents.
var knownAccountEvents = func() map[string]bool {
	m := make(map[string]bool, len(accountEvents))
	for _, e := range accountEvents {
		m[e] = true
	}
	return m
}()

// droppedFields are the <name>s of "field_dropped:<name>".
var droppedFields = []string{"username", "message_type", "preference_category", "text", "button_payload",
	"callback_data", "error_title", "error_details", "phone"}

// Reasons returns every reason Parse may count, the closed set of [Stats].
func Reasons() []string {
	r := []string{"unknown_object", "missing_field", "unknown_field:other", "message_echoes",
		"value_errors", "type_mismatch", "missing_phone_number_id", "missing_id", "missing_recipient",
		"missing_status", "unknown_status:none", "unknown_status:other", "ignored_status:deleted",
		"ignored_status:warning", "call_status", "group_status", "group_message", "system_message",
		"business_initiated_call", "unknown_call_direction:none", "unknown_call_direction:other",
		"unknown_call_event:none", "unknown_call_event:other", "unknown_preference:none",
		"unknown_preference:other", "bad_timestamp", "bad_error_code", "field_too_long", "bad_field",
		"too_many_events", "empty_restriction_info", "missing_restriction_type", "missing_ban_state",
		"missing_waba_id", "account_event:none", "account_event:other", "template_event:none",
		"template_event:other", "missing_template_name", "category_update:none", "missing_limit", "quality_event:none"}
	for _, e := range templateEvents {
		r = append(r, "template_event:"+e)
	}
	for _, f := range documentedFields {
		r = append(r, "unknown_field:"+f)
	}
	for _, e := range accountEvents {
		r = append(r, "account_event:"+e)
	}
	for _, f := range droppedFields {
		r = append(r, "field_dropped:"+f)
	}
	return r
}

func (s *Stats) add(reason string) {
	if s.Skipped == nil {
		s.Skipped = make(map[string]int)
	}
	s.Skipped[reason]++
}

// addValue counts prefix+v, where v comes from the body: v is kept only when
// known holds it; otherwise the reason is prefix+"other", or prefix+"none"
// for an empty v.
func (s *Stats) addValue(prefix, v string, known map[string]bool) {
	switch {
	case v == "":
		s.add(prefix + "none")
	case known[v]:
		s.add(prefix + v)
	default:
		s.add(prefix + "other")
	}
}
