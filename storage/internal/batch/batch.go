// Package batch splits a storage.Store's UpdateContacts into chunks, as every
// backend does.
package batch

import (
	"context"

	"github.com/sendguard/sendguard/storage"
)

// Apply runs chunk on consecutive chunks of at most size updates, each with its
// own part of the results, and stops at the first chunk that fails: the results
// of the chunks before it stand (UpdateContacts's contract).
func Apply(ctx context.Context, updates []storage.ContactUpdate, size int,
	chunk func(ctx context.Context, updates []storage.ContactUpdate, results []error) error) ([]error, error) {
	results := make([]error, len(updates))
	for start := 0; start < len(updates); start += size {
		end := min(start+size, len(updates))
		if err := chunk(ctx, updates[start:end], results[start:end]); err != nil {
			return results, err
		}
	}
	return results, nil
}
