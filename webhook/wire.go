package webhook

import (
	"math"
	"strconv"
)

// The JSON shapes of Meta's webhook bodies, reduced to the fields Parse reads.
// Unknown keys are ignored by encoding/json; a value of the wrong JSON type
// leaves its field empty (Parse then counts "type_mismatch").

type wireBody struct {
	Object string      `json:"object"`
	Entry  []wireEntry `json:"entry"`
}

type wireEntry struct {
	ID      string       `json:"id"`   // the WhatsApp Business Account (account events)
	Time    flexTime     `json:"time"` // when the webhook was triggered (account events)
	Changes []wireChange `json:"changes"`
}

type wireChange struct {
	Field string    `json:"field"`
	Value wireValue `json:"value"`
}

type wireValue struct {
	Metadata struct {
		PhoneNumberID string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts        []wireContact    `json:"contacts"`
	Statuses        []wireStatus     `json:"statuses"`
	Messages        []wireMessage    `json:"messages"`
	Calls           []wireCall       `json:"calls"`
	UserPreferences []wirePreference `json:"user_preferences"`
	Errors          []anyValue       `json:"errors"`
	MessageEchoes   []anyValue       `json:"message_echoes"`

	// account_update: the event, its restrictions (ACCOUNT_RESTRICTION) and its
	// ban state (DISABLED_UPDATE).
	Event           string            `json:"event"`
	RestrictionInfo []wireRestriction `json:"restriction_info"`
	BanInfo         struct {
		State string `json:"waba_ban_state"`
	} `json:"ban_info"`

	// message_template_status_update and template_category_update: the
	// template (its event is Event), the pause's title, the category change.
	TemplateName     string `json:"message_template_name"`
	TemplateLanguage string `json:"message_template_language"`
	OtherInfo        struct {
		Title string `json:"title"`
	} `json:"other_info"`
	PreviousCategory        string   `json:"previous_category"`
	NewCategory             string   `json:"new_category"`
	CorrectCategory         string   `json:"correct_category"`
	CategoryUpdateTimestamp flexTime `json:"category_update_timestamp"`

	// business_capability_update and phone_number_quality_update: the
	// messaging limit (an integer, or a TIER_* string in quality updates),
	// the sending number as displayed, the quality update's current limit.
	MaxPerBusiness     flexTier `json:"max_daily_conversations_per_business"`
	MaxPerPhone        flexTier `json:"max_daily_conversation_per_phone"`
	DisplayPhoneNumber string   `json:"display_phone_number"`
	CurrentLimit       string   `json:"current_limit"`
}

// wireRestriction is an item of an account_update's restriction_info[].
type wireRestriction struct {
	Type       string   `json:"restriction_type"`
	Expiration flexTime `json:"expiration"`
}

// wireContact is an entry of value.contacts[]: who the user is.
type wireContact struct {
	WaID         string `json:"wa_id"`
	UserID       string `json:"user_id"`
	ParentUserID string `json:"parent_user_id"`
	Profile      struct {
		Username string `json:"username"`
	} `json:"profile"`
}

type wireStatus struct {
	ID                    string      `json:"id"`
	Status                string      `json:"status"`
	Timestamp             flexTime    `json:"timestamp"`
	RecipientID           string      `json:"recipient_id"`
	RecipientUserID       string      `json:"recipient_user_id"`
	RecipientParentUserID string      `json:"recipient_parent_user_id"`
	RecipientType         string      `json:"recipient_type"` // "individual" or "group"
	Type                  string      `json:"type"`           // "call" for call statuses
	CallbackData          string      `json:"biz_opaque_callback_data"`
	Errors                []wireError `json:"errors"`
	Pricing               struct {
		Category string `json:"category"`
	} `json:"pricing"`
	Conversation struct {
		Origin struct {
			Type string `json:"type"`
		} `json:"origin"`
	} `json:"conversation"`
}

type wireError struct {
	Code      flexInt `json:"code"`
	Title     string  `json:"title"`
	Message   string  `json:"message"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

type wireMessage struct {
	ID               string   `json:"id"`
	From             string   `json:"from"`
	FromUserID       string   `json:"from_user_id"`
	FromParentUserID string   `json:"from_parent_user_id"`
	GroupID          string   `json:"group_id"`
	Timestamp        flexTime `json:"timestamp"`
	Type             string   `json:"type"`
	// Referral is present on a message from a click-to-WhatsApp ad or a
	// post (source_url, source_id, source_type "ad" or "post", headline,
	// body, media_type, ctwa_clid, ...): only its presence is read.
	Referral *anyValue `json:"referral"`
	Text     struct {
		Body string `json:"body"`
	} `json:"text"`
	Button struct {
		Text    string `json:"text"`
		Payload string `json:"payload"`
	} `json:"button"`
	// System is a "system" message: the user changed number
	// (user_changed_number: from is the old number, wa_id the new one) or
	// BSUID (user_changed_user_id: previous_user_id the old, user_id the
	// new). new_wa_id is the field's name in older API versions.
	System struct {
		Type                 string `json:"type"`
		WaID                 string `json:"wa_id"`
		NewWaID              string `json:"new_wa_id"`
		UserID               string `json:"user_id"`
		PreviousUserID       string `json:"previous_user_id"`
		ParentUserID         string `json:"parent_user_id"`
		PreviousParentUserID string `json:"previous_parent_user_id"`
	} `json:"system"`
	Interactive struct {
		ButtonReply struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		} `json:"button_reply"`
		ListReply struct {
			Title string `json:"title"`
		} `json:"list_reply"`
	} `json:"interactive"`
}

type wireCall struct {
	ID               string   `json:"id"`
	From             string   `json:"from"`
	FromUserID       string   `json:"from_user_id"`
	FromParentUserID string   `json:"from_parent_user_id"`
	Event            string   `json:"event"`
	Direction        string   `json:"direction"`
	Timestamp        flexTime `json:"timestamp"`
}

type wirePreference struct {
	WaID         string   `json:"wa_id"`
	UserID       string   `json:"user_id"`
	ParentUserID string   `json:"parent_user_id"`
	Category     string   `json:"category"`
	Value        string   `json:"value"`
	Timestamp    flexTime `json:"timestamp"`
}

// anyValue accepts any JSON value and keeps nothing: it only counts items.
type anyValue struct{}

func (*anyValue) UnmarshalJSON([]byte) error { return nil }

// Presence of a flexible field.
const (
	absent uint8 = iota
	valid
	invalid
)

// maxUnix is 9999-12-31T23:59:59Z, the last second a protobuf Timestamp holds.
const maxUnix = 253402300799

// flexTime is a Unix time in seconds sent as a JSON string ("1751142888",
// statuses and messages) or a number (1731705721, user_preferences). It never
// fails to decode: a value it cannot read is marked invalid.
type flexTime struct {
	sec   int64
	state uint8
}

func (t *flexTime) UnmarshalJSON(b []byte) error {
	t.sec, t.state = 0, absent
	if n, ok := quotedDigits(b); ok { // the common case, without allocating
		if n > 0 && n <= maxUnix {
			t.sec, t.state = n, valid
		} else {
			t.state = invalid
		}
		return nil
	}
	s, ok := scalar(b)
	if !ok {
		t.state = invalid
		return nil
	}
	if s == "" {
		return nil
	}
	n, ok := parseInt(s)
	if !ok || n <= 0 || n > maxUnix {
		t.state = invalid
		return nil
	}
	t.sec, t.state = n, valid
	return nil
}

// flexInt is an integer sent as a JSON number or string (error codes).
type flexInt struct {
	n     int32
	state uint8
}

func (v *flexInt) UnmarshalJSON(b []byte) error {
	v.n, v.state = 0, absent
	s, ok := scalar(b)
	if !ok {
		v.state = invalid
		return nil
	}
	if s == "" {
		return nil
	}
	n, ok := parseInt(s)
	if !ok || n < math.MinInt32 || n > math.MaxInt32 {
		v.state = invalid
		return nil
	}
	v.n, v.state = int32(n), valid
	return nil
}

// quotedDigits reads b as 1 to 18 decimal digits, in quotes or not.
func quotedDigits(b []byte) (int64, bool) {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// scalar returns the text of a JSON number, or the contents of a JSON string
// without escapes; "" for null. ok is false for anything else (objects,
// arrays, booleans, strings with escapes).
func scalar(b []byte) (string, bool) {
	switch {
	case len(b) == 0:
		return "", false
	case string(b) == "null":
		return "", true
	case b[0] == '"':
		if len(b) < 2 || b[len(b)-1] != '"' {
			return "", false
		}
		s := b[1 : len(b)-1]
		for _, c := range s {
			if c == '\\' {
				return "", false
			}
		}
		return string(s), true
	case b[0] == '-' || b[0] >= '0' && b[0] <= '9':
		return string(b), true
	}
	return "", false
}

// parseInt reads a decimal integer, also written as a number with a zero
// fraction or an exponent (1.7e9), as JSON encoders sometimes do.
func parseInt(s string) (int64, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// flexTier is a messaging limit: a JSON number (2000, -1 for unlimited) or a
// string, either digits or Meta's tier names (TIER_250, TIER_2K,
// TIER_UNLIMITED, ...). It never fails to decode: a value it cannot read, and
// TIER_NOT_SET, leave it absent (n 0).
type flexTier struct {
	n     int
	state uint8
}

// tierNames are Meta's tier names and the limits they stand for (-1 unlimited).
var tierNames = map[string]int{
	"TIER_50": 50, "TIER_250": 250, "TIER_1K": 1000, "TIER_2K": 2000, "TIER_10K": 10_000,
	"TIER_100K": 100_000, "TIER_UNLIMITED": -1,
}

func (v *flexTier) UnmarshalJSON(b []byte) error {
	v.n, v.state = 0, absent
	s, ok := scalar(b)
	if !ok {
		v.state = invalid
		return nil
	}
	if s == "" || s == "TIER_NOT_SET" {
		return nil
	}
	if n, ok := tierNames[s]; ok {
		v.n, v.state = n, valid
		return nil
	}
	n, ok := parseInt(s)
	switch {
	case !ok || n < -1 || n > math.MaxInt32:
		v.state = invalid
	case n == -1 || n > 0:
		v.n, v.state = int(n), valid
	}
	return nil
}
