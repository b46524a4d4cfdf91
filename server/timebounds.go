package server

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/validator"
)

// Times from requests are taken as given within bounds (DESIGN.md "Time"):
// backfills need the past and planning needs the future, but an event dated
// years ahead would hold a contact's state until then (a service window or a
// cooldown "until 2262"), and a plan years ahead is a mistake.

// eventTime is the time of a reported event: its timestamp, or now when it has
// none. A timestamp more than Config.MaxEventSkew after now is INVALID_ARGUMENT.
func (s *Server) eventTime(ts *timestamppb.Timestamp, now time.Time) (time.Time, error) {
	if ts == nil {
		return now, nil
	}
	at := ts.AsTime()
	if at.Sub(now) > s.cfg.MaxEventSkew {
		return time.Time{}, invalidArg("timestamp %s is more than %s (max_event_skew) after the server's clock (%s)",
			at.Format(time.RFC3339), validator.FormatDuration(s.cfg.MaxEventSkew), now.UTC().Format(time.RFC3339))
	}
	return at, nil
}

// sendTime is the time a check judges: send_at, or now when it is not set. A
// send_at more than Config.MaxPlanAhead after now is INVALID_ARGUMENT.
func (s *Server) sendTime(ts *timestamppb.Timestamp, now time.Time) (time.Time, error) {
	if ts == nil {
		return now, nil
	}
	at := ts.AsTime()
	if at.Sub(now) > s.cfg.MaxPlanAhead {
		return time.Time{}, invalidArg("send_at %s is more than %s (max_plan_ahead) after the server's clock (%s)",
			at.Format(time.RFC3339), validator.FormatDuration(s.cfg.MaxPlanAhead), now.UTC().Format(time.RFC3339))
	}
	return at, nil
}
