// Package badger is sendguard's embedded storage backend: a storage.Store kept in
// a Badger v4 directory (or in memory, for tests), with no server to run. The key
// layout is described in keys.go; values use storage/codec.
package badger
