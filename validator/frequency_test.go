package validator

import (
	"fmt"
	"testing"
	"time"
)

func capReason(until time.Time) string { return "DEFER FREQUENCY_CAP " + fmtT(until) }

func TestFrequencyCap(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fixture)
		when  time.Time
		want  want
	}{
		{
			name:  "1 per 24h: until the send leaves the window, exactly",
			setup: func(f *fixture) { f.reserve(mkt, "promo", t0, "a") },
			when:  at(hour),
			want:  deferred(at(24*hour), capReason(at(24*hour))),
		},
		{
			name:  "1 per 24h: free at 24h",
			setup: func(f *fixture) { f.reserve(mkt, "promo", t0, "a") },
			when:  at(24 * hour),
			want:  allowed(),
		},
		{
			name: "3 per 7d: until the oldest leaves the week",
			setup: func(f *fixture) {
				f.reserve(mkt, "a", t0, "a")
				f.reserve(mkt, "b", at(24*hour), "b")
				f.reserve(mkt, "c", at(48*hour), "c")
			},
			when: at(72 * hour),
			want: deferred(at(week), capReason(at(week))),
		},
		{
			name: "3 per 7d: free when the oldest left",
			setup: func(f *fixture) {
				f.reserve(mkt, "a", t0, "a")
				f.reserve(mkt, "b", at(24*hour), "b")
				f.reserve(mkt, "c", at(48*hour), "c")
			},
			when: at(week),
			want: allowed(),
		},
		{
			name: "both caps: the daily cap frees first but the weekly one decides",
			setup: func(f *fixture) {
				f.reserve(mkt, "a", t0, "a")
				f.reserve(mkt, "b", at(24*hour), "b")
				f.reserve(mkt, "c", at(100*hour), "c")
			},
			when: at(110 * hour), // daily cap until 124h, weekly until 168h
			want: deferred(at(week), capReason(at(week))),
		},
		{
			name: "a FAILED send does not count",
			setup: func(f *fixture) {
				f.reserve(mkt, "promo", t0, "a")
				f.result(Result{Status: failedS, ErrorCode: 131000, Ref: "a", At: at(time.Minute)})
			},
			when: at(hour),
			want: allowed(),
		},
		{
			name: "a FAILED send reported before its SENT does not count either",
			setup: func(f *fixture) {
				f.result(Result{Status: failedS, ErrorCode: 131000, MessageID: "w1", Category: mkt, At: at(time.Minute)})
				f.result(Result{Status: sent, MessageID: "w1", Category: mkt, At: t0})
			},
			when: at(hour),
			want: allowed(),
		},
		{
			name:  "a SENT report with no reservation counts",
			setup: func(f *fixture) { f.result(Result{Status: sent, MessageID: "w1", Category: mkt, At: t0}) },
			when:  at(hour),
			want:  deferred(at(24*hour), capReason(at(24*hour))),
		},
		{
			name:  "a reservation planned later blocks an earlier check",
			setup: func(f *fixture) { f.reserve(mkt, "promo", at(30*hour), "later") },
			when:  at(10 * hour),
			want:  deferred(at(54*hour), capReason(at(54*hour))),
		},
		{
			name:  "... but not one more than a window before it",
			setup: func(f *fixture) { f.reserve(mkt, "promo", at(30*hour), "later") },
			when:  at(6 * hour),
			want:  allowed(),
		},
		{
			name:  "utility sends do not count",
			setup: func(f *fixture) { f.reserve(util, "otp", t0, "a") },
			when:  at(hour),
			want:  allowed(),
		},
		{
			name:  "a zero count turns a cap off",
			setup: func(f *fixture) { f.pol.FrequencyCaps = []Cap{{Count: 0, Window: day}}; f.reserve(mkt, "p", t0, "a") },
			when:  at(hour),
			want:  allowed(),
		},
		{
			name:  "a zero window turns a cap off",
			setup: func(f *fixture) { f.pol.FrequencyCaps = []Cap{{Count: 1, Window: 0}}; f.reserve(mkt, "p", t0, "a") },
			when:  at(hour),
			want:  allowed(),
		},
		{
			name: "2 per 24h between a past and a planned send",
			setup: func(f *fixture) {
				f.pol.FrequencyCaps = []Cap{{Count: 2, Window: day}}
				f.reserve(mkt, "p", t0, "a")
				f.reserve(mkt, "p", at(20*hour), "b")
				f.reserve(mkt, "p", at(50*hour), "c")
			},
			// t0 and 20h block (-4h, 24h); 20h and 50h are 30h apart and block nothing.
			when: at(10 * hour),
			want: deferred(at(24*hour), capReason(at(24*hour))),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.setup(f)
			checkDecision(t, f.decide(mkt, tc.when), tc.want)
		})
	}
}

func TestFrequencyCapDetail(t *testing.T) {
	f := newFixture()
	f.reserve(mkt, "promo", t0, "a")
	d := f.decide(mkt, at(hour))
	want := "The cap of 1 marketing message per 24h to this number is reached; the next one fits at 2026-11-27 10:00 UTC."
	if d.Reasons[0].Detail != want {
		t.Errorf("detail %q\nwant %q", d.Reasons[0].Detail, want)
	}
}

func TestEarliestFree(t *testing.T) {
	ts := func(hs ...time.Duration) []time.Time {
		out := make([]time.Time, len(hs))
		for i, h := range hs {
			out[i] = at(h)
		}
		return out
	}
	tests := []struct {
		name  string
		times []time.Time
		count int
		w     time.Duration
		t     time.Duration
		want  time.Duration
	}{
		{"empty", nil, 1, day, 0, 0},
		{"one before", ts(0), 1, day, 5 * hour, 24 * hour},
		{"one after", ts(10 * hour), 1, day, 0, 34 * hour},
		{"exactly a window apart", ts(0), 1, day, 24 * hour, 24 * hour},
		{"exactly a window before a planned one", ts(24 * hour), 1, day, 0, 0},
		{"chained", ts(0, 20*hour, 40*hour), 1, day, hour, 64 * hour},
		{"count 2: a gap fits", ts(0, 30*hour), 2, day, 10 * hour, 10 * hour},
		{"count 2: pairs chain", ts(0, 10*hour, 30*hour), 2, day, 12 * hour, 34 * hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := earliestFree(tc.times, tc.count, tc.w, at(tc.t)); !got.Equal(at(tc.want)) {
				t.Errorf("got %s, want %s", fmtT(got), fmtT(at(tc.want)))
			}
		})
	}
}

func TestTemplateRepeat(t *testing.T) {
	reason := func(until time.Time) string { return "DEFER TEMPLATE_REPEAT " + fmtT(until) }
	tests := []struct {
		name  string
		setup func(f *fixture)
		tmpl  string
		when  time.Time
		want  want
	}{
		{"off by default", func(f *fixture) { f.pol.TemplateRepeatWindow = 0; f.reserve(mkt, "promo", t0, "a") }, "promo", at(48 * hour), allowed()},
		{"same template within the window", func(f *fixture) { f.reserve(mkt, "promo", t0, "a") }, "promo", at(48 * hour),
			deferred(at(week), reason(at(week)))},
		{"other template", func(f *fixture) { f.reserve(mkt, "promo", t0, "a") }, "winter", at(48 * hour), allowed()},
		{"after the window", func(f *fixture) { f.reserve(mkt, "promo", t0, "a") }, "promo", at(week), allowed()},
		{"a failed send does not count", func(f *fixture) {
			f.reserve(mkt, "promo", t0, "a")
			f.result(Result{Status: failedS, ErrorCode: 131049, Ref: "a", At: at(sec)})
			f.pol.EcosystemCooldown = 0
		}, "promo", at(48 * hour), allowed()},
		{"a planned send counts", func(f *fixture) { f.reserve(mkt, "promo", at(5*24*hour), "a") }, "promo", at(48 * hour),
			deferred(at(12*24*hour), reason(at(12*24*hour)))},
		{"the last of several", func(f *fixture) {
			f.pol.FrequencyCaps = nil
			f.reserve(mkt, "promo", t0, "a")
			f.reserve(mkt, "promo", at(2*24*hour), "b")
		}, "promo", at(3 * 24 * hour), deferred(at(9*24*hour), reason(at(9*24*hour)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			if f.pol.TemplateRepeatWindow == 0 {
				f.pol.TemplateRepeatWindow = week
			}
			tc.setup(f)
			in := f.input(mkt, tc.when)
			in.Check.Template = tc.tmpl
			checkDecision(t, Decide(in), tc.want)
		})
	}
}

func TestFrequencyCapOf100(t *testing.T) {
	// A cap beyond BaseSends: exactly 100 in the day, the 101st waits for the
	// first to leave the window.
	f := newFixture()
	f.pol.FrequencyCaps = []Cap{{Count: 100, Window: 24 * hour}}
	f.pol.PairBurst = 0
	for i := range 100 {
		f.checkAndReserve(t, mkt, "promo", at(time.Duration(i)*time.Minute), fmt.Sprint("r", i))
	}
	checkDecision(t, f.decide(mkt, at(100*time.Minute)), deferred(at(24*hour), capReason(at(24*hour))))
	f.checkAndReserve(t, mkt, "promo", at(24*hour), "r100")
	checkDecision(t, f.decide(mkt, at(24*hour)), deferred(at(24*hour+time.Minute), capReason(at(24*hour+time.Minute))))
}
