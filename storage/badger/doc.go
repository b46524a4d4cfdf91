// Package badger is sendguard's embedded storage backend: a storage.Store kept in
// a Badger v4 directory (or in memory, for tests), with no server to run. The key
// layout is described in keys.go; values use storage/codec. Reads of keys the
// store does not hold are answered from an in-memory filter (filter.go). Writes are
// refused while the disk is nearly full, before Badger's mapped writes can fault
// (space.go).
package badger
