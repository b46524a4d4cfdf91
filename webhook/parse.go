package webhook

import (
	"errors"
	"fmt"
	"strings"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// ErrMalformed is wrapped by every error Parse returns: the body is not JSON,
// or not a JSON object with an "entry" array. The HTTP handler answers 400.
var ErrMalformed = errors.New("webhook: malformed body")

// objectWABA is the only "object" Parse reads.
const objectWABA = "whatsapp_business_account"

// Parse decodes a webhook body into its events, in body order: entries, then
// their changes, then the items of each change's value (statuses, messages,
// calls, user_preferences, in that order within one value; Meta sends one
// kind per value).
//
// It returns an error (wrapping [ErrMalformed]) only when the body is not
// JSON, not a JSON object, or its "entry" is not an array. Everything inside
// that it does not understand or cannot use is skipped and counted in
// [Stats], never an error: an unknown "object" or change field, an item
// without an id or a recipient, an unknown status, a field over its size
// limit, a value of the wrong JSON type. At most [MaxEvents] events are
// returned. Every returned event has a Kind, a PhoneNumberID, and a Phone or
// a UserID, except an account event (KindAccountRestriction, KindAccountBan,
// from an account_update change), which has a WABAID instead.
//
// Of account_update, Parse reads the events that start or end a restriction of
// the account (Meta's account_update reference): ACCOUNT_RESTRICTION, one event
// per restriction_info item with its expiration, and DISABLED_UPDATE with its
// ban state; every other account_update event is counted as
// "account_event:<event>".
//
// The body is decoded as a stream of JSON tokens, and what it may hold is
// capped while it is read: at most [MaxEvents] entries, changes, contacts and
// items (statuses, messages, calls and user_preferences together) are
// decoded; further ones are skipped unread and each counted as
// "too_many_events". Within those caps the result is what decoding the whole
// body with encoding/json would give, key order, repeated keys and values of
// the wrong type included (a differential fuzz test holds it to that).
func Parse(body []byte) ([]Event, Stats, error) {
	if !startsObject(body) {
		return nil, Stats{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	var w wireBody
	d := newStreamDecoder(body)
	if err := d.decodeBody(&w); err != nil {
		return nil, Stats{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	p := parser{}
	if d.mismatch {
		p.st.add("type_mismatch")
	}
	if w.Object == objectWABA {
		p.count("too_many_events", d.overCap)
	}
	return p.flatten(&w)
}

// parser turns one decoded body into events, counting what it skips.
type parser struct {
	st     Stats
	events []Event

	// The entry being read.
	entry *wireEntry

	// Of the change being read.
	phoneNumberID string
	pnidProblem   string // skip reason for every item of the change, or ""
	contacts      contacts
}

// flatten turns a decoded body into its events, counting what it skips.
func (p *parser) flatten(w *wireBody) ([]Event, Stats, error) {
	if w.Object != objectWABA {
		p.st.add("unknown_object")
		return nil, p.st, nil
	}
	n := 0
	for i := range w.Entry {
		for j := range w.Entry[i].Changes {
			v := &w.Entry[i].Changes[j].Value
			n += len(v.Statuses) + len(v.Messages) + len(v.Calls) + len(v.UserPreferences) + len(v.RestrictionInfo)
		}
	}
	p.events = make([]Event, 0, min(n, MaxEvents))
	for i := range w.Entry {
		p.entry = &w.Entry[i]
		for j := range w.Entry[i].Changes {
			p.change(&w.Entry[i].Changes[j])
		}
	}
	return p.events, p.st, nil
}

// startsObject reports whether the first non-space byte of b is '{'.
func startsObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

func (p *parser) change(c *wireChange) {
	v := &c.Value
	switch c.Field {
	case "messages", "calls", "user_preferences":
	case "account_update":
		p.accountUpdate(v)
		return
	case "message_template_status_update":
		p.templateStatus(v)
		return
	case "template_category_update":
		p.templateCategory(v)
		return
	case "business_capability_update":
		p.capability(v)
		return
	case "phone_number_quality_update":
		p.quality(v)
		return
	case "smb_message_echoes":
		// Messages the business sent from the WhatsApp Business app.
		p.count("message_echoes", max(1, len(v.MessageEchoes)))
		return
	case "":
		p.st.add("missing_field")
		return
	default:
		p.st.addValue("unknown_field:", c.Field, knownFields)
		return
	}
	p.phoneNumberID = v.Metadata.PhoneNumberID
	p.pnidProblem = ""
	switch {
	case p.phoneNumberID == "":
		p.pnidProblem = "missing_phone_number_id"
	case len(p.phoneNumberID) > MaxPhoneNumberIDLen:
		p.pnidProblem = "field_too_long"
	case hasControl(p.phoneNumberID):
		p.pnidProblem = "bad_field"
	}
	p.contacts = contacts{list: v.Contacts}
	p.count("value_errors", len(v.Errors))
	p.count("message_echoes", len(v.MessageEchoes))

	inCalls := c.Field == "calls"
	for i := range v.Statuses {
		p.status(&v.Statuses[i], i, len(v.Statuses), inCalls)
	}
	for i := range v.Messages {
		p.message(&v.Messages[i], i, len(v.Messages))
	}
	for i := range v.Calls {
		p.call(&v.Calls[i], i, len(v.Calls))
	}
	for i := range v.UserPreferences {
		p.preference(&v.UserPreferences[i], i, len(v.UserPreferences))
	}
}

func (p *parser) count(reason string, n int) {
	if n > 0 {
		p.st.add(reason)
		p.st.Skipped[reason] += n - 1
	}
}

func (p *parser) status(s *wireStatus, i, n int, inCalls bool) {
	if inCalls || s.Type == "call" {
		// RINGING/ACCEPTED/REJECTED of a business-initiated call.
		p.st.add("call_status")
		return
	}
	if s.RecipientType == "group" {
		p.st.add("group_status")
		return
	}
	if s.ID == "" {
		p.st.add("missing_id")
		return
	}
	var status sgv1.MessageStatus
	switch s.Status {
	case "sent":
		status = sgv1.MessageStatus_MESSAGE_STATUS_SENT
	case "delivered":
		status = sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED
	case "read":
		status = sgv1.MessageStatus_MESSAGE_STATUS_READ
	case "played":
		status = sgv1.MessageStatus_MESSAGE_STATUS_PLAYED
	case "failed":
		status = sgv1.MessageStatus_MESSAGE_STATUS_FAILED
	case "deleted", "warning":
		p.st.add("ignored_status:" + s.Status)
		return
	case "":
		p.st.add("missing_status")
		return
	default:
		p.st.addValue("unknown_status:", s.Status, nil)
		return
	}
	e := Event{
		Kind:         KindStatus,
		Phone:        s.RecipientID,
		UserID:       s.RecipientUserID,
		ParentUserID: s.RecipientParentUserID,
		MessageID:    s.ID,
		Status:       status,
		Category:     category(s.Pricing.Category, s.Conversation.Origin.Type),
		CallbackData: s.CallbackData,
	}
	if c := s.Pricing.Category; len(c) <= MaxShortLen && !hasControl(c) {
		e.PricingCategory = c
	}
	if status == sgv1.MessageStatus_MESSAGE_STATUS_FAILED && len(s.Errors) > 0 {
		first := &s.Errors[0]
		switch first.Code.state {
		case valid:
			e.ErrorCode = first.Code.n
		case invalid:
			p.st.add("bad_error_code")
		}
		e.ErrorTitle = first.Title
		if e.ErrorTitle == "" {
			e.ErrorTitle = first.Message
		}
		e.ErrorDetails = first.ErrorData.Details
	}
	p.emit(&e, s.Timestamp, i, n)
}

func (p *parser) message(m *wireMessage, i, n int) {
	if m.GroupID != "" {
		p.st.add("group_message")
		return
	}
	if m.Type == "system" {
		p.system(m, i, n)
		return
	}
	if m.ID == "" {
		p.st.add("missing_id")
		return
	}
	e := Event{
		Kind:         KindMessage,
		Phone:        m.From,
		UserID:       m.FromUserID,
		ParentUserID: m.FromParentUserID,
		MessageID:    m.ID,
		MessageType:  m.Type,
		Referral:     m.Referral != nil,
	}
	switch m.Type {
	case "text":
		e.Text = m.Text.Body
	case "button":
		e.Text, e.ButtonPayload = m.Button.Text, m.Button.Payload
	case "interactive":
		e.Text, e.ButtonPayload = m.Interactive.ButtonReply.Title, m.Interactive.ButtonReply.ID
		if e.Text == "" && e.ButtonPayload == "" {
			e.Text = m.Interactive.ListReply.Title
		}
	}
	p.emit(&e, m.Timestamp, i, n)
}

// system reads a system message: a notice, not the user writing. The user
// changing number (user_changed_number: from is the old number, system.wa_id
// the new, and since 2026 system.previous_user_id and system.user_id the old
// and new BSUID) or only BSUID (user_changed_user_id) is a KindIdentityChange;
// any other system message is counted as "system_message".
func (p *parser) system(m *wireMessage, i, n int) {
	sys := &m.System
	e := Event{Kind: KindIdentityChange, MessageID: m.ID, MessageType: sys.Type}
	switch sys.Type {
	case "user_changed_number":
		e.Phone, e.UserID = m.From, sys.PreviousUserID
		if e.UserID == "" {
			e.UserID = m.FromUserID
		}
		e.NewPhone, e.NewUserID = sys.WaID, sys.UserID
		if e.NewPhone == "" {
			e.NewPhone = sys.NewWaID
		}
		if e.NewPhone == "" {
			p.st.add("missing_recipient")
			return
		}
	case "user_changed_user_id":
		e.Phone, e.UserID, e.NewUserID = m.From, sys.PreviousUserID, sys.UserID
		if e.UserID == "" || e.NewUserID == "" {
			p.st.add("missing_recipient")
			return
		}
		if looksLikeUserID(e.Phone) {
			e.Phone = "" // a from that is the BSUID itself
		}
	default:
		p.st.add("system_message")
		return
	}
	if m.ID == "" {
		p.st.add("missing_id")
		return
	}
	if len(e.NewPhone) > MaxPhoneLen || len(e.NewUserID) > MaxUserIDLen {
		p.st.add("field_too_long")
		return
	}
	if hasControl(e.NewPhone) || hasControl(e.NewUserID) {
		p.st.add("bad_field")
		return
	}
	p.emit(&e, m.Timestamp, i, n)
}

func (p *parser) call(c *wireCall, i, n int) {
	switch {
	case strings.EqualFold(c.Direction, "USER_INITIATED"):
	case strings.EqualFold(c.Direction, "BUSINESS_INITIATED"):
		p.st.add("business_initiated_call")
		return
	default:
		p.st.addValue("unknown_call_direction:", c.Direction, nil)
		return
	}
	switch c.Event {
	case "connect", "terminate":
	default:
		p.st.addValue("unknown_call_event:", c.Event, nil)
		return
	}
	if c.ID == "" {
		p.st.add("missing_id")
		return
	}
	e := Event{
		Kind:         KindCall,
		Phone:        c.From,
		UserID:       c.FromUserID,
		ParentUserID: c.FromParentUserID,
		MessageID:    c.ID,
		MessageType:  c.Event,
	}
	p.emit(&e, c.Timestamp, i, n)
}

func (p *parser) preference(u *wirePreference, i, n int) {
	var stop bool
	switch u.Value {
	case "stop":
		stop = true
	case "resume":
	default:
		p.st.addValue("unknown_preference:", u.Value, nil)
		return
	}
	e := Event{
		Kind:               KindUserPreference,
		Phone:              u.WaID,
		UserID:             u.UserID,
		ParentUserID:       u.ParentUserID,
		PreferenceStop:     stop,
		PreferenceCategory: u.Category,
	}
	p.emit(&e, u.Timestamp, i, n)
}

// emit completes e with the change's phone_number_id, the matching contact
// and the timestamp, checks its fields, and appends it or counts why not.
// i and n are e's position in its array and the array's length.
func (p *parser) emit(e *Event, ts flexTime, i, n int) {
	if p.pnidProblem != "" {
		p.st.add(p.pnidProblem)
		return
	}
	e.PhoneNumberID = p.phoneNumberID
	p.moveUserIDOutOfPhone(e)
	if c := p.contacts.find(e.Phone, e.UserID, i, n); c != nil {
		if e.Phone == "" {
			e.Phone = c.WaID
		}
		if e.UserID == "" {
			e.UserID = c.UserID
		}
		if e.ParentUserID == "" {
			e.ParentUserID = c.ParentUserID
		}
		e.Username = c.Profile.Username
	}
	if e.Phone == "" && e.UserID == "" {
		p.st.add("missing_recipient")
		return
	}
	for _, f := range [...]struct {
		v   string
		max int
	}{
		{e.Phone, MaxPhoneLen},
		{e.UserID, MaxUserIDLen},
		{e.ParentUserID, MaxUserIDLen},
		{e.MessageID, MaxMessageIDLen},
	} {
		if len(f.v) > f.max {
			p.st.add("field_too_long")
			return
		}
		if hasControl(f.v) {
			p.st.add("bad_field")
			return
		}
	}
	if len(p.events) >= MaxEvents {
		p.st.add("too_many_events")
		return
	}
	p.drop(&e.Username, "username", MaxShortLen)
	p.drop(&e.MessageType, "message_type", MaxShortLen)
	p.drop(&e.PreferenceCategory, "preference_category", MaxShortLen)
	p.drop(&e.Text, "text", MaxTextLen)
	p.drop(&e.ButtonPayload, "button_payload", MaxButtonPayloadLen)
	p.drop(&e.CallbackData, "callback_data", MaxCallbackDataLen)
	p.drop(&e.ErrorTitle, "error_title", MaxErrorTextLen)
	p.drop(&e.ErrorDetails, "error_details", MaxErrorTextLen)
	switch ts.state {
	case valid:
		e.Timestamp = time.Unix(ts.sec, 0).UTC()
	case invalid:
		p.st.add("bad_timestamp")
	}
	p.events = append(p.events, *e)
}

// drop empties a descriptive field longer than maxLen, and counts it.
func (p *parser) drop(f *string, name string, maxLen int) {
	if len(*f) > maxLen {
		*f = ""
		p.st.add("field_dropped:" + name)
	}
}

// moveUserIDOutOfPhone handles a recipient_id or from that holds a BSUID
// rather than a number (a message sent to a BSUID, a user hiding the
// number): it becomes the UserID, or the ParentUserID for a parent BSUID.
func (p *parser) moveUserIDOutOfPhone(e *Event) {
	id := e.Phone
	if !looksLikeUserID(id) {
		return
	}
	e.Phone = ""
	switch {
	case e.UserID == "" && !isParentUserID(id):
		e.UserID = id
	case e.ParentUserID == "" && isParentUserID(id):
		e.ParentUserID = id
	case id == e.UserID || id == e.ParentUserID:
	default:
		p.st.add("field_dropped:phone")
	}
}

// looksLikeUserID reports whether s starts like a BSUID ("BR.1502…"): two
// upper-case letters and a dot. Phone numbers in webhooks are digits.
func looksLikeUserID(s string) bool {
	return len(s) >= 4 && isUpper(s[0]) && isUpper(s[1]) && s[2] == '.'
}

func isParentUserID(s string) bool { return strings.HasPrefix(s[3:], "ENT.") }

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// hasControl reports whether s holds an ASCII control character (NUL
// separates key parts in storage).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// category maps pricing.category (or, in older bodies, the conversation
// origin type) to a Category.
func category(pricing, origin string) sgv1.Category {
	c := pricing
	if c == "" {
		c = origin
	}
	switch c {
	case "marketing", "marketing_lite":
		return sgv1.Category_CATEGORY_MARKETING
	case "utility":
		return sgv1.Category_CATEGORY_UTILITY
	case "authentication", "authentication_international":
		return sgv1.Category_CATEGORY_AUTHENTICATION
	case "service", "referral_conversion":
		return sgv1.Category_CATEGORY_SERVICE
	}
	return sgv1.Category_CATEGORY_UNSPECIFIED
}

// contacts finds the value.contacts[] entry that describes a user.
type contacts struct {
	list     []wireContact
	byWaID   map[string]int
	byUserID map[string]int
}

// indexAbove is the number of contacts above which lookups use maps.
const indexAbove = 8

// find returns the contact whose wa_id is phone or whose user_id is userID;
// failing that, the one at the same position (i of n items, or the only
// contact), if it does not contradict phone or userID. Nil if none.
func (c *contacts) find(phone, userID string, i, n int) *wireContact {
	if len(c.list) == 0 {
		return nil
	}
	if len(c.list) > indexAbove && c.byWaID == nil {
		c.byWaID = make(map[string]int, len(c.list))
		c.byUserID = make(map[string]int, len(c.list))
		for k := len(c.list) - 1; k >= 0; k-- { // the first of duplicates wins
			if w := c.list[k].WaID; w != "" {
				c.byWaID[w] = k
			}
			if u := c.list[k].UserID; u != "" {
				c.byUserID[u] = k
			}
		}
	}
	if phone != "" {
		if k, ok := c.lookup(c.byWaID, phone, func(x *wireContact) string { return x.WaID }); ok {
			return &c.list[k]
		}
	}
	if userID != "" {
		if k, ok := c.lookup(c.byUserID, userID, func(x *wireContact) string { return x.UserID }); ok {
			return &c.list[k]
		}
	}
	var cand *wireContact
	switch {
	case len(c.list) == n:
		cand = &c.list[i]
	case len(c.list) == 1:
		cand = &c.list[0]
	default:
		return nil
	}
	if phone != "" && cand.WaID != "" && cand.WaID != phone ||
		userID != "" && cand.UserID != "" && cand.UserID != userID {
		return nil
	}
	return cand
}

func (c *contacts) lookup(index map[string]int, key string, field func(*wireContact) string) (int, bool) {
	if index != nil {
		k, ok := index[key]
		return k, ok
	}
	for k := range c.list {
		if field(&c.list[k]) == key {
			return k, true
		}
	}
	return 0, false
}

// accountUpdate reads an account_update change: the restrictions of an
// ACCOUNT_RESTRICTION and the ban state of a DISABLED_UPDATE. Other events are
// counted by name.
func (p *parser) accountUpdate(v *wireValue) {
	switch v.Event {
	case "ACCOUNT_RESTRICTION":
		if len(v.RestrictionInfo) == 0 {
			p.st.add("empty_restriction_info")
			return
		}
		for i := range v.RestrictionInfo {
			r := &v.RestrictionInfo[i]
			e := Event{Kind: KindAccountRestriction, Restriction: r.Type}
			switch r.Expiration.state {
			case valid:
				e.RestrictionEnds = time.Unix(r.Expiration.sec, 0).UTC()
			case invalid:
				p.st.add("bad_timestamp")
			}
			p.emitAccount(&e, r.Type, "missing_restriction_type")
		}
	case "DISABLED_UPDATE":
		e := Event{Kind: KindAccountBan, BanState: v.BanInfo.State}
		p.emitAccount(&e, v.BanInfo.State, "missing_ban_state")
	default:
		p.st.addValue("account_event:", strings.ToLower(v.Event), knownAccountEvents)
	}
}

// emitAccount completes an account event with its entry's WABA id and time,
// checks them and what (the restriction type or ban state, missing: counted as
// missing), and appends it or counts why not.
func (p *parser) emitAccount(e *Event, what, missing string) {
	id := p.entry.ID
	switch {
	case id == "":
		p.st.add("missing_waba_id")
		return
	case what == "":
		p.st.add(missing)
		return
	case len(id) > MaxPhoneNumberIDLen || len(what) > MaxShortLen:
		p.st.add("field_too_long")
		return
	case hasControl(id) || hasControl(what):
		p.st.add("bad_field")
		return
	case len(p.events) >= MaxEvents:
		p.st.add("too_many_events")
		return
	}
	e.WABAID = id
	switch p.entry.Time.state {
	case valid:
		e.Timestamp = time.Unix(p.entry.Time.sec, 0).UTC()
	case invalid:
		p.st.add("bad_timestamp")
	}
	p.events = append(p.events, *e)
}

// templateStatus reads a message_template_status_update: PAUSED, DISABLED,
// APPROVED and REINSTATED change whether the template may be sent; other
// events are counted by name.
func (p *parser) templateStatus(v *wireValue) {
	switch v.Event {
	case "PAUSED", "DISABLED", "APPROVED", "REINSTATED":
	default:
		p.st.addValue("template_event:", strings.ToLower(v.Event), knownTemplateEvents)
		return
	}
	if !p.templateFields(v) {
		return
	}
	e := Event{Kind: KindTemplateStatus, Template: v.TemplateName, TemplateLanguage: v.TemplateLanguage,
		TemplateEvent: v.Event, PauseTitle: v.OtherInfo.Title}
	if len(e.PauseTitle) > MaxShortLen || hasControl(e.PauseTitle) {
		e.PauseTitle = ""
	}
	p.emitAccount(&e, v.Event, "")
}

// templateCategory reads a template_category_update: the completed form
// (previous_category, new_category) or the impending one (correct_category
// from category_update_timestamp).
func (p *parser) templateCategory(v *wireValue) {
	if !p.templateFields(v) {
		return
	}
	e := Event{Kind: KindTemplateCategory, Template: v.TemplateName, TemplateLanguage: v.TemplateLanguage,
		PreviousCategory: v.PreviousCategory, NewCategory: v.NewCategory, CorrectCategory: v.CorrectCategory}
	what := e.NewCategory
	if e.CorrectCategory != "" {
		what = e.CorrectCategory
		switch v.CategoryUpdateTimestamp.state {
		case valid:
			e.CategoryUpdateAt = time.Unix(v.CategoryUpdateTimestamp.sec, 0).UTC()
		case invalid:
			p.st.add("bad_timestamp")
		}
	}
	if len(e.PreviousCategory) > MaxShortLen || len(e.NewCategory) > MaxShortLen || len(e.CorrectCategory) > MaxShortLen {
		p.st.add("field_too_long")
		return
	}
	p.emitAccount(&e, what, "category_update:none")
}

// templateFields checks a template update's name and language, counting why
// not when they are unusable.
func (p *parser) templateFields(v *wireValue) bool {
	switch {
	case v.TemplateName == "":
		p.st.add("missing_template_name")
		return false
	case len(v.TemplateName) > MaxShortLen || len(v.TemplateLanguage) > MaxShortLen:
		p.st.add("field_too_long")
		return false
	case hasControl(v.TemplateName) || hasControl(v.TemplateLanguage):
		p.st.add("bad_field")
		return false
	}
	return true
}

// capability reads a business_capability_update: the business's messaging
// limit (max_daily_conversations_per_business, or the older
// max_daily_conversation_per_phone).
func (p *parser) capability(v *wireValue) {
	tier := v.MaxPerBusiness
	if tier.state != valid {
		tier = v.MaxPerPhone
	}
	if v.MaxPerBusiness.state == invalid || v.MaxPerPhone.state == invalid {
		p.st.add("type_mismatch")
	}
	what := ""
	if tier.state == valid {
		what = "limit"
	}
	e := Event{Kind: KindCapability, Tier: tier.n}
	p.emitAccount(&e, what, "missing_limit")
}

// quality reads a phone_number_quality_update: its event, the number as
// displayed, and the business's limit when it carries one.
func (p *parser) quality(v *wireValue) {
	ev := "other"
	for _, q := range QualityEvents {
		if v.Event == q {
			ev = q
		}
	}
	if v.Event == "" {
		ev = ""
	}
	e := Event{Kind: KindQuality, QualityEvent: ev, DisplayPhoneNumber: v.DisplayPhoneNumber, CurrentLimit: v.CurrentLimit}
	if v.MaxPerBusiness.state == valid {
		e.Tier = v.MaxPerBusiness.n
	}
	if len(e.DisplayPhoneNumber) > MaxPhoneLen || hasControl(e.DisplayPhoneNumber) {
		e.DisplayPhoneNumber = ""
	}
	if len(e.CurrentLimit) > MaxShortLen || hasControl(e.CurrentLimit) {
		e.CurrentLimit = ""
	}
	p.emitAccount(&e, ev, "quality_event:none")
}
