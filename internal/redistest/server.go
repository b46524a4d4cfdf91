package redistest

import (
	"path/filepath"
	"testing"
)

// Server is a running standalone (non-cluster) Redis server on loopback.
type Server struct {
	n *node
}

// StartServer starts one standalone (non-cluster) redis-server on loopback in
// tb.TempDir(), waits until it answers (INFO, from the very process started,
// so a server that won a race for the port is not mistaken for it), and stops
// it in tb.Cleanup (SIGTERM, then SIGKILL after a grace period). It calls
// Require first, so it skips the test when Redis is not installed.
func StartServer(tb testing.TB) *Server {
	tb.Helper()
	server, _ := binaries(tb)
	n, err := startNode(nodeConfig{server: server, dir: filepath.Join(tb.TempDir(), "redis")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := n.stop(stopGrace); err != nil {
			tb.Error(err)
		}
	})
	return &Server{n: n}
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.n.addr }
