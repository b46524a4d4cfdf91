package server

import (
	"strings"
	"unicode/utf8"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Size limits of request fields, in bytes.
const (
	maxBusinessID = 128
	maxPhone      = 64
	maxUserID     = 140
	maxTemplate   = 512
	maxShortField = 256 // request_id, message_ref, campaign_id, message_id
	maxText       = 4096
	maxReason     = 1024
)

// checkID validates an identifier field: required or optional, within maxLen bytes,
// valid UTF-8 and free of control characters (NUL is a key separator in storage).
func checkID(field, v string, maxLen int, required bool) error {
	if v == "" {
		if required {
			return invalidArg("%s is required", field)
		}
		return nil
	}
	if len(v) > maxLen {
		return invalidArg("%s is %d bytes; at most %d", field, len(v), maxLen)
	}
	if !utf8.ValidString(v) {
		return invalidArg("%s is not valid UTF-8", field)
	}
	if strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return invalidArg("%s contains control characters", field)
	}
	return nil
}

func checkText(field, v string, maxLen int) error {
	if len(v) > maxLen {
		return invalidArg("%s is %d bytes; at most %d", field, len(v), maxLen)
	}
	if !utf8.ValidString(v) {
		return invalidArg("%s is not valid UTF-8", field)
	}
	return nil
}

// checkRecipient validates business_id, phone and user_id (at least one of the two).
func checkRecipient(business, phone, userID string) error {
	if err := checkID("business_id", business, maxBusinessID, true); err != nil {
		return err
	}
	if phone == "" && userID == "" {
		return invalidArg("phone or user_id is required")
	}
	// A phone that does not parse is a fact about the recipient (INVALID_NUMBER),
	// not a malformed request: only its size and encoding are checked here.
	if err := checkText("phone", phone, maxPhone); err != nil {
		return err
	}
	return checkID("user_id", userID, maxUserID, false)
}

// checkRegion validates a request's region: empty (not given) or an ISO 3166
// alpha-2 code, any case.
func checkRegion(region string) error {
	if region == "" {
		return nil
	}
	if _, err := regionCode(region); err != nil {
		return invalidArg("region: %v", err)
	}
	return nil
}

func checkCategory(field string, c sgv1.Category, required bool) error {
	if c == sgv1.Category_CATEGORY_UNSPECIFIED {
		if required {
			return invalidArg("%s is required (CATEGORY_MARKETING, _UTILITY, _AUTHENTICATION or _SERVICE)", field)
		}
		return nil
	}
	if _, ok := sgv1.Category_name[int32(c)]; !ok {
		return invalidArg("%s: unknown category %d", field, c)
	}
	return nil
}

func validateCheck(r *sgv1.CheckSendRequest) error {
	if err := checkRecipient(r.GetBusinessId(), r.GetPhone(), r.GetUserId()); err != nil {
		return err
	}
	if err := checkRegion(r.GetRegion()); err != nil {
		return err
	}
	if err := checkCategory("category", r.GetCategory(), true); err != nil {
		return err
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"template", r.GetTemplate(), maxTemplate},
		{"campaign_id", r.GetCampaignId(), maxShortField},
		{"request_id", r.GetRequestId(), maxShortField},
		{"message_ref", r.GetMessageRef(), maxShortField},
	} {
		if err := checkID(f.name, f.v, f.max, false); err != nil {
			return err
		}
	}
	if r.GetSendAt() != nil && !r.GetSendAt().IsValid() {
		return invalidArg("send_at is not a valid timestamp")
	}
	return validateCheckSender(r)
}

func validateResult(r *sgv1.ReportResultRequest) error {
	if err := checkRecipient(r.GetBusinessId(), r.GetPhone(), r.GetUserId()); err != nil {
		return err
	}
	if err := checkRegion(r.GetRegion()); err != nil {
		return err
	}
	if r.GetStatus() == sgv1.MessageStatus_MESSAGE_STATUS_UNSPECIFIED {
		return invalidArg("status is required")
	}
	if _, ok := sgv1.MessageStatus_name[int32(r.GetStatus())]; !ok {
		return invalidArg("status: unknown status %d", r.GetStatus())
	}
	if r.GetMessageId() == "" && r.GetMessageRef() == "" {
		return invalidArg("message_id or message_ref is required (the report's idempotency key)")
	}
	if r.GetStatus() == sgv1.MessageStatus_MESSAGE_STATUS_FAILED && r.GetErrorCode() == 0 {
		return invalidArg("error_code is required when status is MESSAGE_STATUS_FAILED")
	}
	if err := checkCategory("category", r.GetCategory(), false); err != nil {
		return err
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"message_id", r.GetMessageId(), maxShortField},
		{"message_ref", r.GetMessageRef(), maxShortField},
		{"template", r.GetTemplate(), maxTemplate},
		{"campaign_id", r.GetCampaignId(), maxShortField},
	} {
		if err := checkID(f.name, f.v, f.max, false); err != nil {
			return err
		}
	}
	if err := checkText("error_title", r.GetErrorTitle(), maxReason); err != nil {
		return err
	}
	if r.GetTimestamp() != nil && !r.GetTimestamp().IsValid() {
		return invalidArg("timestamp is not a valid timestamp")
	}
	return validateResultSender(r)
}

func validateInbound(r *sgv1.ReportInboundRequest) error {
	if err := checkRecipient(r.GetBusinessId(), r.GetPhone(), r.GetUserId()); err != nil {
		return err
	}
	if err := checkRegion(r.GetRegion()); err != nil {
		return err
	}
	if err := checkID("message_id", r.GetMessageId(), maxShortField, false); err != nil {
		return err
	}
	if _, ok := sgv1.InboundKind_name[int32(r.GetKind())]; !ok {
		return invalidArg("kind: unknown kind %d", r.GetKind())
	}
	if err := checkText("text", r.GetText(), maxText); err != nil {
		return err
	}
	if r.GetTimestamp() != nil && !r.GetTimestamp().IsValid() {
		return invalidArg("timestamp is not a valid timestamp")
	}
	return validateInboundSender(r)
}
