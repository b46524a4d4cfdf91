//go:build linux

package badger

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sendguard/sendguard/storage"
)

// mappingFlags returns the VmFlags of each of this process's mappings of files
// in dir, by file name (/proc/self/smaps).
func mappingFlags(t *testing.T, dir string) map[string][][]string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][][]string{}
	var name string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") {
			// A mapping's first line: range, perms, offset, device, inode and, for a
			// file, its path.
			name = ""
			if p := fields[len(fields)-1]; len(fields) >= 6 && filepath.Dir(p) == dir {
				name = filepath.Base(p)
			}
			continue
		}
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok && name != "" {
			out[name] = append(out[name], strings.Fields(flags))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func realDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// mapFile maps a file of one page named name in dir, read-only and shared as
// Badger maps its tables.
func mapFile(t *testing.T, dir, name string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, make([]byte, os.Getpagesize()), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := syscall.Mmap(int(f.Fd()), 0, os.Getpagesize(), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(b) })
}

func TestAdviseTablesMarksTableMappingsRandom(t *testing.T) {
	dir := realDir(t)
	mapFile(t, dir, "000001.sst")
	mapFile(t, dir, "000002.sst")
	mapFile(t, dir, "000001.vlog")
	other := realDir(t)
	mapFile(t, other, "000003.sst")

	seen := adviseTables(dir, nil)
	if len(seen) != 2 {
		t.Errorf("advised %d mappings, want the 2 tables of dir", len(seen))
	}
	for name, maps := range mappingFlags(t, dir) {
		for _, flags := range maps {
			if got, want := slices.Contains(flags, "rr"), strings.HasSuffix(name, ".sst"); got != want {
				t.Errorf("%s: random-read advice %v, want %v (VmFlags %v)", name, got, want, flags)
			}
		}
	}
	for name, maps := range mappingFlags(t, other) {
		if slices.Contains(maps[0], "rr") {
			t.Errorf("%s of another directory was advised", name)
		}
	}
	if again := adviseTables(dir, seen); len(again) != len(seen) {
		t.Errorf("second pass found %d mappings, want %d", len(again), len(seen))
	}
}

func TestOpenAdvisesItsTables(t *testing.T) {
	dir := realDir(t)
	s := openDisk(t, dir)
	for i := range 100 {
		k := storage.ContactKey{Business: "b", ID: "+5511987650" + string(rune('0'+i%10)) + string(rune('0'+i/10))}
		err := s.UpdateContact(t.Context(), k, "", func(c *storage.Contact) (storage.Write, error) {
			c.Facts.LastDeliveredAt = time.Unix(1_780_000_000, 0)
			return storage.Write{Facts: true}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // flushes the memtable into a table
		t.Fatal(err)
	}
	s = openDisk(t, dir)

	deadline := time.Now().Add(10 * time.Second)
	for {
		var tables, advised int
		for name, maps := range mappingFlags(t, dir) {
			if !strings.HasSuffix(name, ".sst") {
				continue
			}
			for _, flags := range maps {
				tables++
				if slices.Contains(flags, "rr") {
					advised++
				}
			}
		}
		if tables > 0 && advised == tables {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d table mappings advised random after 10s", advised, tables)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParseMapping(t *testing.T) {
	for _, c := range []struct {
		line string
		want mapping
		ok   bool
	}{
		{"7f1c2a000000-7f1c2a400000 r--s 00000000 fd:00 1234567                    /data/000123.sst",
			mapping{0x7f1c2a000000, 0x7f1c2a400000, 1234567}, true},
		{"7f1c2a000000-7f1c2a400000 r--s 00000000 fd:00 1234567 /data dir/000123.sst",
			mapping{0x7f1c2a000000, 0x7f1c2a400000, 1234567}, true},
		{"7f1c2a000000-7f1c2a400000 rw-p 00000000 00:00 0", mapping{}, false}, // anonymous
		{"7f1c2a400000-7f1c2a000000 r--s 00000000 fd:00 1 /data/1.sst", mapping{}, false},
		{"zz-7f1c2a400000 r--s 00000000 fd:00 1 /data/1.sst", mapping{}, false},
		{"7f1c2a000000 r--s 00000000 fd:00 1 /data/1.sst", mapping{}, false},
		{"", mapping{}, false},
	} {
		got, ok := parseMapping([]byte(c.line))
		if got != c.want || ok != c.ok {
			t.Errorf("parseMapping(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseMapping(f *testing.F) {
	f.Add([]byte("7f1c2a000000-7f1c2a400000 r--s 00000000 fd:00 1234567 /data/000123.sst"))
	f.Add([]byte("7f1c2a000000-7f1c2a400000 rw-p 00000000 00:00 0"))
	f.Fuzz(func(t *testing.T, line []byte) {
		if m, ok := parseMapping(line); ok && m.end <= m.start {
			t.Errorf("parseMapping(%q) = %+v: empty range", line, m)
		}
	})
}
