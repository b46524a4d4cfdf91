// Package codec is the compact binary encoding of sendguard's stored state
// (validator.Relationship, validator.NumberFacts, validator.Business). Every
// backend stores these bytes, so a Badger directory and a Redis keyspace hold the
// same format. It is hand-written on purpose (no reflection, JSON or gob): it runs
// on every check.
//
// # Format
//
// A value starts with a format-version byte (Version). Integers are
// encoding/binary varints (signed ints zig-zag, counts unsigned). A time is its
// Unix nanoseconds as a signed varint, the zero time encoded as 0; decoded times
// are in UTC. A string is its length (uvarint) and its bytes. A list is its
// length and its elements; a map is its length and its entries sorted by key, so
// one value always has one encoding. Decoding rejects unknown versions, truncated
// or trailing bytes and out-of-range numbers with an error wrapping ErrInvalid;
// it never panics.
//
// Two consequences of the time encoding: the instant 1970-01-01T00:00:00Z reads
// back as the zero time ("never"), and times outside the range of Unix
// nanoseconds (years 1678 to 2262) are clamped to its ends.
package codec
