//go:build !linux

package badger

import "context"

// startAdvise does nothing where there is no /proc/self/maps to find the
// table mappings in (advise_linux.go).
func (s *Store) startAdvise(context.Context, string) {}
