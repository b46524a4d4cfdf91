// Package redistest starts real Redis servers on loopback for tests and
// benchmarks: a standalone server (StartServer) or a cluster of masters and
// replicas (StartCluster) that a test can crash nodes of (Kill) and watch fail
// over (WaitFailover). Every process lives in its own folder under tb.TempDir()
// and is stopped by tb.Cleanup; the package needs redis-server and redis-cli
// on PATH and skips the test without them (see Require).
package redistest
