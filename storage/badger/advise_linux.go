//go:build linux

package badger

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// adviseTables tells the kernel that the table files of the store in dir, which
// Badger maps into memory, are read at random (madvise MADV_RANDOM): a page fault
// on one then reads the page it needs instead of the 128 KB around it. A check
// reads one block of one table, at random across all of them; with the default
// read-around, a process whose memory limit is smaller than its tables (10 M
// numbers are about 900 MB of tables) fills its page cache with pages nobody
// asked for and spends its time evicting them (docs/performance.md: the stream
// fell to 0.03× of the echo under a 1 GiB limit).
//
// Badger keeps the mappings to itself, so they are found in /proc/self/maps by
// path: every mapping of a file dir/*.sst. seen holds the mappings advised by the
// previous call; adviseTables returns the current ones. A table unmapped between
// the read and the advice is harmless (madvise fails with ENOMEM, which is
// ignored), and so is a new mapping at its address: the advice only changes how
// much the kernel reads ahead.
func adviseTables(dir string, seen map[mapping]bool) map[mapping]bool {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return seen
	}
	defer f.Close()
	now := make(map[mapping]bool, len(seen))
	infix := []byte(" " + dir + "/")
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasSuffix(line, []byte(".sst")) || !bytes.Contains(line, infix) {
			continue
		}
		m, ok := parseMapping(line)
		if !ok {
			continue
		}
		now[m] = true
		if !seen[m] {
			_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, syscall.MADV_RANDOM)
		}
	}
	return now
}

// mapping is a file mapping: its address range and the file's inode (a table
// compacted away may leave its addresses to a new one).
type mapping struct {
	start, end uintptr
	inode      uint64
}

// parseMapping parses the start of a line of /proc/self/maps:
// "start-end perms offset dev inode path".
func parseMapping(line []byte) (mapping, bool) {
	f := bytes.Fields(line)
	if len(f) < 6 {
		return mapping{}, false
	}
	lo, hi, found := bytes.Cut(f[0], []byte("-"))
	if !found {
		return mapping{}, false
	}
	s, err1 := strconv.ParseUint(string(lo), 16, 64)
	e, err2 := strconv.ParseUint(string(hi), 16, 64)
	ino, err3 := strconv.ParseUint(string(f[4]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || e <= s {
		return mapping{}, false
	}
	return mapping{start: uintptr(s), end: uintptr(e), inode: ino}, true
}
