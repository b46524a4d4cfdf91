// Package server translates between the wire and sendguard's rules and storage: the
// gRPC handlers of sendguard.v1.SendGuard, the interceptors (recovery, metrics,
// logging), the HTTP endpoints (metrics, health), on a storage.Store it is given
// (New). It knows no storage backend: the runner (internal/serve) opens the store
// the config names, loads the hash secret and serves the service (Listen, Run).
package server
