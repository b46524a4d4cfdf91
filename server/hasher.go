package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"io"
	"sync"
)

// hasher makes the keyed hashes (HMAC-SHA256 under the deployment's hash
// secret) that stand for identifiers which must not be readable from a copied
// data directory: numbers and message ids under hash_numbers, dedup keys
// always, and the suppressions of forgotten opted-out recipients. What it
// returns is written to stores, so its output for a key never changes (a test
// holds it to fixed values). Safe for concurrent use; not to be copied.
type hasher struct {
	key  []byte
	macs sync.Pool // of hash.Hash keyed with key: keying one costs more than hashing a number with it
}

func newHasher(key []byte) *hasher { return &hasher{key: key} }

// sum is the keyed hash of the parts written one after the other.
func (h *hasher) sum(parts ...string) (sum [sha256.Size]byte) {
	m, ok := h.macs.Get().(hash.Hash)
	if !ok {
		m = hmac.New(sha256.New, h.key)
	}
	for _, p := range parts {
		_, _ = io.WriteString(m, p) // a hash.Hash's Write never returns an error
	}
	m.Sum(sum[:0])
	m.Reset()
	h.macs.Put(m)
	return sum
}

// opaque is the keyed hash of v as a kind of identifier (22 characters; ""
// for ""): kind keeps the hashes of the different kinds apart ("n" numbers,
// "m" message ids, "d" dedup keys).
func (h *hasher) opaque(kind, v string) string {
	if v == "" {
		return ""
	}
	sum := h.sum(kind, "\x00", v)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// suppression is the keyed hash (64 hex digits) under which a forgotten
// opt-out of the contact key id is kept.
func (h *hasher) suppression(id string) string {
	sum := h.sum(id)
	return hex.EncodeToString(sum[:])
}
