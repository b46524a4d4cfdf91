package loadgen

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"
)

// settle waits, at most limit, until the store's background compactions have
// caught up with the seeding: every level's compaction score below 1 and the
// process using under a tenth of a core, for three half-second polls in a row.
// Measuring while a freshly seeded store compacts would charge the first
// workloads with the seeding's compactions (on a 2-core machine, half of it).
func settle(ctx context.Context, db *badgerdb.DB, limit time.Duration, logf func(string, ...any)) {
	start := time.Now()
	quiet := 0
	const poll = 500 * time.Millisecond
	lastCPU := cpuTime()
	for time.Since(start) < limit && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
		cpu := cpuTime()
		busy := cpu-lastCPU > poll/10
		lastCPU = cpu
		for _, l := range db.Levels() {
			if l.Score >= 1 {
				busy = true
			}
		}
		if !busy {
			quiet++
		} else {
			quiet = 0
		}
		if quiet >= 3 {
			break
		}
	}
	logf("compactions settled after %s: %s", time.Since(start).Round(100*time.Millisecond), levels(db))
}

// cpuTime is the CPU time this process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// levels is a one-line summary of the LSM tree: tables and size per level.
func levels(db *badgerdb.DB) string {
	var parts []string
	for _, l := range db.Levels() {
		if l.NumTables > 0 {
			parts = append(parts, fmt.Sprintf("L%d %d tables %s", l.Level, l.NumTables, mib(l.Size)))
		}
	}
	return strings.Join(parts, ", ")
}
