package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestUpgradeFromOldBinary plays TestEndToEnd's events through an older sendguard
// (SENDGUARD_OLD_BINARY; `make test-upgrade` builds the last commit that stored a
// recipient in two keys), stops it, and starts this build on the same data
// directory, which moves the old keys into contact records: every verdict and the
// reservation's message_ref survive the upgrade, and a second start (nothing
// left to move) gives the same answers. Skipped without SENDGUARD_OLD_BINARY.
func TestUpgradeFromOldBinary(t *testing.T) {
	old := os.Getenv("SENDGUARD_OLD_BINARY")
	if old == "" {
		t.Skip("set SENDGUARD_OLD_BINARY (make test-upgrade)")
	}
	data := t.TempDir()
	// That build predates --api-addr (issue 16).
	p := startServerCmd(t, old, nil, "serve", "--data", data, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	c := dial(t, p.grpc)
	verify := seedEndToEnd(t, c)
	verify(c, "on the old binary")
	stop(t, p)

	// That build shared number-wide facts by default; this one does not
	// (README: upgrading), so the deployment keeps them by saying so.
	cfg := filepath.Join(t.TempDir(), "sendguard.yaml")
	if err := os.WriteFile(cfg, []byte("policy:\n  share_number_signals: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	for _, when := range []string{"after the upgrade", "after a second start"} {
		p := startServerArgs(t, bin, data, nil, "--config", cfg)
		verify(dial(t, p.grpc), when)
		stop(t, p)
	}
}
