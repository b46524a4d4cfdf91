// Package stripe provides striped in-process locks that a waiter can give up when
// its context ends. The storage backends use them to serialise updates of one
// number (or one business) inside a process.
package stripe

import (
	"context"
	"hash/maphash"
)

// Locks is a fixed set of locks; a name maps to one of them.
type Locks []chan struct{}

// New returns n locks; n must be a power of two.
func New(n int) Locks {
	s := make(Locks, n)
	for i := range s {
		s[i] = make(chan struct{}, 1)
	}
	return s
}

// Index is the lock of name.
func (st Locks) Index(seed maphash.Seed, name string) int {
	return int(maphash.String(seed, name) & uint64(len(st)-1))
}

// LockIndex takes lock i, or gives up when ctx ends.
func (st Locks) LockIndex(ctx context.Context, i int) error {
	select {
	case st[i] <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Lock takes the lock of name, or gives up when ctx ends. Release it with
// Unlock(c).
func (st Locks) Lock(ctx context.Context, seed maphash.Seed, name string) (chan struct{}, error) {
	c := st[st.Index(seed, name)]
	select {
	case c <- struct{}{}:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Unlock releases a lock taken by Lock or LockIndex.
func Unlock(c chan struct{}) { <-c }
