// Package server translates between the wire and sendguard's rules and storage: the
// gRPC handlers of sendguard.v1.SendGuard, the interceptors (recovery, metrics,
// logging), the HTTP endpoints (metrics, health) and the wiring that starts and
// stops them.
package server
