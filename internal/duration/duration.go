// Package duration reads the durations that config files, policy files, CLI
// flags and store addresses take: Go's (90s, 1h30m) with days in front
// ("7d", "1d12h"), since the rules' windows are counted in days.
package duration

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

const day = 24 * time.Hour

// Parse reads a Go duration (time.ParseDuration: "90s", "1h30m", "-5m"), a
// whole number of days ("7d"), or days followed by a Go duration ("1d12h").
// Days are never negative, and neither is what follows them.
func Parse(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexByte(s, 'd')
	if i < 0 {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n < 0 || s[0] == '+' || n > math.MaxInt64/int64(day) {
		return 0, fmt.Errorf("invalid duration %q: bad day count %q", s, s[:i])
	}
	d := time.Duration(n) * day
	rest := s[i+1:]
	if rest == "" {
		return d, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil || r < 0 || r > math.MaxInt64-d {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d + r, nil
}
