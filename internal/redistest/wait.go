package redistest

import (
	"testing"
	"time"
)

// FirstNotOn returns the first key(n), n = 0, 1, …, that master i does not
// serve, for a test that needs one key on a master it kills and one elsewhere.
func (c *Cluster) FirstNotOn(tb testing.TB, i int, key func(n int) string) string {
	tb.Helper()
	for n := 0; ; n++ {
		if k := key(n); c.MasterOf(tb, k) != i {
			return k
		}
	}
}

// UntilFails calls op up to attempts times, pause apart, until it returns an
// error, and returns that error; it fails tb if op kept succeeding (what a kill
// should have stopped).
func UntilFails(tb testing.TB, attempts int, pause time.Duration, op func() error) error {
	tb.Helper()
	for range attempts {
		if err := op(); err != nil {
			return err
		}
		time.Sleep(pause)
	}
	tb.Fatalf("still succeeding after %d attempts", attempts)
	return nil
}

// UntilSucceeds calls op, pause apart, until it returns nil. It fails tb with
// op's last error when timeout has passed.
func UntilSucceeds(tb testing.TB, timeout, pause time.Duration, op func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := op()
		switch {
		case err == nil:
			return
		case time.Now().After(deadline):
			tb.Fatalf("still failing after %v: %v", timeout, err)
		}
		time.Sleep(pause)
	}
}
