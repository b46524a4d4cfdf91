package redistest

import (
	"os"
	"os/exec"
	"testing"
)

// requireEnv is the environment variable that, set to "1", turns a missing
// redis-server or redis-cli from a skipped test into a failed one. CI sets it
// so that the Redis tests cannot silently stop running.
const requireEnv = "SENDGUARD_REQUIRE_REDIS"

// Require skips the test when redis-server or redis-cli is not on PATH, unless
// the environment variable SENDGUARD_REQUIRE_REDIS=1, in which case it fails
// the test (CI sets it).
func Require(tb testing.TB) {
	tb.Helper()
	binaries(tb)
}

// binaries returns the paths of redis-server and redis-cli, skipping or
// failing tb as Require documents when either is missing.
func binaries(tb testing.TB) (server, cli string) {
	tb.Helper()
	server, errServer := exec.LookPath("redis-server")
	cli, errCLI := exec.LookPath("redis-cli")
	if errServer == nil && errCLI == nil {
		return server, cli
	}
	missing := errServer
	if missing == nil {
		missing = errCLI
	}
	if os.Getenv(requireEnv) == "1" {
		tb.Fatalf("redistest: %v (and %s=1)", missing, requireEnv)
	}
	tb.Skipf("redistest: %v; install redis-server and redis-cli to run this test", missing)
	return "", ""
}
