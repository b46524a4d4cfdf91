//go:build !linux

package badger

// adviseSupported tells whether adviseTables does anything here: it needs Linux's
// /proc/self/maps (advise_linux.go).
const adviseSupported = false

const (
	adviceRandom = 0
	adviceNormal = 0
)

func adviseTables(string, map[mapping]bool, int) map[mapping]bool { return nil }

type mapping struct{}
