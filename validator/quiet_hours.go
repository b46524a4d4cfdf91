package validator

import (
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// QUIET_HOURS: no marketing during the policy's daily quiet period in the
// recipient's local time. A number that maps to several time zones is judged in
// all of them: the send waits until the quiet period is over in every zone. A
// number with no known zone is not judged (the rule does not apply).

const minutesPerDay = 24 * 60

// inQuiet reports whether minute-of-day m falls in [Start, End) (wrapping midnight
// when End < Start).
func (q *QuietHours) inQuiet(m int) bool {
	if q.Start < q.End {
		return m >= q.Start && m < q.End
	}
	return m >= q.Start || m < q.End
}

// quietEnd returns the end of the quiet period that t falls in, in zone loc, and
// whether t is quiet there at all.
func (q *QuietHours) quietEnd(loc *time.Location, t time.Time) (time.Time, bool) {
	lt := t.In(loc)
	hh, mm, ss := lt.Clock()
	m := hh*60 + mm
	if !q.inQuiet(m) {
		return time.Time{}, false
	}
	y, mo, d := lt.Date()
	if q.End < q.Start && m >= q.Start {
		d++ // the period ends tomorrow
	}
	end := time.Date(y, mo, d, q.End/60, q.End%60, 0, 0, loc)
	if !end.After(t) {
		// A daylight-saving jump made the local end time ambiguous or missing:
		// fall back to counting minutes on the local clock.
		left := (q.End - m + minutesPerDay) % minutesPerDay
		end = t.Add(time.Duration(left)*time.Minute - time.Duration(ss)*time.Second - time.Duration(lt.Nanosecond()))
		if !end.After(t) {
			end = t.Add(time.Minute)
		}
	}
	return end, true
}

// quietHours finds the earliest time >= t that is outside the quiet period in
// every zone. When the zones' quiet periods cover the whole day between them no
// such time exists; the search then stops after a bounded number of jumps and
// Until is where it stopped (a later check there gives the next one).
func quietHours(in *Input, t time.Time, h *hit) bool {
	q, zones := in.Policy.QuietHours, in.Check.Zones
	if in.Check.Category != marketing || q == nil || q.Start == q.End || len(zones) == 0 {
		return false
	}
	first := -1
	u := t
	for range 2*len(zones) + 2 {
		moved := false
		for i, z := range zones {
			if z == nil {
				continue
			}
			if end, quiet := q.quietEnd(z, u); quiet {
				if first < 0 {
					first = i
				}
				u, moved = end, true
			}
		}
		if !moved {
			break
		}
	}
	if first < 0 {
		return false
	}
	*h = hit{rule: sgv1.Rule_RULE_QUIET_HOURS, verdict: deferV, until: u, n: first}
	return true
}
