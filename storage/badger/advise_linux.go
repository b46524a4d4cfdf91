//go:build linux

package badger

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Table access advice. A check reads one block of one table, at random across
// all of them, through Badger's memory mappings. With the kernel's default
// read-around a page fault reads the 128 KB around the 4 KB a check needs, and a
// process whose memory limit is smaller than its tables (10 M numbers are about
// 900 MB of tables) fills its page cache with pages nobody asked for and spends
// its time evicting them (docs/performance.md, Update 3: the stream fell to
// 0.03× of the echo under a 1 GiB limit). madvise(MADV_RANDOM) makes a fault read
// the one page it needs.
//
// The key filter's load (filter.go) is the exception: it scans every table in
// order, which read-around serves far faster from a cold cache. While a load
// runs the tables get MADV_NORMAL back (runAdvise).

// The advice runAdvise gives.
const (
	adviceRandom = syscall.MADV_RANDOM
	adviceNormal = syscall.MADV_NORMAL
)

// adviseTables gives advice to every mapping of a table file of the store in
// dir that seen does not hold, and returns the mappings it found.
//
// Badger keeps its mappings to itself, so they are found in /proc/self/maps by
// path: every mapping of a file dir/<name>.sst. A table unmapped between the read
// and the advice is harmless (madvise fails with ENOMEM, which is ignored), and
// so is a new mapping at its address: the advice only changes how much the
// kernel reads ahead.
func adviseTables(dir string, seen map[mapping]bool, advice int) map[mapping]bool {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return seen
	}
	defer f.Close()
	now := make(map[mapping]bool, len(seen))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, ok := parseMapping(sc.Bytes())
		if !ok || !isTable(m.path, dir) {
			continue
		}
		now[m] = true
		if !seen[m] {
			_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, uintptr(advice))
		}
	}
	return now
}

// mapping is a file mapping: its address range and the file's path (Badger
// never reuses a table's file name).
type mapping struct {
	start, end uintptr
	path       string
}

// isTable tells whether path is a table file directly in dir.
func isTable(path, dir string) bool {
	name, ok := strings.CutPrefix(path, dir+"/")
	return ok && strings.HasSuffix(name, ".sst") && !strings.Contains(name, "/")
}

// parseMapping parses a line of /proc/self/maps: "start-end perms offset dev
// inode", then, for a file, spaces and its path (which may hold spaces itself).
func parseMapping(line []byte) (mapping, bool) {
	rest := line
	var f [5][]byte
	for i := range f {
		rest = bytes.TrimLeft(rest, " ")
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			return mapping{}, false // no path: an anonymous mapping
		}
		f[i], rest = rest[:sp], rest[sp:]
	}
	path := bytes.TrimLeft(rest, " ")
	lo, hi, found := bytes.Cut(f[0], []byte("-"))
	if !found || len(path) == 0 {
		return mapping{}, false
	}
	s, err1 := strconv.ParseUint(string(lo), 16, 64)
	e, err2 := strconv.ParseUint(string(hi), 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return mapping{}, false
	}
	return mapping{start: uintptr(s), end: uintptr(e), path: string(path)}, true
}

// startAdvise starts runAdvise on the store's table files in dir, until ctx ends.
func (s *Store) startAdvise(ctx context.Context, dir string) {
	dir, err := resolveDir(dir)
	if err != nil {
		return
	}
	s.background.Add(1)
	go s.runAdvise(ctx, dir)
}

// resolveDir is dir as an absolute path without symlinks.
func resolveDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// adviseInterval is how often the store looks for new table files to advise:
// Badger writes one with every flush and compaction.
const adviseInterval = 2 * time.Second

// runAdvise gives the store's table files in dir (an absolute path without
// symlinks, as /proc/self/maps names files) the advice above, now and every
// adviseInterval until ctx ends: random access,
// but the default read-around while the key filter is being loaded, since the
// load reads every table in order.
func (s *Store) runAdvise(ctx context.Context, dir string) {
	defer s.background.Done()
	tick := time.NewTicker(adviseInterval)
	defer tick.Stop()
	var (
		seen map[mapping]bool
		last = -1
	)
	for {
		advice := adviceRandom
		if s.keys.loading() {
			advice = adviceNormal
		}
		if advice != last {
			seen, last = nil, advice // give every table the new advice
		}
		seen = adviseTables(dir, seen, advice)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
