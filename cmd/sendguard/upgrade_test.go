package main

import (
	"os"
	"syscall"
	"testing"
	"time"
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
	p := startServer(t, old, data)
	verify := seedEndToEnd(t, dial(t, p.grpc))
	verify(dial(t, p.grpc), "on the old binary")
	stop(t, p)

	bin := buildBinary(t)
	for _, when := range []string{"after the upgrade", "after a second start"} {
		p := startServer(t, bin, data)
		verify(dial(t, p.grpc), when)
		stop(t, p)
	}
}

// stop ends p with SIGTERM and waits for it.
func stop(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop within 20s of SIGTERM")
	}
}
