package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Version is the format version written as the first byte of every value.
const Version byte = 1

// ErrInvalid is wrapped by every decoding error: the bytes are not a value of the
// expected type in a format version this package reads.
var ErrInvalid = errors.New("codec: invalid encoding")

// The Unix-nanosecond range of time.Time.UnixNano; times outside are clamped.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func appendTime(dst []byte, t time.Time) []byte {
	switch {
	case t.IsZero():
		return append(dst, 0) // the zero varint
	case t.Before(minTime):
		t = minTime
	case t.After(maxTime):
		t = maxTime
	}
	return binary.AppendVarint(dst, t.UnixNano())
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendInt(dst []byte, v int) []byte {
	return binary.AppendVarint(dst, int64(v))
}

// decoder reads one value. The first error sticks: later reads return zero
// values, and err tells what went wrong first.
type decoder struct {
	b   []byte
	off int
	// s is a copy of b, made on the first non-empty string: every string decoded
	// from one value is a substring of it (one allocation per value, and nothing
	// points into b, which the caller may reuse, e.g. Badger's value buffer).
	s   string
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s at byte %d of %d", ErrInvalid, what, d.off, len(d.b))
	}
}

// version checks the leading version byte.
func (d *decoder) version(what string) {
	if len(d.b) == 0 {
		d.err = fmt.Errorf("%w: empty %s", ErrInvalid, what)
		return
	}
	if d.b[0] != Version {
		d.err = fmt.Errorf("%w: %s format version %d, want %d", ErrInvalid, what, d.b[0], Version)
		return
	}
	d.off = 1
}

// finish reports the first error, or trailing bytes.
func (d *decoder) finish(what string) error {
	if d.err == nil && d.off != len(d.b) {
		d.err = fmt.Errorf("%w: %d trailing bytes after %s", ErrInvalid, len(d.b)-d.off, what)
	}
	return d.err
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) int(what string) int {
	v := d.varint(what)
	if int64(int(v)) != v {
		d.fail(what)
		return 0
	}
	return int(v)
}

func (d *decoder) int32(what string) int32 {
	v := d.varint(what)
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail(what)
		return 0
	}
	return int32(v)
}

func (d *decoder) time(what string) time.Time {
	n := d.varint(what)
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail(what)
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) string(what string) string {
	n := d.uvarint(what)
	if d.err != nil || n == 0 {
		return ""
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail(what)
		return ""
	}
	if d.s == "" {
		d.s = string(d.b)
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

// count reads a list length. Every element takes at least minSize bytes, so a
// length the remaining input cannot hold is rejected before anything is
// allocated for it; so is a length over limit (0: none), the most the list ever
// holds.
func (d *decoder) count(what string, minSize, limit int) int {
	n := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64((len(d.b)-d.off)/minSize) || limit > 0 && n > uint64(limit) {
		d.fail(what)
		return 0
	}
	return int(n)
}

func appendUint(dst []byte, n int) []byte {
	return binary.AppendUvarint(dst, uint64(n))
}

// sectionTag reads the tag of the next optional section of what. Sections
// are written in the order of order, each at most once, so the tag must be
// one of order[next:]; it returns the tag's index in order, or -1 (and the
// decoder fails) for a tag that is unknown, repeated or out of order.
func (d *decoder) sectionTag(what string, order []byte, next int) int {
	tag := d.byte(what + " section tag")
	if d.err != nil {
		return -1
	}
	for i := next; i < len(order); i++ {
		if order[i] == tag {
			return i
		}
	}
	d.fail(fmt.Sprintf("%s section tag %q (unknown, repeated or out of order)", what, tag))
	return -1
}
