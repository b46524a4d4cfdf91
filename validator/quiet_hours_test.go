package validator

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // real zones for the daylight-saving case, whatever the machine has

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

var (
	brt = time.FixedZone("BRT", -3*3600) // São Paulo
	amt = time.FixedZone("AMT", -4*3600) // Manaus
)

func utc(day, hh, mm int) time.Time { return time.Date(2026, 11, day, hh, mm, 0, 0, time.UTC) }

func quietReason(until time.Time) string { return "DEFER QUIET_HOURS " + fmtT(until) }

func TestQuietHours(t *testing.T) {
	night := &QuietHours{Start: 21 * 60, End: 8 * 60} // 21:00-08:00, across midnight
	lunch := &QuietHours{Start: 12 * 60, End: 13 * 60}
	tests := []struct {
		name  string
		q     *QuietHours
		zones []*time.Location
		cat   sgv1.Category
		when  time.Time
		want  want
	}{
		{"morning in one zone", night, []*time.Location{brt}, mkt, utc(26, 10, 0), // 07:00 BRT
			deferred(utc(26, 11, 0), quietReason(utc(26, 11, 0)))},
		{"two zones: over in both", night, []*time.Location{brt, amt}, mkt, utc(26, 10, 0), // 07:00 BRT, 06:00 AMT
			deferred(utc(26, 12, 0), quietReason(utc(26, 12, 0)))},
		{"two zones: over in one only", night, []*time.Location{brt, amt}, mkt, utc(26, 11, 30), // 08:30 BRT, 07:30 AMT
			deferred(utc(26, 12, 0), quietReason(utc(26, 12, 0)))},
		{"the end is not quiet", night, []*time.Location{brt, amt}, mkt, utc(26, 12, 0), allowed()},
		{"evening before in both zones", night, []*time.Location{brt, amt}, mkt, utc(26, 23, 59), allowed()}, // 20:59 BRT
		{"after midnight UTC, before local midnight", night, []*time.Location{brt, amt}, mkt, utc(27, 0, 30), // 21:30 BRT, 20:30 AMT
			deferred(utc(27, 12, 0), quietReason(utc(27, 12, 0)))},
		{"after local midnight", night, []*time.Location{brt}, mkt, utc(27, 4, 0), // 01:00 BRT
			deferred(utc(27, 11, 0), quietReason(utc(27, 11, 0)))},
		{"a period within the day", lunch, []*time.Location{brt}, mkt, utc(26, 15, 30), // 12:30 BRT
			deferred(utc(26, 16, 0), quietReason(utc(26, 16, 0)))},
		{"outside a period within the day", lunch, []*time.Location{brt}, mkt, utc(26, 16, 0), allowed()},
		{"utility is not held", night, []*time.Location{brt}, util, utc(26, 10, 0), allowed()},
		{"no known zone", night, nil, mkt, utc(26, 10, 0), allowed()},
		{"off when start equals end", &QuietHours{Start: 600, End: 600}, []*time.Location{brt}, mkt, utc(26, 10, 0), allowed()},
		{"off when nil", nil, []*time.Location{brt}, mkt, utc(26, 10, 0), allowed()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			f.pol.QuietHours, f.chk.Zones = tc.q, tc.zones
			checkDecision(t, f.decide(tc.cat, tc.when), tc.want)
		})
	}
}

func TestQuietHoursDetail(t *testing.T) {
	f := newFixture()
	f.pol.QuietHours, f.chk.Zones = &QuietHours{Start: 21 * 60, End: 8 * 60}, []*time.Location{brt, amt}
	d := f.decide(mkt, utc(26, 10, 0))
	want := "It is quiet hours (21:00-08:00 local time) in BRT (now 07:00); they are over in all of the number's time zones at 2026-11-26 12:00 UTC."
	if d.Reasons[0].Detail != want {
		t.Errorf("detail %q\nwant %q", d.Reasons[0].Detail, want)
	}
}

func TestQuietHoursDaylightSaving(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture()
	f.pol.QuietHours, f.chk.Zones = &QuietHours{Start: 21 * 60, End: 8 * 60}, []*time.Location{ny}
	// 2026-11-01 05:00 UTC is 01:00 EDT; clocks fall back at 06:00 UTC, so 08:00 is
	// EST, 13:00 UTC (not 12:00).
	when := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	until := time.Date(2026, 11, 1, 13, 0, 0, 0, time.UTC)
	checkDecision(t, f.decide(mkt, when), deferred(until, quietReason(until)))
}

// TestQuietHoursMoveRetry: a deferral that ends inside the quiet hours moves
// retry_at on to their end.
func TestQuietHoursMoveRetry(t *testing.T) {
	zones := []*time.Location{brt, amt}
	night := &QuietHours{Start: 21 * 60, End: 8 * 60}
	t.Run("cooldown ending at night", func(t *testing.T) {
		f := newFixture()
		f.pol.QuietHours, f.chk.Zones = night, zones
		f.fail(mkt, 131049, utc(26, 2, 0)) // cooldown until 27th 02:00 UTC = 23:00 BRT
		checkDecision(t, f.decide(mkt, utc(26, 12, 0)),
			deferred(utc(27, 12, 0), ecoReason(utc(27, 2, 0))))
	})
	t.Run("cap freed at night", func(t *testing.T) {
		f := newFixture()
		f.pol.QuietHours, f.chk.Zones = night, zones
		f.reserve(mkt, "promo", utc(26, 1, 0), "a")
		checkDecision(t, f.decide(mkt, utc(26, 12, 0)),
			deferred(utc(27, 12, 0), capReason(utc(27, 1, 0))))
	})
	t.Run("cooldown ending in the day", func(t *testing.T) {
		f := newFixture()
		f.pol.QuietHours, f.chk.Zones = night, zones
		f.fail(mkt, 131049, utc(26, 14, 0))
		checkDecision(t, f.decide(mkt, utc(26, 15, 0)),
			deferred(utc(27, 14, 0), ecoReason(utc(27, 14, 0))))
	})
	t.Run("quiet hours and a later cooldown", func(t *testing.T) {
		f := newFixture()
		f.pol.QuietHours, f.chk.Zones = night, zones
		f.fail(mkt, 131049, utc(25, 13, 0)) // until 26th 13:00 UTC
		d := f.decide(mkt, utc(26, 10, 0))
		checkDecision(t, d, deferred(utc(26, 13, 0), ecoReason(utc(26, 13, 0)), quietReason(utc(26, 12, 0))))
	})
	t.Run("quiet hours shadowed do not move it", func(t *testing.T) {
		f := newFixture()
		f.pol.QuietHours, f.chk.Zones = night, zones
		f.pol.ShadowRules = []sgv1.Rule{sgv1.Rule_RULE_QUIET_HOURS}
		f.fail(mkt, 131049, utc(26, 2, 0))
		d := f.decide(mkt, utc(26, 12, 0))
		checkDecision(t, d, deferred(utc(27, 2, 0), ecoReason(utc(27, 2, 0))))
	})
}

func TestQuietHoursAllDay(t *testing.T) {
	// Two zones 12 hours apart with a 14-hour quiet period: some zone is always
	// quiet. The search gives up after a bounded number of jumps, with an Until
	// after the check, and RetryAt is bounded too.
	f := newFixture()
	f.pol.QuietHours = &QuietHours{Start: 20 * 60, End: 10 * 60}
	f.chk.Zones = []*time.Location{time.FixedZone("A", 0), time.FixedZone("B", 12*3600)}
	d := f.decide(mkt, utc(26, 9, 0))
	if d.Verdict != deferVT || !d.RetryAt.After(utc(26, 9, 0)) || !strings.Contains(d.Reasons[0].Detail, "quiet hours") {
		t.Fatalf("got %s", summary(d))
	}
}
