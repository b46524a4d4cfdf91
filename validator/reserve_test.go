package validator

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func sendTimes(rel *Relationship) []time.Time {
	var out []time.Time
	for _, s := range rel.Sends {
		out = append(out, s.At)
	}
	return out
}

func TestReserveKeepsSendsSorted(t *testing.T) {
	f := newFixture()
	f.reserve(mkt, "a", at(2*hour), "a")
	f.reserve(util, "b", t0, "b")
	f.reserve(auth, "c", at(hour), "c")
	f.reserve(util, "d", at(hour), "d") // after the send at the same time
	want := []time.Time{t0, at(hour), at(hour), at(2 * hour)}
	if got := sendTimes(&f.rel); !slices.Equal(got, want) {
		t.Fatalf("times %v", got)
	}
	if f.rel.Sends[1].Ref != "c" || f.rel.Sends[2].Ref != "d" {
		t.Errorf("ties not in arrival order: %+v", f.rel.Sends)
	}
	// The TAT counts in arrival order: max(TAT, at) + 6s per send.
	if !f.rel.PairTAT.Equal(at(2*hour + 4*6*sec)) {
		t.Errorf("PairTAT %s", fmtT(f.rel.PairTAT))
	}
	if got := eventTexts(&f.rel); len(got) != 4 || got[0] != "reserved (utility, template b)" {
		t.Errorf("events %q", got)
	}
}

func TestReserveTrims(t *testing.T) {
	f := newFixture() // longest window 7d: sends older than 7d + 7d before the new one go
	f.reserve(mkt, "a", at(-15*24*hour), "old")
	f.reserve(mkt, "a", at(-13*24*hour), "kept")
	f.reserve(mkt, "a", t0, "new")
	if got := sendTimes(&f.rel); !slices.Equal(got, []time.Time{at(-13 * 24 * hour), t0}) {
		t.Errorf("times %v", got)
	}

	f = newFixture() // burst 45: the newest 90 sends are kept
	for i := range 96 {
		f.reserve(util, "otp", at(time.Duration(i)*time.Minute), fmt.Sprint(i))
	}
	if len(f.rel.Sends) != 90 || f.rel.Sends[0].Ref != "6" {
		t.Errorf("%d sends, first %q", len(f.rel.Sends), f.rel.Sends[0].Ref)
	}
}

func TestReserveKeepsWhatTheCapsNeed(t *testing.T) {
	// A cap of 100 per day keeps the newest 100 counted sends, however many
	// sends of other kinds come after them; the other kinds keep BaseSends.
	f := newFixture()
	f.pol.FrequencyCaps = []Cap{{Count: 100, Window: 24 * hour}}
	f.pol.PairBurst = 0
	for i := range 100 {
		f.checkAndReserve(t, mkt, "promo", at(time.Duration(i)*time.Minute), fmt.Sprint("m", i))
	}
	// A failed one does not count, so it is not kept for the caps.
	recordSend(&f.rel, &f.pol, Send{At: at(100 * time.Minute), Ref: "failed", Category: mkt, Failed: true})
	for i := range 200 {
		f.checkAndReserve(t, util, "otp", at(time.Duration(101+i)*time.Minute), fmt.Sprint("u", i))
	}
	if n := len(f.rel.Sends); n != 100+BaseSends {
		t.Fatalf("%d sends, want %d", n, 100+BaseSends)
	}
	if f.rel.Sends[0].Ref != "m0" || f.rel.Sends[100].Ref != fmt.Sprint("u", 200-BaseSends) {
		t.Fatalf("kept %q ... %q", f.rel.Sends[0].Ref, f.rel.Sends[100].Ref)
	}
	checkDecision(t, f.decide(mkt, at(5*hour)), deferred(at(24*hour), capReason(at(24*hour))))

	// A smaller policy trims to what it keeps.
	f.pol.FrequencyCaps = []Cap{{Count: 3, Window: week}}
	TrimSends(&f.rel, &f.pol)
	if n := len(f.rel.Sends); n != 3+BaseSends || f.rel.Sends[0].Ref != "m97" {
		t.Fatalf("after trim: %d sends, first %q", n, f.rel.Sends[0].Ref)
	}
}

func TestHistoryBoundedByMaxSends(t *testing.T) {
	f := newFixture()
	f.pol.FrequencyCaps = []Cap{{Count: MaxCapCount * 4, Window: week}}
	f.pol.PairBurst = MaxPairBurst * 4
	for i := range MaxSends + 100 {
		cat := mkt
		if i%2 == 1 {
			cat = util
		}
		f.reserve(cat, "promo", at(time.Duration(i)*time.Minute), fmt.Sprint(i))
	}
	if n := len(f.rel.Sends); n > MaxSends || n < 2*MaxPairBurst {
		t.Fatalf("%d sends, want at most %d", n, MaxSends)
	}
}

func TestReserveMarksReached(t *testing.T) {
	tests := []struct {
		name  string
		setup func(rel *Relationship)
		s     Send
		want  bool
	}{
		{"template outside the window", nil, Send{At: t0, Category: util}, true},
		{"marketing", nil, Send{At: t0, Category: mkt}, true},
		{"service", nil, Send{At: t0, Category: svc}, false},
		{"inside the window", func(r *Relationship) { r.LastInboundAt = at(-hour) }, Send{At: t0, Category: mkt}, false},
		{"window closed by 131047", func(r *Relationship) { r.LastInboundAt = at(-hour); r.WindowClosedAt = at(-time.Minute) }, Send{At: t0, Category: mkt}, true},
		{"reached 23h ago", func(r *Relationship) { r.Sends = []Send{{At: at(-23 * hour), Reached: true}} }, Send{At: t0, Category: mkt}, false},
		{"reached 24h ago", func(r *Relationship) { r.Sends = []Send{{At: at(-24 * hour), Reached: true}} }, Send{At: t0, Category: mkt}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rel Relationship
			if tc.setup != nil {
				tc.setup(&rel)
			}
			p, b := Defaults(), Business{}
			p.MessagingLimit = 10
			changed := Reserve(&rel, &b, &p, tc.s)
			got := rel.Sends[len(rel.Sends)-1].Reached
			if got != tc.want || changed != tc.want {
				t.Errorf("reached %v, business changed %v, want %v", got, changed, tc.want)
			}
		})
	}
}
