package codec

import (
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
	sendFlags     = sendFailed | sendReached | sendDelivered | sendInferred
)

// Smallest encodings of a list element, used to bound list lengths on decode.
const (
	minSendSize  = 7 // At, Ref, MessageID, Category, Template, CampaignID, flags
	minEventSize = 2 // At, Text
)

// AppendRelationship appends the encoding of r to dst and returns the extended
// slice. r holds at most validator.MaxSends sends and validator.MaxEvents events
// (the validator keeps them so; DecodeRelationship refuses more). Pass a reused
// buffer's [:0] to encode without allocating.
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
	return dst
}

// DecodeRelationship decodes b into r, replacing all of r. On error r is zeroed.
// r keeps no reference to b. Empty lists decode as nil.
func DecodeRelationship(b []byte, r *validator.Relationship) error {
	d := decoder{b: b}
	d.version("relationship")
	*r = validator.Relationship{
		MetaStopAt:     d.time("MetaStopAt"),
		MetaResumeAt:   d.time("MetaResumeAt"),
		OwnStopAt:      d.time("OwnStopAt"),
		OwnStopReason:  d.string("OwnStopReason"),
		OwnStartAt:     d.time("OwnStartAt"),
		OwnStartReason: d.string("OwnStartReason"),
		LastInboundAt:  d.time("LastInboundAt"),
		WindowClosedAt: d.time("WindowClosedAt"),
	}

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

	if err := d.finish("relationship"); err != nil {
		*r = validator.Relationship{}
		return err
	}
	return nil
}
