//go:build !linux

package badger

// adviseTables does nothing where there is no /proc/self/maps (advise_linux.go).
func adviseTables(string, map[mapping]bool) map[mapping]bool { return nil }

type mapping struct{}
