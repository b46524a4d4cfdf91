package validator

import (
	"fmt"
	"testing"
	"time"
)

func pairReason(until time.Time) string { return "DEFER PAIR_RATE 131056 " + fmtT(until) }

func TestPairRateBurst(t *testing.T) {
	f := newFixture()
	for i := range 45 {
		f.checkAndReserve(t, util, "otp", t0, fmt.Sprintf("r%d", i))
	}
	// The 46th waits one interval; then the bucket refills one send per interval.
	checkDecision(t, f.decide(util, t0), deferred(at(6*sec), pairReason(at(6*sec))))
	checkDecision(t, f.decide(util, at(5*sec)), deferred(at(6*sec), pairReason(at(6*sec))))
	checkDecision(t, f.decide(svc, at(5*sec)), denied("DENY SERVICE_WINDOW 131047 -", pairReason(at(6*sec))))
	f.checkAndReserve(t, util, "otp", at(6*sec), "r45")
	checkDecision(t, f.decide(util, at(6*sec)), deferred(at(12*sec), pairReason(at(12*sec))))
	f.checkAndReserve(t, util, "otp", at(12*sec), "r46")

	d := f.decide(util, at(12*sec))
	want := "Sends from this business to this number are over the pair rate (one per 6s, bursts of 45); the next one fits at 2026-11-26 10:00:18 UTC."
	if d.Reasons[0].Detail != want {
		t.Errorf("detail %q\nwant %q", d.Reasons[0].Detail, want)
	}
	if !f.rel.PairTAT.Equal(at(282 * sec)) {
		t.Errorf("PairTAT %s", fmtT(f.rel.PairTAT))
	}
}

func TestPairRatePlanned(t *testing.T) {
	f := newFixture()
	for i := range 45 {
		f.reserve(util, "otp", at(hour), fmt.Sprintf("r%d", i))
	}
	tests := []struct {
		when time.Time
		want want
	}{
		{t0, allowed()}, // a planned burst does not block sends long before it
		{at(hour - 6*sec), allowed()},
		{at(hour - 5*sec), deferred(at(hour+6*sec), pairReason(at(hour+6*sec)))},
		{at(hour), deferred(at(hour+6*sec), pairReason(at(hour+6*sec)))},
		{at(hour + 6*sec), allowed()},
	}
	for _, tc := range tests {
		t.Run(fmtT(tc.when), func(t *testing.T) {
			checkDecision(t, f.decide(util, tc.when), tc.want)
		})
	}
}

func TestPairRateRule(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fixture)
		when  time.Time
		want  want
	}{
		{"after a 131056: 4s", func(f *fixture) { f.fail(util, 131056, t0) }, at(sec),
			deferred(at(4*sec), pairReason(at(4*sec)))},
		{"second in a row: 16s", func(f *fixture) { f.fail(util, 131056, t0); f.fail(util, 131056, at(4*sec)) }, at(5 * sec),
			deferred(at(20*sec), pairReason(at(20*sec)))},
		{"third in a row: 64s", func(f *fixture) {
			f.fail(util, 131056, t0)
			f.fail(util, 131056, at(4*sec))
			f.fail(util, 131056, at(20*sec))
		}, at(21 * sec), deferred(at(84*sec), pairReason(at(84*sec)))},
		{"reset by a delivery", func(f *fixture) {
			f.fail(util, 131056, t0)
			f.fail(util, 131056, at(4*sec))
			f.deliver(util, at(10*sec))
		}, at(11 * sec), allowed()},
		{"the next after a reset starts at 4s", func(f *fixture) {
			f.fail(util, 131056, t0)
			f.fail(util, 131056, at(4*sec))
			f.deliver(util, at(10*sec))
			f.fail(util, 131056, at(30*sec))
		}, at(31 * sec), deferred(at(34*sec), pairReason(at(34*sec)))},
		{"rule off with a zero interval", func(f *fixture) {
			f.pol.PairInterval = 0
			f.fail(util, 131056, t0)
			for i := range 50 {
				f.reserve(util, "otp", t0, fmt.Sprint(i))
			}
		}, at(sec), allowed()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.setup(f)
			checkDecision(t, f.decide(util, tc.when), tc.want)
		})
	}
}

func TestGCRAMatchesTAT(t *testing.T) {
	// For sends in time order, judging from the send times agrees with the
	// classic TAT bucket.
	p := Defaults()
	p.PairBurst, p.PairInterval = 5, 10*time.Second
	var rel Relationship
	step := []time.Duration{0, 0, 1, 1, 2, 30, 31, 32, 33, 60, 61, 62, 63, 64, 65, 66, 100}
	for _, s := range step {
		when := at(s * sec)
		tatFree := when
		if !rel.PairTAT.IsZero() {
			tatFree = maxTime(when, rel.PairTAT.Add(-time.Duration(p.PairBurst-1)*p.PairInterval))
		}
		if got := gcraFree(&rel, &p, when); !got.Equal(tatFree) {
			t.Fatalf("at %s: send times say %s, TAT says %s", fmtT(when), fmtT(got), fmtT(tatFree))
		}
		recordSend(&rel, &p, Send{At: tatFree, Category: util})
	}
}
