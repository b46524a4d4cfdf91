package validator

import (
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// FREQUENCY_CAP and TEMPLATE_REPEAT count the business's own sends, past and
// planned (a reservation for a later time counts too).
//
// "At most Count sends in any window of length Window" with half-open windows
// [s, s+Window): a send at T is allowed iff no window containing T already holds
// Count counted sends. Count sends a_i <= ... <= a_j (j = i+Count-1) and T fit in one
// window iff max(a_j, T) - min(a_i, T) < Window, so each run of Count consecutive
// sends with a_j - a_i < Window blocks the open interval (a_j - Window, a_i + Window),
// and the earliest allowed time at or after t is found in one pass over the runs
// (their ends only grow). With Count 1 and Window 1 day, a send at 10:00 frees the
// next day at 10:00 exactly.

// earliestFree returns the earliest T >= t that no run of count consecutive sends in
// times (sorted) blocks for window w.
func earliestFree(times []time.Time, count int, w time.Duration, t time.Time) time.Time {
	for i := 0; i+count-1 < len(times); i++ {
		a, b := times[i], times[i+count-1]
		if t.Sub(b) <= -w {
			// t is at or before this run's interval, and every later run's interval
			// starts later still (t moves only when inside one).
			break
		}
		if t.Sub(a) < w && b.Sub(a) < w {
			t = a.Add(w)
		}
	}
	return t
}

// sortTimes sorts a few times in place. Sends are kept sorted; this only guards
// against a stored history that is not.
func sortTimes(ts []time.Time) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Before(ts[j-1]); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// counted collects the times of the sends that count toward the business's own
// frequency caps: marketing, not failed.
func counted(rel *Relationship, buf []time.Time) []time.Time {
	sorted := true
	for i := range rel.Sends {
		s := &rel.Sends[i]
		if !countsForCaps(s) {
			continue
		}
		if n := len(buf); n > 0 && s.At.Before(buf[n-1]) {
			sorted = false
		}
		buf = append(buf, s.At)
	}
	if !sorted {
		sortTimes(buf)
	}
	return buf
}

// countsForCaps reports whether a send counts toward the business's own frequency
// caps: marketing, not failed.
func countsForCaps(s *Send) bool { return s.Category == marketing && !s.Failed }

func capOn(c Cap) bool { return c.Count > 0 && c.Window > 0 }

// frequencyCap is FREQUENCY_CAP. Until is the earliest time every cap lets one
// more send through (exact: caps are applied in turn until none moves it).
func frequencyCap(in *Input, t time.Time, h *hit) bool {
	caps := in.Policy.FrequencyCaps
	if in.Check.Category != marketing || len(caps) == 0 {
		return false
	}
	var buf [BaseSends]time.Time // longer histories spill to the heap
	times := counted(in.Rel, buf[:0])
	if len(times) == 0 {
		return false
	}
	// Apply the caps in turn until none moves u. Each move lands on the end of some
	// run's interval and only goes forward, so this ends; the bound is a guard.
	// The first cap to move u away from t is the first that blocks at t.
	first, u := -1, t
	for range len(caps)*len(times) + 1 {
		moved := false
		for i, c := range caps {
			if !capOn(c) {
				continue
			}
			if v := earliestFree(times, c.Count, c.Window, u); v.After(u) {
				if first < 0 {
					first = i
				}
				u, moved = v, true
			}
		}
		if !moved {
			break
		}
	}
	if first < 0 {
		return false
	}
	c := caps[first]
	*h = hit{rule: sgv1.Rule_RULE_FREQUENCY_CAP, verdict: deferV, until: u, n: c.Count, d: c.Window}
	return true
}

// templateRepeat is TEMPLATE_REPEAT: the same marketing template to the same number
// at most once per TemplateRepeatWindow (a failed send does not count; a planned
// one does).
func templateRepeat(in *Input, t time.Time, h *hit) bool {
	c, w := &in.Check, in.Policy.TemplateRepeatWindow
	if c.Category != marketing || c.Template == "" || w <= 0 {
		return false
	}
	var buf [BaseSends]time.Time // longer histories spill to the heap
	times := buf[:0]
	sorted := true
	var near time.Time // the latest matching send within the window of t
	for i := range in.Rel.Sends {
		s := &in.Rel.Sends[i]
		if s.Failed || s.Template != c.Template {
			continue
		}
		if n := len(times); n > 0 && s.At.Before(times[n-1]) {
			sorted = false
		}
		times = append(times, s.At)
		if d := s.At.Sub(t); d > -w && d < w && s.At.After(near) {
			near = s.At
		}
	}
	if near.IsZero() {
		return false
	}
	if !sorted {
		sortTimes(times)
	}
	*h = hit{
		rule: sgv1.Rule_RULE_TEMPLATE_REPEAT, verdict: deferV,
		until: earliestFree(times, 1, w, t), at: near, d: w,
	}
	return true
}
