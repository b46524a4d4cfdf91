package console

import (
	"net"
	"net/http"
	"strings"
)

// Hosts is the Host-header check of the console and of the API port's copy of
// /metrics: a page reached under another name (a DNS-rebinding page that
// points its own name at 127.0.0.1, or a name nobody configured) is refused, so
// that no other site's script can read them as same-origin.
//
// Accepted: the loopback names (localhost, 127.0.0.0/8, ::1), the host of the
// API address when it names one (not 0.0.0.0 or ::), and the configured names
// (console_hosts). Ports are not compared: the listener already chose them.
type Hosts struct {
	names map[string]bool
}

// NewHosts returns the check for an API port bound to apiAddr (host:port) with
// the extra names configured.
func NewHosts(apiAddr string, extra []string) Hosts {
	h := Hosts{names: map[string]bool{"localhost": true}}
	if host, _, err := net.SplitHostPort(apiAddr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			h.names[strings.ToLower(host)] = true
		}
	}
	for _, n := range extra {
		h.names[strings.ToLower(strings.TrimSpace(n))] = true
	}
	return h
}

// Allowed reports whether a request's Host header (with or without a port)
// names the server.
func (h Hosts) Allowed(hostport string) bool {
	host := hostport
	if hst, _, err := net.SplitHostPort(hostport); err == nil {
		host = hst
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	return h.names[host]
}

// Check refuses, with 421 Misdirected Request, a request whose Host is not
// Allowed, and passes the others to next.
func (h Hosts) Check(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.Allowed(r.Host) {
			w.Header().Set("Content-Security-Policy", CSP)
			http.Error(w, "misdirected request: this port answers only to localhost, the API address's host and the names in console_hosts; add "+
				quote(r.Host)+" to console_hosts to reach it under that name", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// quote bounds and quotes a Host header for a message.
func quote(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}
