package codec

import (
	"fmt"
	"slices"
	"strings"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator"
)

// Send.Failed, Send.Reached, Send.Delivered and Send.Inferred are packed into
// one flags byte. (Inferred came with issue 14; sends written before it have a
// known time, which is what the zero bit says.)
const (
	sendFailed    = 1 << 0
	sendReached   = 1 << 1
	sendDelivered = 1 << 2
	sendInferred  = 1 << 3
	sendSlot      = 1 << 4 // issue 14: the reservation took a messaging-limit slot
	sendFlags     = sendFailed | sendReached | sendDelivered | sendInferred | sendSlot
)

// Smallest encodings of a list element, used to bound list lengths on decode.
const (
	minSendSize   = 7  // At, Ref, MessageID, Category, Template, CampaignID, flags
	minEventSize  = 2  // At, Text
	minSenderSize = 10 // Sender and the nine fields of a SenderState
)

// AppendRelationship appends the encoding of r to dst and returns the extended
// slice. r holds at most validator.MaxSends sends, validator.MaxEvents events
// and validator.MaxSenders named senders (the validator keeps them so;
// DecodeRelationship refuses more). Pass a reused buffer's [:0] to encode
// without allocating.
//
// The implicit sender's state is written where the relationship's window,
// pair rate and Meta opt-out were written before senders were kept apart
// (issue 14), and what came with senders (the named senders, each send's
// sender, the free entry point) in a trailer after the events, only when
// there is any: a relationship that never heard of a sender encodes as it did
// before, and a record written before decodes as the implicit sender's state.
// Later additions are sections after the trailer (see section), which is then
// written even when empty.
func AppendRelationship(dst []byte, r *validator.Relationship) []byte {
	dst = append(dst, Version)
	dst = appendTime(dst, r.MetaStopAt)
	dst = appendTime(dst, r.MetaResumeAt)
	dst = appendTime(dst, r.OwnStopAt)
	dst = appendString(dst, r.OwnStopReason)
	dst = appendTime(dst, r.OwnStartAt)
	dst = appendString(dst, r.OwnStartReason)
	dst = appendTime(dst, r.LastInboundAt)
	dst = appendTime(dst, r.WindowClosedAt)

	dst = appendUint(dst, len(r.Sends))
	for i := range r.Sends {
		s := &r.Sends[i]
		dst = appendTime(dst, s.At)
		dst = appendString(dst, s.Ref)
		dst = appendString(dst, s.MessageID)
		dst = appendInt(dst, int(s.Category))
		dst = appendString(dst, s.Template)
		dst = appendString(dst, s.CampaignID)
		var flags byte
		if s.Failed {
			flags |= sendFailed
		}
		if s.Reached {
			flags |= sendReached
		}
		if s.Delivered {
			flags |= sendDelivered
		}
		if s.Inferred {
			flags |= sendInferred
		}
		if s.Slot {
			flags |= sendSlot
		}
		dst = append(dst, flags)
	}

	dst = appendTime(dst, r.PairTAT)
	dst = appendInt(dst, r.PairStreak)
	dst = appendTime(dst, r.PairLimitedAt)
	dst = appendString(dst, r.UserID)
	dst = appendString(dst, r.WaID)
	dst = appendFacts(dst, &r.Local)

	dst = appendUint(dst, len(r.Events))
	for i := range r.Events {
		dst = appendTime(dst, r.Events[i].At)
		dst = appendString(dst, r.Events[i].Text)
	}
	dst = appendSenders(dst, r)
	return appendSections(dst, r)
}

// A section is an optional part of a relationship written after the senders'
// trailer: a tag byte and the section's fields, written only when the section
// has something to write. Sections are written in tag order, each at most
// once; a record written before a section existed decodes with that section's
// fields zero (or as absentSection reads it), and a decoder refuses a tag it
// does not know (a record written by a newer build is not read as if it held
// less). Add a field that older records lack as a new section (or to a section
// of your own), never in the middle of the encoding.
//
// The sections are dispatched by switch, not through a table of functions:
// an indirect call would move every decoded relationship (and the contact
// holding it) to the heap.
const (
	sectionConsent   = 'c' // consent.go
	sectionLanguages = 't' // each send's template language
)

// sections are the tags written, in ascending order (a test sets it to nil to
// write a record as a build before sections wrote it).
var sections = []byte{sectionConsent, sectionLanguages}

// sectionPresent reports whether r has something to write in section tag.
func sectionPresent(tag byte, r *validator.Relationship) bool {
	switch tag {
	case sectionConsent:
		return needsConsentSection(r)
	case sectionLanguages:
		return sendLanguagesPresent(r)
	}
	panic(fmt.Sprintf("codec: no section %q", tag))
}

// appendSection appends section tag's fields (not its tag).
func appendSection(dst []byte, tag byte, r *validator.Relationship) []byte {
	switch tag {
	case sectionConsent:
		return appendConsent(dst, r)
	case sectionLanguages:
		return appendSendLanguages(dst, r)
	}
	panic(fmt.Sprintf("codec: no section %q", tag))
}

// decodeSection reads section tag's fields.
func decodeSection(d *decoder, tag byte, r *validator.Relationship) {
	switch tag {
	case sectionConsent:
		decodeConsent(d, r)
	case sectionLanguages:
		decodeSendLanguages(d, r)
	default:
		panic(fmt.Sprintf("codec: no section %q", tag))
	}
}

// absentSection reads what a record without section tag (written before it
// existed, or with nothing to write) meant in the section's terms.
func absentSection(tag byte, r *validator.Relationship) {
	if tag == sectionConsent {
		upgradeConsent(r)
	}
}

// Section 't': each send's template language (Send.Language), in send order;
// written when any send has one.

func sendLanguagesPresent(r *validator.Relationship) bool {
	for i := range r.Sends {
		if r.Sends[i].Language != "" {
			return true
		}
	}
	return false
}

func appendSendLanguages(dst []byte, r *validator.Relationship) []byte {
	for i := range r.Sends {
		dst = appendString(dst, r.Sends[i].Language)
	}
	return dst
}

func decodeSendLanguages(d *decoder, r *validator.Relationship) {
	for i := range r.Sends {
		r.Sends[i].Language = d.string("Send.Language")
	}
}

// hasSections reports whether any section of r is written.
func hasSections(r *validator.Relationship) bool {
	for _, tag := range sections {
		if sectionPresent(tag, r) {
			return true
		}
	}
	return false
}

func appendSections(dst []byte, r *validator.Relationship) []byte {
	for _, tag := range sections {
		if sectionPresent(tag, r) {
			dst = append(dst, tag)
			dst = appendSection(dst, tag, r)
		}
	}
	return dst
}

// decodeSections reads the sections that follow the senders' trailer, and
// reads each section the record lacks with absentSection.
func decodeSections(d *decoder, r *validator.Relationship) {
	next := 0 // allSections[next:] may still follow
	for d.err == nil && d.off < len(d.b) {
		i := d.sectionTag("relationship", allSections[:], next)
		if i < 0 {
			return
		}
		for _, skipped := range allSections[next:i] {
			absentSection(skipped, r)
		}
		decodeSection(d, allSections[i], r)
		next = i + 1
	}
	if d.err == nil {
		for _, skipped := range allSections[next:] {
			absentSection(skipped, r)
		}
	}
}

// allSections are the tags this build reads, in ascending order.
var allSections = [...]byte{sectionConsent, sectionLanguages}

// appendSenders appends the trailer: the implicit sender's free entry point,
// the named senders' states, and (when there are named senders) each send's
// sender as an index (0 the implicit sender, i+1 Senders[i]). A send's sender
// that is not among Senders is written as the implicit sender (the validator
// keeps none such).
func appendSenders(dst []byte, r *validator.Relationship) []byte {
	if len(r.Senders) == 0 && r.ReferralAt.IsZero() && r.FreeEntryAt.IsZero() && !hasSections(r) {
		return dst
	}
	dst = appendTime(dst, r.ReferralAt)
	dst = appendTime(dst, r.FreeEntryAt)
	dst = appendUint(dst, len(r.Senders))
	for i := range r.Senders {
		st := &r.Senders[i]
		dst = appendString(dst, st.Sender)
		dst = appendTime(dst, st.MetaStopAt)
		dst = appendTime(dst, st.MetaResumeAt)
		dst = appendTime(dst, st.LastInboundAt)
		dst = appendTime(dst, st.WindowClosedAt)
		dst = appendTime(dst, st.ReferralAt)
		dst = appendTime(dst, st.FreeEntryAt)
		dst = appendTime(dst, st.PairTAT)
		dst = appendInt(dst, st.PairStreak)
		dst = appendTime(dst, st.PairLimitedAt)
	}
	if len(r.Senders) == 0 {
		return dst
	}
	for i := range r.Sends {
		dst = appendUint(dst, senderIndex(r.Senders, r.Sends[i].Sender))
	}
	return dst
}

// senderIndex is the trailer's index of a send's sender.
func senderIndex(senders []validator.SenderState, sender string) int {
	if sender == "" {
		return 0
	}
	i, found := slices.BinarySearchFunc(senders, sender, func(s validator.SenderState, id string) int {
		return strings.Compare(s.Sender, id)
	})
	if !found {
		return 0
	}
	return i + 1
}

// decodeSenders reads the trailer, if any. Named senders must be sorted,
// distinct and not empty.
func decodeSenders(d *decoder, r *validator.Relationship) {
	if d.err != nil || d.off == len(d.b) {
		return
	}
	r.ReferralAt = d.time("ReferralAt")
	r.FreeEntryAt = d.time("FreeEntryAt")
	n := d.count("Senders", minSenderSize, validator.MaxSenders)
	if n == 0 {
		return
	}
	r.Senders = make([]validator.SenderState, n)
	for i := range r.Senders {
		st := &r.Senders[i]
		st.Sender = d.string("Sender")
		if st.Sender == "" || i > 0 && st.Sender <= r.Senders[i-1].Sender {
			d.fail("Sender order")
		}
		st.MetaStopAt = d.time("Sender.MetaStopAt")
		st.MetaResumeAt = d.time("Sender.MetaResumeAt")
		st.LastInboundAt = d.time("Sender.LastInboundAt")
		st.WindowClosedAt = d.time("Sender.WindowClosedAt")
		st.ReferralAt = d.time("Sender.ReferralAt")
		st.FreeEntryAt = d.time("Sender.FreeEntryAt")
		st.PairTAT = d.time("Sender.PairTAT")
		st.PairStreak = d.int("Sender.PairStreak")
		st.PairLimitedAt = d.time("Sender.PairLimitedAt")
	}
	for i := range r.Sends {
		k := d.uvarint("Send.Sender")
		switch {
		case k > uint64(n):
			d.fail("Send.Sender")
		case k > 0:
			r.Sends[i].Sender = r.Senders[k-1].Sender
		}
	}
}

// DecodeRelationship decodes b into r, replacing all of r. On error r is zeroed.
// r keeps no reference to b. Empty lists decode as nil.
func DecodeRelationship(b []byte, r *validator.Relationship) error {
	d := decoder{b: b}
	d.version("relationship")
	*r = validator.Relationship{}
	r.MetaStopAt = d.time("MetaStopAt")
	r.MetaResumeAt = d.time("MetaResumeAt")
	r.OwnStopAt = d.time("OwnStopAt")
	r.OwnStopReason = d.string("OwnStopReason")
	r.OwnStartAt = d.time("OwnStartAt")
	r.OwnStartReason = d.string("OwnStartReason")
	r.LastInboundAt = d.time("LastInboundAt")
	r.WindowClosedAt = d.time("WindowClosedAt")

	if n := d.count("Sends", minSendSize, validator.MaxSends); n > 0 {
		r.Sends = make([]validator.Send, n)
		for i := range r.Sends {
			s := &r.Sends[i]
			s.At = d.time("Send.At")
			s.Ref = d.string("Send.Ref")
			s.MessageID = d.string("Send.MessageID")
			s.Category = sgv1.Category(d.int32("Send.Category"))
			s.Template = d.string("Send.Template")
			s.CampaignID = d.string("Send.CampaignID")
			flags := d.byte("Send flags")
			if flags&^sendFlags != 0 {
				d.fail("Send flags")
			}
			s.Failed = flags&sendFailed != 0
			s.Reached = flags&sendReached != 0
			s.Delivered = flags&sendDelivered != 0
			s.Inferred = flags&sendInferred != 0
			s.Slot = flags&sendSlot != 0
		}
	}

	r.PairTAT = d.time("PairTAT")
	r.PairStreak = d.int("PairStreak")
	r.PairLimitedAt = d.time("PairLimitedAt")
	r.UserID = d.string("UserID")
	r.WaID = d.string("WaID")
	r.Local = decodeFacts(&d)

	if n := d.count("Events", minEventSize, validator.MaxEvents); n > 0 {
		r.Events = make([]validator.Event, n)
		for i := range r.Events {
			r.Events[i].At = d.time("Event.At")
			r.Events[i].Text = d.string("Event.Text")
		}
	}
	decodeSenders(&d, r)
	decodeSections(&d, r)

	if err := d.finish("relationship"); err != nil {
		*r = validator.Relationship{}
		return err
	}
	return nil
}
