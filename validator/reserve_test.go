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

	f = newFixture()
	for i := range MaxSends + 6 {
		f.reserve(util, "otp", at(time.Duration(i)*time.Minute), fmt.Sprint(i))
	}
	if len(f.rel.Sends) != MaxSends || f.rel.Sends[0].Ref != "6" {
		t.Errorf("%d sends, first %q", len(f.rel.Sends), f.rel.Sends[0].Ref)
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
