package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

const pnid = "106540352242922"

func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// failedEvent is a failed status of the test business with one error.
func failedEvent(id, phone string, ts int64, code int32, title, details string) Event {
	return Event{
		Kind: KindStatus, PhoneNumberID: pnid, Timestamp: unix(ts), Phone: phone,
		MessageID: id, Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED,
		ErrorCode: code, ErrorTitle: title, ErrorDetails: details,
	}
}

func TestParseTestdata(t *testing.T) {
	const (
		optOutTitle = "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business"
		ecoTitle    = "This message was not delivered to maintain healthy ecosystem engagement."
		ecoDetails  = "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
	)
	tests := []struct {
		file    string
		want    []Event
		skipped map[string]int
	}{
		{
			file: "status_sent.json",
			want: []Event{{
				Kind: KindStatus, PhoneNumberID: pnid, Timestamp: unix(1751142880), Phone: "16505551234",
				MessageID: "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI3NTJCQjZDMzJGMTNGMkE0RDgA",
				Status:    sgv1.MessageStatus_MESSAGE_STATUS_SENT, Category: sgv1.Category_CATEGORY_MARKETING,
			}},
		},
		{
			file: "status_delivered.json",
			want: []Event{{
				Kind: KindStatus, PhoneNumberID: pnid, Timestamp: unix(1751142890),
				Phone: "5215512345678", UserID: "MX.8830921644218811", Username: "@ana.lopez",
				MessageID: "wamid.HBgNNTIxNTUxMjM0NTY3OBUCABEYEjQ0QjE3RkQ5MjBCRDQ2QzhFOQA=",
				Status:    sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Category: sgv1.Category_CATEGORY_UTILITY,
			}},
		},
		{
			file: "status_read.json",
			want: []Event{{
				Kind: KindStatus, PhoneNumberID: pnid, Timestamp: unix(1751143001), Phone: "447911223344",
				MessageID: "wamid.HBgMNDQ3OTExMjIzMzQ0FQIAERgSQUY1QzE0ODJCMzM5ODhFNUE4AA==",
				Status:    sgv1.MessageStatus_MESSAGE_STATUS_READ, Category: sgv1.Category_CATEGORY_AUTHENTICATION,
			}},
		},
		{
			file: "status_played.json",
			want: []Event{{
				Kind: KindStatus, PhoneNumberID: pnid, Timestamp: unix(1751143100), Phone: "16505551234",
				MessageID: "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJGOTg3QTY1NDMyMTBGRURDQkEA",
				Status:    sgv1.MessageStatus_MESSAGE_STATUS_PLAYED, Category: sgv1.Category_CATEGORY_SERVICE,
			}},
		},
		{
			file: "status_failed_131049.json",
			want: []Event{failedEvent("wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI1QjJDMEQ4RjE0QUU5NzM0RjEA", "16505551234",
				1751142888, 131049, ecoTitle, ecoDetails)},
		},
		{
			file: "status_failed_131026.json",
			want: []Event{failedEvent("wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSMkI0QzlEMEUxRjIzNDU2Nzg5AA==", "919876543210",
				1751142900, 131026, "Message undeliverable", "Message Undeliverable.")},
		},
		{
			file: "status_failed_130472.json",
			want: []Event{failedEvent("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjc3QUFCQkNDRERFRUZGMDAxMQA=", "5511987654321",
				1751142910, 130472, "User's number is part of an experiment",
				"Failed to send message because this user's phone number is part of an experiment")},
		},
		{
			file: "status_failed_131050.json",
			want: []Event{failedEvent("wamid.HBgMMzQ2MTIzNDU2Nzg5FQIAERgSQ0MxMTIyMzM0NDU1NjY3Nzg4AA==", "34612345678",
				1751142920, 131050, optOutTitle, optOutTitle)},
		},
		{
			file: "status_failed_131047.json",
			want: []Event{failedEvent("wamid.HBgMNDkxNTEyMzQ1Njc4FQIAERgSOTlGRjg4RUU3N0RENjZDQzU1AA==", "4915123456789",
				1751142930, 131047, "Re-engagement message",
				"Message failed to send because more than 24 hours have passed since the customer last replied to this number.")},
		},
		{
			// The code arrives as a string here.
			file: "status_failed_132015.json",
			want: []Event{failedEvent("wamid.HBgMNjI4MTIzNDU2Nzg5FQIAERgSRDRFNUY2QTdCOEM5RDBFMUYyAA==", "6281234567890",
				1751142940, 132015, "Template is Paused",
				"Template is paused due to low quality so it cannot be sent in a template message.")},
		},
		{
			file: "status_callback_bsuid.json",
			want: []Event{
				{
					Kind: KindStatus, PhoneNumberID: pnid, Timestamp: unix(1775030400),
					Phone: "5511987654321", UserID: "BR.1502576394655843", ParentUserID: "BR.ENT.11815799212886844830",
					MessageID: "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEkE1QjZDN0Q4RTlGMDAxMTIyAA==",
					Status:    sgv1.MessageStatus_MESSAGE_STATUS_SENT, Category: sgv1.Category_CATEGORY_MARKETING,
					CallbackData: "ref-2026-04-01-000017",
				},
				{
					Kind: KindStatus, PhoneNumberID: pnid, Timestamp: unix(1775030460),
					UserID:    "BR.1502576394655843",
					MessageID: "wamid.HBgTQlIuMTUwMjU3NjM5NDY1NTg0MxUCABEYEkZGMDAxMTIyMzM0NDU1NjYA",
					Status:    sgv1.MessageStatus_MESSAGE_STATUS_FAILED,
					ErrorCode: 131049, ErrorTitle: ecoTitle, ErrorDetails: ecoDetails,
					CallbackData: "ref-2026-04-01-000018",
				},
			},
		},
		{
			file: "message_text.json",
			want: []Event{{
				Kind: KindMessage, PhoneNumberID: pnid, Timestamp: unix(1749416383), Phone: "16505551234",
				MessageID:   "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
				MessageType: "text", Text: "Does it come in another color?",
			}},
		},
		{
			file: "message_referral.json", // from a click-to-WhatsApp ad: a free entry point
			want: []Event{{
				Kind: KindMessage, PhoneNumberID: pnid, Timestamp: unix(1749416500), Phone: "16505551234",
				MessageID:   "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUZBRkE0QkQxQzY3NkQ4MDI3QgA=",
				MessageType: "text", Text: "Hi! Is the sale still on?", Referral: true,
			}},
		},
		{
			file: "message_button.json",
			want: []Event{{
				Kind: KindMessage, PhoneNumberID: pnid, Timestamp: unix(1751143200), Phone: "16505551234",
				MessageID:   "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUIxMjM0NTY3ODkwQUJDREVGMAA=",
				MessageType: "button", Text: "Stop promotions", ButtonPayload: "STOP_PROMOTIONS",
			}},
		},
		{
			file: "message_interactive.json",
			want: []Event{
				{
					Kind: KindMessage, PhoneNumberID: pnid, Timestamp: unix(1751143300), Phone: "16505551234",
					MessageID:   "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUMxMTIyMzM0NDU1NjY3Nzg4OQA=",
					MessageType: "interactive", Text: "STOP", ButtonPayload: "unsubscribe",
				},
				{
					Kind: KindMessage, PhoneNumberID: pnid, Timestamp: unix(1751143310), Phone: "919876543210",
					MessageID:   "wamid.HBgMOTE5ODc2NTQzMjEwFQIAEhgUM0FEOTg3NjU0MzIxMEZFRENCQQA=",
					MessageType: "interactive", Text: "Medium",
				},
			},
		},
		{
			// Meta's system message: from is the old number, system.wa_id the
			// new; since 2026 the old and new BSUIDs too.
			file: "system_user_changed_number.json",
			want: []Event{{
				Kind: KindIdentityChange, PhoneNumberID: pnid, Timestamp: unix(1739321024),
				Phone: "16505551234", UserID: "US.13491208655302741918",
				NewPhone: "12195555358", NewUserID: "US.13491208655302749999",
				MessageID:   "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
				MessageType: "user_changed_number",
			}},
		},
		{
			file: "system_user_changed_user_id.json",
			want: []Event{{
				Kind: KindIdentityChange, PhoneNumberID: pnid, Timestamp: unix(1786000000),
				UserID: "US.13491208655302741918", NewUserID: "US.13491208655302749999",
				MessageID:   "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMQA=",
				MessageType: "user_changed_user_id",
			}},
		},
		{
			// The caption is not text the user typed as a message.
			file: "message_image.json",
			want: []Event{{
				Kind: KindMessage, PhoneNumberID: pnid, Timestamp: unix(1751143400), Phone: "16505551234",
				MessageID:   "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUY3RTZENUM0QjNBMjkxODA3NgA=",
				MessageType: "image",
			}},
		},
		{
			file: "message_reaction.json",
			want: []Event{{
				Kind: KindMessage, PhoneNumberID: pnid, Timestamp: unix(1751143500), Phone: "16505551234",
				MessageID:   "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTlCOEE3NjU0MzIxMEZFRENCQQA=",
				MessageType: "reaction",
			}},
		},
		{
			// No "from": the user hides the number behind a username; the
			// only contact is matched by position.
			file: "message_bsuid_username.json",
			want: []Event{{
				Kind: KindMessage, PhoneNumberID: pnid, Timestamp: unix(1776944344),
				UserID: "BR.1502576394655843", ParentUserID: "BR.ENT.11815799212886844830", Username: "@maria.lopez",
				MessageID:   "wamid.HBgTQlIuMTUwMjU3NjM5NDY1NTg0MxUCABIYFDNBQkJDQ0RERUVGRjAwMTEyMjMzAA==",
				MessageType: "text", Text: "Parar",
			}},
		},
		{
			file: "call_user_initiated.json",
			want: []Event{
				{
					Kind: KindCall, PhoneNumberID: pnid, Timestamp: unix(1751143600),
					Phone: "16505551234", UserID: "US.13491208655302741918",
					MessageID:   "wacid.HBgLMTY1MDU1NTEyMzQVAgARGBI2QjFBN0Y0RTNDMkQxQjBBOUEA",
					MessageType: "connect",
				},
				{
					Kind: KindCall, PhoneNumberID: pnid, Timestamp: unix(1751143700), Phone: "16505551234",
					MessageID:   "wacid.HBgLMTY1MDU1NTEyMzQVAgARGBI2QjFBN0Y0RTNDMkQxQjBBOUEA",
					MessageType: "terminate",
				},
			},
		},
		{
			file:    "call_business_initiated.json",
			skipped: map[string]int{"call_status": 1, "business_initiated_call": 1},
		},
		{
			file: "user_preferences_stop.json",
			want: []Event{{
				Kind: KindUserPreference, PhoneNumberID: pnid, Timestamp: unix(1731705600), Phone: "16505551234",
				PreferenceStop: true, PreferenceCategory: "marketing_messages",
			}},
		},
		{
			file: "user_preferences_resume.json",
			want: []Event{{
				Kind: KindUserPreference, PhoneNumberID: pnid, Timestamp: unix(1731705721), Phone: "16505551234",
				PreferenceStop: false, PreferenceCategory: "marketing_messages",
			}},
		},
		{
			file: "multi_entry.json",
			want: []Event{
				{
					Kind: KindStatus, PhoneNumberID: pnid, Timestamp: unix(1751144000), Phone: "16505551234",
					MessageID: "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJNVUxUSTAwMDAwMDAwMDAwMQA=",
					Status:    sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Category: sgv1.Category_CATEGORY_MARKETING,
				},
				{
					Kind: KindStatus, PhoneNumberID: pnid, Timestamp: unix(1751144060), Phone: "16505551234",
					MessageID: "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJNVUxUSTAwMDAwMDAwMDAwMQA=",
					Status:    sgv1.MessageStatus_MESSAGE_STATUS_READ, Category: sgv1.Category_CATEGORY_MARKETING,
				},
				{
					Kind: KindMessage, PhoneNumberID: pnid, Timestamp: unix(1751144100), Phone: "16505551234",
					MessageID:   "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBRNVUxUSTAwMDAwMDAwMDAwMDAwMgA=",
					MessageType: "text", Text: "stop",
				},
				{
					Kind: KindUserPreference, PhoneNumberID: "301234567890123", Timestamp: unix(1751144200),
					Phone: "447911223344", PreferenceStop: true, PreferenceCategory: "marketing_messages",
				},
				{
					Kind: KindStatus, PhoneNumberID: "301234567890123", Timestamp: unix(1751144300), Phone: "447911223344",
					MessageID: "wamid.HBgMNDQ3OTExMjIzMzQ0FQIAERgSTVVMVEkwMDAwMDAwMDAwMDMA",
					Status:    sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131050,
					ErrorTitle: optOutTitle, ErrorDetails: optOutTitle,
				},
			},
			skipped: map[string]int{"unknown_field:message_template_quality_update": 1, "message_echoes": 1},
		},
		{
			file:    "unknown_field.json",
			skipped: map[string]int{"account_event:other": 1},
		},
		{
			// Meta's account_update reference, "Account restriction" example.
			file: "account_restriction.json",
			want: []Event{
				{Kind: KindAccountRestriction, WABAID: "102290129340398", Timestamp: unix(1641330498),
					Restriction: "RESTRICTED_BIZ_INITIATED_MESSAGING", RestrictionEnds: unix(1641935298)},
				{Kind: KindAccountRestriction, WABAID: "102290129340398", Timestamp: unix(1641330498),
					Restriction: "RESTRICTED_ADD_PHONE_NUMBER_ACTION", RestrictionEnds: unix(1641935298)},
			},
		},
		{
			file: "account_disabled.json",
			want: []Event{{Kind: KindAccountBan, WABAID: "102290129340398", Timestamp: unix(1743451903), BanState: "DISABLE"}},
		},
		{
			file: "account_reinstated.json",
			want: []Event{{Kind: KindAccountBan, WABAID: "102290129340398", Timestamp: unix(1743538303), BanState: "REINSTATE"}},
		},
		{
			// Meta's message_template_status_update reference: a first pause.
			file: "template_paused.json",
			want: []Event{{Kind: KindTemplateStatus, WABAID: "102290129340398", Timestamp: unix(1751246820),
				Template: "spring_sale", TemplateLanguage: "pt_BR", TemplateEvent: "PAUSED", PauseTitle: "FIRST_PAUSE"}},
		},
		{
			// An unpause arrives as APPROVED with other_info UNPAUSE.
			file: "template_unpaused.json",
			want: []Event{{Kind: KindTemplateStatus, WABAID: "102290129340398", Timestamp: unix(1751250420),
				Template: "spring_sale", TemplateLanguage: "pt_BR", TemplateEvent: "APPROVED", PauseTitle: "UNPAUSE"}},
		},
		{
			file: "template_disabled.json",
			want: []Event{{Kind: KindTemplateStatus, WABAID: "102290129340398", Timestamp: unix(1751331600),
				Template: "spring_sale", TemplateLanguage: "pt_BR", TemplateEvent: "DISABLED"}},
		},
		{
			file:    "template_rejected.json",
			skipped: map[string]int{"template_event:rejected": 1},
		},
		{
			// Meta's template_category_update reference, both forms.
			file: "template_category_completed.json",
			want: []Event{{Kind: KindTemplateCategory, WABAID: "102290129340398", Timestamp: unix(1751331600),
				Template: "order_update", TemplateLanguage: "en_US", PreviousCategory: "UTILITY", NewCategory: "MARKETING"}},
		},
		{
			file: "template_category_impending.json",
			want: []Event{{Kind: KindTemplateCategory, WABAID: "102290129340398", Timestamp: unix(1751331600),
				Template: "order_update", TemplateLanguage: "en_US", NewCategory: "UTILITY", CorrectCategory: "MARKETING",
				CategoryUpdateAt: unix(1751587200)}},
		},
		{
			file: "business_capability.json",
			want: []Event{{Kind: KindCapability, WABAID: "102290129340398", Timestamp: unix(1751331600), Tier: 2000}},
		},
		{
			// Meta names only the display number.
			file: "phone_quality.json",
			want: []Event{{Kind: KindQuality, WABAID: "102290129340398", Timestamp: unix(1751331600), QualityEvent: "FLAGGED",
				DisplayPhoneNumber: "15550783881", CurrentLimit: "TIER_10K", Tier: 10_000}},
		},
		{
			file:    "account_violation.json",
			skipped: map[string]int{"account_event:account_violation": 1},
		},
		{
			file: "unknown_status.json",
			want: []Event{{
				// An unreadable timestamp keeps the event, with a zero time.
				Kind: KindStatus, PhoneNumberID: pnid, Phone: "16505551234",
				MessageID: "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJVTktOT1dOMDAwMDAwMDAwNAA=",
				Status:    sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED,
			}},
			skipped: map[string]int{
				"unknown_status:other": 1, "ignored_status:deleted": 1, "ignored_status:warning": 1,
				"missing_id": 1, "bad_timestamp": 1, "value_errors": 1,
			},
		},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".json"), func(t *testing.T) {
			seen[tt.file] = true
			got, st, err := Parse(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkEvents(t, got, tt.want)
			checkSkipped(t, st, tt.skipped)
		})
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no test case", f)
		}
	}
}

func checkEvents(t *testing.T, got, want []Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d events, want %d:\n%s", len(got), len(want), dump(got))
		return
	}
	for i := range want {
		g := got[i]
		if want[i].PricingCategory == "" {
			// Checked where a case names it (TestParsePricingVerbatim); the
			// others check the category it maps to.
			g.PricingCategory = ""
		}
		if !reflect.DeepEqual(g, want[i]) {
			t.Errorf("event %d:\n got  %+v\n want %+v", i, got[i], want[i])
		}
	}
}

func checkSkipped(t *testing.T, st Stats, want map[string]int) {
	t.Helper()
	if len(st.Skipped) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(st.Skipped, want) {
		t.Errorf("Skipped = %v, want %v", st.Skipped, want)
	}
}

func dump(evs []Event) string {
	var b strings.Builder
	for i, e := range evs {
		fmt.Fprintf(&b, "  %d: %+v\n", i, e)
	}
	return b.String()
}

// wrap puts one change value into a webhook envelope.
func wrap(field, value string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"` + field +
		`","value":` + value + `}]}]}`)
}

const meta = `"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"` + pnid + `"}`

func TestParseCases(t *testing.T) {
	long := func(n int) string { return strings.Repeat("7", n) }
	tests := []struct {
		name    string
		body    []byte
		want    []Event
		skipped map[string]int
	}{
		{
			name:    "unknown object",
			body:    []byte(`{"object":"page","entry":[{"id":"1","changes":[{"field":"messages","value":{"statuses":[{"id":"x","status":"sent","recipient_id":"1"}]}}]}]}`),
			skipped: map[string]int{"unknown_object": 1},
		},
		{
			name:    "empty object",
			body:    []byte(`{}`),
			skipped: map[string]int{"unknown_object": 1},
		},
		{
			name: "no entries",
			body: []byte(`{"object":"whatsapp_business_account","entry":[]}`),
		},
		{
			name:    "missing field",
			body:    []byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{}}]}]}`),
			skipped: map[string]int{"missing_field": 1},
		},
		{
			name:    "unknown field with an odd name",
			body:    wrap("Some Field!", `{}`),
			skipped: map[string]int{"unknown_field:other": 1},
		},
		{
			name: "account restriction: expiration as a string, one without, an over-long type, a control character",
			body: []byte(`{"object":"whatsapp_business_account","entry":[{"id":"9","time":"1700000000","changes":[{"field":"account_update","value":{"event":"ACCOUNT_RESTRICTION","restriction_info":[` +
				`{"restriction_type":"RESTRICTED_CUSTOMER_INITIATED_MESSAGING","expiration":"1700086400"},{"restriction_type":"RESTRICTED_BIZ_INITIATED_MESSAGING"},` +
				`{"restriction_type":"` + long(MaxShortLen+1) + `","expiration":1},{"restriction_type":"A\u0000","expiration":1},{"expiration":1},` +
				`{"restriction_type":"RESTRICTED_BIZ_INITIATED_MESSAGING","expiration":"2026-04-19T13:59:20+0000"}]}}]}]}`),
			want: []Event{
				{Kind: KindAccountRestriction, WABAID: "9", Timestamp: unix(1700000000), Restriction: "RESTRICTED_CUSTOMER_INITIATED_MESSAGING", RestrictionEnds: unix(1700086400)},
				{Kind: KindAccountRestriction, WABAID: "9", Timestamp: unix(1700000000), Restriction: "RESTRICTED_BIZ_INITIATED_MESSAGING"},
				{Kind: KindAccountRestriction, WABAID: "9", Timestamp: unix(1700000000), Restriction: "RESTRICTED_BIZ_INITIATED_MESSAGING"},
			},
			skipped: map[string]int{"field_too_long": 1, "bad_field": 1, "missing_restriction_type": 1, "bad_timestamp": 1},
		},
		{
			name: "account events without an entry id, restrictions or a ban state",
			body: []byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"account_update","value":{"event":"DISABLED_UPDATE","ban_info":{"waba_ban_state":"DISABLE"}}}]},` +
				`{"id":"9","changes":[{"field":"account_update","value":{"event":"ACCOUNT_RESTRICTION","restriction_info":[]}},{"field":"account_update","value":{"event":"DISABLED_UPDATE"}}]}]}`),
			skipped: map[string]int{"missing_waba_id": 1, "empty_restriction_info": 1, "missing_ban_state": 1},
		},
		{
			name:    "missing phone_number_id",
			body:    wrap("messages", `{"statuses":[{"id":"wamid.1","status":"sent","recipient_id":"1650"},{"id":"wamid.2","status":"read","recipient_id":"1650"}]}`),
			skipped: map[string]int{"missing_phone_number_id": 2},
		},
		{
			name:    "status without recipient",
			body:    wrap("messages", `{`+meta+`,"statuses":[{"id":"wamid.1","status":"sent","timestamp":"1751142880"}]}`),
			skipped: map[string]int{"missing_recipient": 1},
		},
		{
			name:    "status with missing status",
			body:    wrap("messages", `{`+meta+`,"statuses":[{"id":"wamid.1","recipient_id":"1650"}]}`),
			skipped: map[string]int{"missing_status": 1},
		},
		{
			name: "timestamp as number and absent",
			body: wrap("messages", `{`+meta+`,"statuses":[{"id":"wamid.1","status":"sent","recipient_id":"1650","timestamp":1751142880},`+
				`{"id":"wamid.2","status":"sent","recipient_id":"1650"},{"id":"wamid.3","status":"sent","recipient_id":"1650","timestamp":null}]}`),
			want: []Event{
				{Kind: KindStatus, PhoneNumberID: pnid, Timestamp: unix(1751142880), Phone: "1650", MessageID: "wamid.1", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT},
				{Kind: KindStatus, PhoneNumberID: pnid, Phone: "1650", MessageID: "wamid.2", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT},
				{Kind: KindStatus, PhoneNumberID: pnid, Phone: "1650", MessageID: "wamid.3", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT},
			},
		},
		{
			name: "bad timestamps",
			body: wrap("user_preferences", `{`+meta+`,"user_preferences":[{"wa_id":"1650","value":"stop","timestamp":-5},`+
				`{"wa_id":"1650","value":"stop","timestamp":{"s":1}},{"wa_id":"1650","value":"stop","timestamp":"99999999999999"}]}`),
			want: []Event{
				{Kind: KindUserPreference, PhoneNumberID: pnid, Phone: "1650", PreferenceStop: true},
				{Kind: KindUserPreference, PhoneNumberID: pnid, Phone: "1650", PreferenceStop: true},
				{Kind: KindUserPreference, PhoneNumberID: pnid, Phone: "1650", PreferenceStop: true},
			},
			skipped: map[string]int{"bad_timestamp": 3},
		},
		{
			name:    "unknown preference value",
			body:    wrap("user_preferences", `{`+meta+`,"user_preferences":[{"wa_id":"1650","value":"pause","category":"marketing_messages"}]}`),
			skipped: map[string]int{"unknown_preference:other": 1},
		},
		{
			name: "preference with BSUID and contacts",
			body: wrap("user_preferences", `{`+meta+`,"contacts":[{"wa_id":"1650","user_id":"US.42","profile":{"name":"A","username":"@a"}}],`+
				`"user_preferences":[{"user_id":"US.42","value":"resume","category":"marketing_messages","timestamp":1731705721}]}`),
			want: []Event{{Kind: KindUserPreference, PhoneNumberID: pnid, Timestamp: unix(1731705721), Phone: "1650", UserID: "US.42",
				Username: "@a", PreferenceCategory: "marketing_messages"}},
		},
		{
			name: "message with from_user_id matched to its contact",
			body: wrap("messages", `{`+meta+`,"contacts":[{"user_id":"IN.1","profile":{"name":"X"}},{"wa_id":"9198","user_id":"IN.2","profile":{"username":"@two"}}],`+
				`"messages":[{"from_user_id":"IN.2","id":"wamid.a","timestamp":"1779372805","type":"text","text":{"body":"Hey"}}]}`),
			want: []Event{{Kind: KindMessage, PhoneNumberID: pnid, Timestamp: unix(1779372805), Phone: "9198", UserID: "IN.2", Username: "@two",
				MessageID: "wamid.a", MessageType: "text", Text: "Hey"}},
		},
		{
			name: "contact at the same position that contradicts is not used",
			body: wrap("messages", `{`+meta+`,"contacts":[{"wa_id":"111","user_id":"US.1"}],`+
				`"messages":[{"from":"222","id":"wamid.a","type":"text","text":{"body":"hi"}}]}`),
			want: []Event{{Kind: KindMessage, PhoneNumberID: pnid, Phone: "222", MessageID: "wamid.a", MessageType: "text", Text: "hi"}},
		},
		{
			name: "BSUID in recipient_id moves to UserID",
			body: wrap("messages", `{`+meta+`,"statuses":[{"id":"wamid.1","status":"sent","recipient_id":"BR.15025"},`+
				`{"id":"wamid.2","status":"sent","recipient_id":"BR.ENT.9","recipient_user_id":"BR.15025"}]}`),
			want: []Event{
				{Kind: KindStatus, PhoneNumberID: pnid, UserID: "BR.15025", MessageID: "wamid.1", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT},
				{Kind: KindStatus, PhoneNumberID: pnid, UserID: "BR.15025", ParentUserID: "BR.ENT.9", MessageID: "wamid.2", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT},
			},
		},
		{
			name: "calls inside a messages change",
			body: wrap("messages", `{`+meta+`,"calls":[{"id":"wacid.1","from":"1650","to":"1555","event":"connect","direction":"USER_INITIATED","timestamp":"1751143600"}]}`),
			want: []Event{{Kind: KindCall, PhoneNumberID: pnid, Timestamp: unix(1751143600), Phone: "1650", MessageID: "wacid.1", MessageType: "connect"}},
		},
		{
			name: "odd calls",
			body: wrap("calls", `{`+meta+`,"calls":[{"id":"wacid.1","from":"1650","event":"connect"},`+
				`{"id":"wacid.2","from":"1650","event":"media_update","direction":"USER_INITIATED"},`+
				`{"from":"1650","event":"connect","direction":"USER_INITIATED"},`+
				`{"id":"wacid.4","from":"1650","event":"connect","direction":"SIDEWAYS"}]}`),
			skipped: map[string]int{"unknown_call_direction:none": 1, "unknown_call_event:other": 1, "missing_id": 1,
				"unknown_call_direction:other": 1},
		},
		{
			name: "system and group messages",
			body: wrap("messages", `{`+meta+`,"messages":[{"from":"1650","id":"wamid.s","type":"system","system":{"body":"User changed number","type":"user_changed_number"}},`+
				`{"from":"1650","id":"wamid.c","type":"system","system":{"body":"Sheena changed their profile","type":"customer_identity_changed"}},`+
				`{"from":"1650","id":"wamid.u","type":"system","system":{"type":"user_changed_user_id","user_id":"US.13491208655302741918"}},`+
				`{"from":"1650","id":"wamid.g","group_id":"Y2FwaV9ncm91cDox","type":"text","text":{"body":"hi all"}},{"from":"1650","type":"text"}]}`),
			// A number change without the new number, a BSUID change without
			// the old BSUID: nothing to move to or from.
			skipped: map[string]int{"system_message": 1, "missing_recipient": 2, "group_message": 1, "missing_id": 1},
		},
		{
			name:    "group status",
			body:    wrap("messages", `{`+meta+`,"statuses":[{"id":"wamid.1","status":"read","recipient_id":"Y2FwaV9ncm91cDox","recipient_type":"group","recipient_participant_id":"1650"}]}`),
			skipped: map[string]int{"group_status": 1},
		},
		{
			name: "too long identifiers skip the event",
			body: wrap("messages", `{`+meta+`,"statuses":[{"id":"wamid.1","status":"sent","recipient_id":"`+long(65)+`"},`+
				`{"id":"`+long(257)+`","status":"sent","recipient_id":"1650"},`+
				`{"id":"wamid.3","status":"sent","recipient_id":"1650","recipient_user_id":"US.`+long(140)+`"},`+
				`{"id":"wamid.4","status":"sent","recipient_id":"`+long(64)+`"}]}`),
			want:    []Event{{Kind: KindStatus, PhoneNumberID: pnid, Phone: long(64), MessageID: "wamid.4", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT}},
			skipped: map[string]int{"field_too_long": 3},
		},
		{
			name:    "control characters in an identifier",
			body:    wrap("messages", `{`+meta+`,"statuses":[{"id":"wamid.\u0000","status":"sent","recipient_id":"1650"}]}`),
			skipped: map[string]int{"bad_field": 1},
		},
		{
			name: "too long descriptive fields are dropped, not the event",
			body: wrap("messages", `{`+meta+`,"messages":[{"from":"1650","id":"wamid.a","type":"text","text":{"body":"`+long(MaxTextLen+1)+`"}}],`+
				`"statuses":[{"id":"wamid.b","status":"sent","recipient_id":"1650","biz_opaque_callback_data":"`+long(MaxCallbackDataLen+1)+`"}]}`),
			want: []Event{
				{Kind: KindStatus, PhoneNumberID: pnid, Phone: "1650", MessageID: "wamid.b", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT},
				{Kind: KindMessage, PhoneNumberID: pnid, Phone: "1650", MessageID: "wamid.a", MessageType: "text"},
			},
			skipped: map[string]int{"field_dropped:text": 1, "field_dropped:callback_data": 1},
		},
		{
			name: "bad error code",
			body: wrap("messages", `{`+meta+`,"statuses":[{"id":"wamid.1","status":"failed","recipient_id":"1650","errors":[{"code":"abc","title":"T"}]},`+
				`{"id":"wamid.2","status":"failed","recipient_id":"1650","errors":[{"code":99999999999,"message":"M"}]},`+
				`{"id":"wamid.3","status":"failed","recipient_id":"1650"}]}`),
			want: []Event{
				{Kind: KindStatus, PhoneNumberID: pnid, Phone: "1650", MessageID: "wamid.1", Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorTitle: "T"},
				{Kind: KindStatus, PhoneNumberID: pnid, Phone: "1650", MessageID: "wamid.2", Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorTitle: "M"},
				{Kind: KindStatus, PhoneNumberID: pnid, Phone: "1650", MessageID: "wamid.3", Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED},
			},
			skipped: map[string]int{"bad_error_code": 2},
		},
		{
			name: "wrong JSON types inside are skipped",
			body: wrap("messages", `{`+meta+`,"statuses":[{"id":5,"status":"sent","recipient_id":"1650"},{"id":"wamid.2","status":"sent","recipient_id":"1650"}],"contacts":"none"}`),
			want: []Event{
				{Kind: KindStatus, PhoneNumberID: pnid, Phone: "1650", MessageID: "wamid.2", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT},
			},
			skipped: map[string]int{"type_mismatch": 1, "missing_id": 1},
		},
		{
			name:    "entry items that are not objects",
			body:    []byte(`{"object":"whatsapp_business_account","entry":[5,"x"]}`),
			skipped: map[string]int{"type_mismatch": 1},
		},
		{
			name:    "pricing categories",
			body:    wrap("messages", `{`+meta+`,"statuses":[`+statusesWithCategories("marketing", "marketing_lite", "utility", "authentication", "authentication_international", "service", "referral_conversion", "premium", "")+`]}`),
			want:    eventsWithCategories(1, 1, 2, 3, 3, 4, 4, 0, 0),
			skipped: nil,
		},
		{
			name: "conversation origin when pricing is absent",
			body: wrap("messages", `{`+meta+`,"statuses":[{"id":"wamid.0","status":"sent","recipient_id":"1650","conversation":{"id":"c","origin":{"type":"utility"}}}]}`),
			want: eventsWithCategories(2),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, st, err := Parse(tt.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkEvents(t, got, tt.want)
			checkSkipped(t, st, tt.skipped)
		})
	}
}

func statusesWithCategories(cats ...string) string {
	var parts []string
	for i, c := range cats {
		parts = append(parts, fmt.Sprintf(`{"id":"wamid.%d","status":"sent","recipient_id":"1650","pricing":{"category":%q}}`, i, c))
	}
	return strings.Join(parts, ",")
}

func eventsWithCategories(cats ...sgv1.Category) []Event {
	var evs []Event
	for i, c := range cats {
		evs = append(evs, Event{Kind: KindStatus, PhoneNumberID: pnid, Phone: "1650", MessageID: fmt.Sprintf("wamid.%d", i),
			Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT, Category: c})
	}
	return evs
}

func TestParseErrors(t *testing.T) {
	text := readTestdata(t, "message_text.json")
	for _, tt := range []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"not JSON", "object=whatsapp_business_account"},
		{"JSON array", `[{"object":"whatsapp_business_account","entry":[]}]`},
		{"JSON string", `"whatsapp_business_account"`},
		{"JSON null", `null`},
		{"truncated", string(text[:len(text)/2])},
		{"trailing garbage", `{"object":"whatsapp_business_account","entry":[]} x`},
		{"entry not an array", `{"object":"whatsapp_business_account","entry":{"changes":[]}}`},
		{"entry a string", `{"object":"whatsapp_business_account","entry":"x"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			evs, st, err := Parse([]byte(tt.body))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if evs != nil || st.Skipped != nil {
				t.Errorf("got events %v, stats %v with an error", evs, st)
			}
		})
	}
}

// statusBatch builds a messages webhook with n delivered statuses, the way
// Meta batches them.
func statusBatch(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{` + meta + `,"statuses":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI%020dA","status":"delivered","timestamp":"%d","recipient_id":"1650555%04d",`+
			`"conversation":{"id":"b1e9a4f1d2c3b4a5f6e7d8c9b0a1f2e3","expiration_timestamp":"1751229280","origin":{"type":"marketing"}},`+
			`"pricing":{"billable":true,"pricing_model":"PMP","category":"marketing","type":"regular"}}`, i, 1751142880+i, i%10000)
	}
	b.WriteString(`]},"field":"messages"}]}]}`)
	return []byte(b.String())
}

func TestParseBatch1000(t *testing.T) {
	evs, st, err := Parse(statusBatch(1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1000 || st.Skipped != nil {
		t.Fatalf("got %d events, skipped %v; want 1000, none", len(evs), st.Skipped)
	}
	for i, e := range evs {
		want := Event{
			Kind: KindStatus, PhoneNumberID: pnid, Timestamp: unix(1751142880 + int64(i)),
			Phone:     fmt.Sprintf("1650555%04d", i),
			MessageID: fmt.Sprintf("wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI%020dA", i),
			Status:    sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Category: sgv1.Category_CATEGORY_MARKETING, PricingCategory: "marketing",
		}
		if e != want {
			t.Fatalf("event %d = %+v, want %+v", i, e, want)
		}
	}
}

func TestParseMaxEvents(t *testing.T) {
	evs, st, err := Parse(statusBatch(MaxEvents + 5))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != MaxEvents || st.Skipped["too_many_events"] != 5 {
		t.Fatalf("got %d events, skipped %v; want %d and 5 too_many_events", len(evs), st.Skipped, MaxEvents)
	}
}

// TestStatsReasonsAreClosed: text from the body never becomes a reason, so a
// metric labelled with reasons cannot grow without bound.
func TestStatsReasonsAreClosed(t *testing.T) {
	var parts []string
	for i := range 100 {
		parts = append(parts, fmt.Sprintf(`{"field":"f%d","value":{}}`, i))
	}
	parts = append(parts, `{"field":"account_update","value":{}}`, `{"field":"account_update","value":{"event":"E1"}}`,
		`{"field":"messages","value":{`+meta+`,"statuses":[{"id":"w","status":"s1","recipient_id":"1"}],`+
			`"calls":[{"id":"c","from":"1","event":"e1","direction":"USER_INITIATED"},{"id":"c","from":"1","event":"connect","direction":"d1"}],`+
			`"user_preferences":[{"wa_id":"1","value":"v1"}]}}`)
	body := `{"object":"whatsapp_business_account","entry":[{"changes":[` + strings.Join(parts, ",") + `]}]}`
	_, st, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"unknown_field:other": 100, "account_event:none": 1, "account_event:other": 1, "unknown_status:other": 1,
		"unknown_call_event:other": 1, "unknown_call_direction:other": 1, "unknown_preference:other": 1}
	checkSkipped(t, st, want)
	known := map[string]bool{}
	for _, r := range Reasons() {
		known[r] = true
	}
	for r := range want {
		if !known[r] {
			t.Errorf("%q is not in Reasons()", r)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		KindStatus: "status", KindMessage: "message", KindCall: "call", KindUserPreference: "user_preference",
		KindAccountRestriction: "account_restriction", KindAccountBan: "account_ban", KindTemplateStatus: "template_status",
		KindTemplateCategory: "template_category", KindCapability: "capability", KindQuality: "quality", 0: "Kind(0)", 99: "Kind(99)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

// BenchmarkParse1000Statuses decodes a realistic batch of 1,000 statuses (what
// Meta sends at most per POST) with Parse and with the oracle, Parse as it was
// before it streamed: compare the two in one run, e.g.
// go test -run '^$' -bench Parse1000 -count 10 ./webhook/
func BenchmarkParse1000Statuses(b *testing.B) {
	body := statusBatch(1000)
	for _, p := range []struct {
		name  string
		parse func([]byte) ([]Event, Stats, error)
	}{{"stream", Parse}, {"oracle", oracleParse}} {
		b.Run(p.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				evs, _, err := p.parse(body)
				if err != nil || len(evs) != 1000 {
					b.Fatal(err, len(evs))
				}
			}
		})
	}
}

// tinyItems builds a body of n statuses that are empty objects: the cheapest
// items a body can hold (3 bytes each).
func tinyItems(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"statuses":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("{}")
	}
	b.WriteString(`]}}]}]}`)
	return b.Bytes()
}

// TestParseCapsTinyItems: 8 MB of empty items decode only MaxEvents of them;
// the rest are skipped unread (encoding/json made 1.5 GB of structs of them).
func TestParseCapsTinyItems(t *testing.T) {
	const n = 2_800_000
	body := tinyItems(n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	evs, st, err := Parse(body)
	runtime.ReadMemStats(&after)
	if err != nil || len(evs) != 0 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	want := map[string]int{"missing_id": MaxEvents, "too_many_events": n - MaxEvents}
	checkSkipped(t, st, want)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %.1f MiB body of %d items allocated %.1f MiB", float64(len(body))/(1<<20), n, float64(allocated)/(1<<20))
	if allocated > 64<<20 {
		t.Fatalf("allocated %d MiB", allocated>>20)
	}
}

// TestParseCapsEveryList: entries, changes and contacts are capped too, and
// items over all values together.
func TestParseCapsEveryList(t *testing.T) {
	status := `{"id":"w","status":"sent","recipient_id":"1650"}`
	value := func(n int, item string) string {
		return `{` + meta + `,"statuses":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`
	}
	for _, tt := range []struct {
		name      string
		body      string
		events    int
		overCap   int
		otherSkip map[string]int
	}{
		{
			name: "entries",
			body: `{"object":"whatsapp_business_account","entry":[` + strings.TrimSuffix(strings.Repeat(
				`{"changes":[{"field":"messages","value":`+value(1, status)+`}]},`, MaxEvents+3), ",") + `]}`,
			events: MaxEvents, overCap: 3,
		},
		{
			name: "changes",
			body: `{"object":"whatsapp_business_account","entry":[{"changes":[` + strings.TrimSuffix(strings.Repeat(
				`{"field":"messages","value":`+value(1, status)+`},`, MaxEvents+2), ",") + `]}]}`,
			events: MaxEvents, overCap: 2,
		},
		{
			name: "items over several values",
			body: `{"object":"whatsapp_business_account","entry":[{"changes":[` +
				`{"field":"messages","value":` + value(MaxEvents-1, status) + `},` +
				`{"field":"messages","value":` + value(4, status) + `}]}]}`,
			events: MaxEvents, overCap: 3,
		},
		{
			name: "contacts",
			body: wrapString("messages", `{`+meta+`,"contacts":[`+strings.TrimSuffix(strings.Repeat(`{"wa_id":"1"},`, MaxEvents+1), ",")+
				`],"messages":[{"from":"1","id":"m","type":"text","text":{"body":"hi"}}]}`),
			events: 1, overCap: 1,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			evs, st, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != tt.events || st.Skipped["too_many_events"] != tt.overCap || st.Total() != tt.overCap {
				t.Fatalf("%d events, skipped %v; want %d events and %d too_many_events", len(evs), st.Skipped, tt.events, tt.overCap)
			}
		})
	}
}

func wrapString(field, value string) string { return string(wrap(field, value)) }

// TestParsePricingVerbatim: a status's pricing.category is kept as Meta sent
// it (what ReportResult's pricing_category takes).
func TestParsePricingVerbatim(t *testing.T) {
	cats := []string{"marketing", "marketing_lite", "utility", "authentication-international", "service", ""}
	evs, _, err := Parse(wrap("messages", `{"metadata":{"phone_number_id":"106540352242922"},"statuses":[`+statusesWithCategories(cats...)+`]}`))
	if err != nil || len(evs) != len(cats) {
		t.Fatalf("Parse: %d events, %v", len(evs), err)
	}
	for i, c := range cats {
		if evs[i].PricingCategory != c {
			t.Errorf("event %d: pricing category %q, want %q", i, evs[i].PricingCategory, c)
		}
	}
}
