// Package redis is a storage.Store on Redis Cluster (or Valkey, or one standalone
// Redis server), so that many stateless sendguard replicas share one history.
//
// A recipient is one hash (its relationships with businesses and its
// number-wide facts), and every key of a recipient carries the recipient's id as
// its hash tag, so a check is one HMGET of one key on one slot, and a
// check-and-reserve is that read plus one compare-and-set script (EVALSHA) on
// the same slot. The rules run in Go, as with
// Badger; the script writes only if the records are still what was read, so an
// update is atomic across every replica. See contact.go and records.go for the
// key layout, and docs/scale-out.md for deployment.
package redis
