package duration

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "1h30m": 90 * time.Minute, "-5m": -5 * time.Minute, "0": 0,
		"7d": 7 * day, " 7d ": 7 * day, //nolint:gocritic // the spaces are the input: they are trimmed
		"0d": 0, "1d12h": 36 * time.Hour, "2d30m": 2*day + 30*time.Minute,
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1d", "+1d", "1.5d", "1dx", "1d-1h", "x", "99999999999999d", "106751d23h47m16.854775808s"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"7d", "1d12h", "90s", "-5m", "d", "1d-1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err == nil && d < 0 {
			if _, goErr := time.ParseDuration(s); goErr != nil {
				t.Fatalf("Parse(%q) = %v: negative with days", s, d)
			}
		}
	})
}
