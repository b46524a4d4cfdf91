package server

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// What the HTTP listener (webhooks, /metrics, /healthz, /admin/backup) grants
// one client. Meta's webhook URL must be public, so these bound what anyone on
// the internet can hold: connections (and so goroutines) by
// HTTPMaxConnections, the time a connection may take to send its headers, its
// body (WebhookReadTimeout) or to stay idle, and the bytes of headers.
const (
	// DefaultHTTPMaxConnections is the default of Config.HTTPMaxConnections.
	// Each connection costs a goroutine and its buffers (headers are capped at
	// httpMaxHeaderBytes).
	DefaultHTTPMaxConnections = 1024
	// DefaultWebhookReadTimeout is the default of Config.WebhookReadTimeout:
	// Meta sends a full batch (about 350 KB) in well under a second.
	DefaultWebhookReadTimeout = 10 * time.Second

	httpReadHeaderTimeout = 10 * time.Second
	httpIdleTimeout       = 60 * time.Second
	httpMaxHeaderBytes    = 32 << 10
)

// newHTTPServer returns the HTTP server of the endpoints. No write timeout:
// /admin/backup streams for as long as the backup takes.
func (s *Server) newHTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.httpHandler(),
		ReadHeaderTimeout: httpReadHeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
	}
}

// limitHTTPListener caps the connections served at once: past the cap, new
// connections wait in the kernel's backlog until one closes.
func (s *Server) limitHTTPListener(l net.Listener) net.Listener {
	return netutil.LimitListener(l, s.cfg.HTTPMaxConnections)
}
