// Package memlimit gives the Go runtime a soft memory limit when the process runs
// in a cgroup with a memory limit (a container, a systemd unit) and GOMEMLIMIT is
// not set.
//
// The Go runtime does not read the cgroup's limit: left alone, it lets the heap
// grow to twice what is live before it collects. A store's writes make that
// heap large for a while (Badger builds each flushed or compacted table in
// memory), and the kernel then kills the process: at 10 M numbers under a 1 GiB
// limit, a run of reservations and reports did (docs/performance.md, Update 3).
// With a soft limit the runtime collects harder as the heap nears it instead.
//
// The limit given is Fraction of the cgroup's: the rest is left to the page cache,
// which holds the store's tables (the kernel takes it back before it kills, but a
// store read from disk is slow).
package memlimit

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// Fraction is the share of the cgroup's memory limit given to the Go runtime.
const Fraction = 0.75

// Apply sets the runtime's soft memory limit to Fraction of the cgroup memory
// limit of this process, unless GOMEMLIMIT is set (the runtime then already
// follows it) or no cgroup limit is found. It returns the limit it set, with the
// cgroup limit it came from (0, 0: none set).
func Apply() (set, cgroup int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, 0
	}
	limit, ok := Cgroup("/")
	if !ok {
		return 0, 0
	}
	set = int64(float64(limit) * Fraction)
	debug.SetMemoryLimit(set)
	return set, limit
}

// Cgroup returns the memory limit of this process's cgroup, read from the
// filesystem rooted at root ("/" but in tests): the smallest cgroup v2
// memory.max, or else v1 memory.limit_in_bytes, of the process's own cgroup
// (/proc/self/cgroup) and its ancestors. In a container's cgroup namespace the
// process's cgroup is the mount's root, which this reads too. ok is false when
// there is no limit.
func Cgroup(root string) (limit int64, ok bool) {
	self, err := os.ReadFile(filepath.Join(root, "proc", "self", "cgroup"))
	if err != nil {
		return 0, false
	}
	v2, v1 := cgroupPaths(self)
	if v2 != "" {
		if l, ok := smallest(filepath.Join(root, "sys", "fs", "cgroup"), v2, "memory.max"); ok {
			return l, true
		}
	}
	if v1 != "" {
		return smallest(filepath.Join(root, "sys", "fs", "cgroup", "memory"), v1, "memory.limit_in_bytes")
	}
	return 0, false
}

// smallest is the smallest limit in the file named file of the cgroup at path
// under mount and of each of its ancestors.
func smallest(mount, path, file string) (limit int64, ok bool) {
	for p := path; ; p = filepath.Dir(p) {
		if l, found := readLimit(filepath.Join(mount, p, file)); found && (!ok || l < limit) {
			limit, ok = l, true
		}
		if p == "/" {
			return limit, ok
		}
	}
}

// cgroupPaths returns the process's cgroup v2 path and its v1 memory
// controller's path from the contents of /proc/self/cgroup, whose lines are
// "id:controllers:path" (v2: "0::path").
func cgroupPaths(self []byte) (v2, v1 string) {
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		controllers, path, ok := strings.Cut(rest, ":")
		if !ok || !strings.HasPrefix(path, "/") {
			continue
		}
		switch {
		case id == "0" && controllers == "":
			v2 = path
		case v1 == "" && slices.Contains(strings.Split(controllers, ","), "memory"):
			v1 = path
		}
	}
	return v2, v1
}

// noLimit is where a limit read from a file stops meaning one: cgroup v1 reports
// "no limit" as a huge number rounded to pages (9223372036854771712).
const noLimit = 1 << 62

// readLimit reads a limit file: a number of bytes, or "max" (no limit).
func readLimit(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n >= noLimit {
		return 0, false
	}
	return n, true
}
