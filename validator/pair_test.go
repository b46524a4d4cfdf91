package validator

import (
	"fmt"
	"math/rand/v2"
	"slices"
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
		if got := gcraFree(&rel, &p, "", when); !got.Equal(tatFree) {
			t.Fatalf("at %s: send times say %s, TAT says %s", fmtT(when), fmtT(got), fmtT(tatFree))
		}
		recordSend(&rel, &p, Send{At: tatFree, Category: util})
	}
}

func TestPairRateBurstOf100(t *testing.T) {
	// A burst beyond BaseSends is kept whole, so it holds the 101st send back.
	f := newFixture()
	f.pol.PairBurst = 100
	noCaps(f)
	for i := range 100 {
		f.checkAndReserve(t, util, "otp", t0, fmt.Sprint("r", i))
	}
	if len(f.rel.Sends) != 100 {
		t.Fatalf("%d sends kept, want 100", len(f.rel.Sends))
	}
	checkDecision(t, f.decide(util, t0), deferred(at(6*sec), pairReason(at(6*sec))))
	// Then one per interval, never sooner, for as many sends again.
	for i := range 100 {
		next := at(time.Duration(i+1) * 6 * sec)
		checkDecision(t, f.decide(util, next.Add(-sec)), deferred(next, pairReason(next)))
		f.checkAndReserve(t, util, "otp", next, fmt.Sprint("s", i))
	}
}

// gcraFreeRef is the GCRA's definition tried send by send: the earliest T >= t,
// among t and the candidate times that bound a run, at which every run of the
// sends with T inserted spans enough intervals. It is the reference gcraFree is
// checked against.
func gcraFreeRef(times []time.Time, b int, iv time.Duration, t time.Time) time.Time {
	conformant := func(a []time.Time) bool {
		for i := range a {
			for k := i + b; k < len(a); k++ {
				if a[k].Sub(a[i]) < time.Duration(k-i-b+1)*iv {
					return false
				}
			}
		}
		return true
	}
	cands := []time.Time{t}
	for _, a := range times {
		for m := -len(times) - b; m <= len(times)+b; m++ {
			if c := a.Add(time.Duration(m) * iv); c.After(t) {
				cands = append(cands, c)
			}
		}
	}
	slices.SortFunc(cands, time.Time.Compare)
	for _, c := range cands {
		a := append(slices.Clone(times), c)
		slices.SortFunc(a, time.Time.Compare)
		if conformant(a) {
			return c
		}
	}
	panic("no conformant time")
}

func TestGCRAMatchesDefinition(t *testing.T) {
	// Random conformant histories (planned sends included), random burst and
	// interval: gcraFree finds exactly the definition's earliest time.
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 2000 {
		p := Defaults()
		p.PairBurst = 1 + rng.IntN(5)
		p.PairInterval = time.Duration(1+rng.IntN(10)) * sec
		var rel Relationship
		var times []time.Time
		for range rng.IntN(12) {
			want := at(time.Duration(rng.IntN(60)) * sec)
			free := gcraFreeRef(times, p.PairBurst, p.PairInterval, want)
			times = append(times, free)
			rel.Sends = append(rel.Sends, Send{At: free, Category: util})
		}
		slices.SortFunc(rel.Sends, func(x, y Send) int { return x.At.Compare(y.At) })
		slices.SortFunc(times, time.Time.Compare)
		when := at(time.Duration(rng.IntN(90)) * sec)
		got, want := gcraFree(&rel, &p, "", when), gcraFreeRef(times, p.PairBurst, p.PairInterval, when)
		if !got.Equal(want) {
			t.Fatalf("round %d: burst %d interval %s sends %v at %s: got %s, want %s",
				round, p.PairBurst, p.PairInterval, times, fmtT(when), fmtT(got), fmtT(want))
		}
	}
}
