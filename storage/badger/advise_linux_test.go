//go:build linux

package badger

import (
	"bufio"
	"fmt"
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
			if m, ok := parseMapping([]byte(line)); ok && filepath.Dir(m.path) == dir {
				name = filepath.Base(m.path)
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
	dir, err := resolveDir(t.TempDir())
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
	dir := filepath.Join(realDir(t), "data dir") // /proc/self/maps does not quote spaces
	if err := os.MkdirAll(filepath.Join(dir, "small"), 0o700); err != nil {
		t.Fatal(err)
	}
	mapFile(t, dir, "000001.sst")
	mapFile(t, dir, "000002.sst")
	mapFile(t, dir, "000001.vlog")
	mapFile(t, filepath.Join(dir, "small"), "000003.sst") // another store's table
	other := realDir(t)
	mapFile(t, other, "000004.sst")

	seen := adviseTables(dir, nil, adviceRandom)
	if len(seen) != 2 {
		t.Errorf("advised %d mappings, want the 2 tables of dir", len(seen))
	}
	flags := mappingFlags(t, dir)
	if len(flags) != 3 {
		t.Fatalf("found the mappings of %d files in smaps, want 3: %v", len(flags), flags)
	}
	for name, maps := range flags {
		for _, f := range maps {
			if got, want := slices.Contains(f, "rr"), strings.HasSuffix(name, ".sst"); got != want {
				t.Errorf("%s: random-read advice %v, want %v (VmFlags %v)", name, got, want, f)
			}
		}
	}
	for _, d := range []string{filepath.Join(dir, "small"), other} {
		for name, maps := range mappingFlags(t, d) {
			if slices.Contains(maps[0], "rr") {
				t.Errorf("%s in %s was advised", name, d)
			}
		}
	}
	if again := adviseTables(dir, seen, adviceRandom); len(again) != len(seen) {
		t.Errorf("second pass found %d mappings, want %d", len(again), len(seen))
	}

	// Advice back to normal, as while the key filter loads.
	adviseTables(dir, nil, adviceNormal)
	for name, maps := range mappingFlags(t, dir) {
		if slices.Contains(maps[0], "rr") {
			t.Errorf("%s still advised random after normal advice", name)
		}
	}
}

// tableAdvice counts the store's table mappings in dir and those advised random.
func tableAdvice(t *testing.T, dir string) (tables, random int) {
	t.Helper()
	for name, maps := range mappingFlags(t, dir) {
		if !strings.HasSuffix(name, ".sst") {
			continue
		}
		for _, flags := range maps {
			tables++
			if slices.Contains(flags, "rr") {
				random++
			}
		}
	}
	return tables, random
}

// writeTables writes a few contacts to the store in dir and closes it, which
// flushes them into a table.
func writeTables(t *testing.T, dir string) {
	t.Helper()
	s := openDisk(t, dir)
	for i := range 100 {
		k := storage.ContactKey{Business: "b", ID: fmt.Sprintf("+55119876500%02d", i)}
		err := s.UpdateContact(t.Context(), k, "", func(c *storage.Contact) (storage.Write, error) {
			c.Facts.LastDeliveredAt = time.Unix(1_780_000_000, 0)
			return storage.Write{Facts: true}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitAllRandom waits (at most 10 s) until every table mapping of dir is advised
// random.
func waitAllRandom(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tables, random := tableAdvice(t, dir)
		if tables > 0 && random == tables {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d table mappings advised random after 10s", random, tables)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOpenAdvisesItsTables(t *testing.T) {
	dir := realDir(t)
	writeTables(t, dir)
	openDisk(t, dir)
	waitAllRandom(t, dir)
}

// TestTablesKeepReadAroundWhileFilterLoads: the key filter's load reads every
// table in order; the tables are advised random only once it is done.
func TestTablesKeepReadAroundWhileFilterLoads(t *testing.T) {
	dir := realDir(t)
	writeTables(t, dir)
	gate := make(chan struct{})
	openWith(t, Options{Dir: dir, loadGate: gate})
	for range 15 { // runAdvise's first pass runs at once
		tables, random := tableAdvice(t, dir)
		if tables == 0 {
			t.Fatal("no table mapped")
		}
		if random > 0 {
			t.Fatalf("%d of %d tables advised random while the filter loads", random, tables)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(gate)
	waitAllRandom(t, dir)
}

func TestParseMapping(t *testing.T) {
	for _, c := range []struct {
		line string
		want mapping
		ok   bool
	}{
		{"7f1c2a000000-7f1c2a400000 r--s 00000000 fd:00 1234567                    /data/000123.sst",
			mapping{0x7f1c2a000000, 0x7f1c2a400000, "/data/000123.sst"}, true},
		{"7f1c2a000000-7f1c2a400000 r--s 00000000 fd:00 1234567 /data dir/000123.sst",
			mapping{0x7f1c2a000000, 0x7f1c2a400000, "/data dir/000123.sst"}, true},
		{"7f1c2a000000-7f1c2a400000 r--s 00000000 fd:00 1234567 /data/000123.sst (deleted)",
			mapping{0x7f1c2a000000, 0x7f1c2a400000, "/data/000123.sst (deleted)"}, true},
		{"7f1c2a000000-7f1c2a400000 rw-p 00000000 00:00 0                          [heap]",
			mapping{0x7f1c2a000000, 0x7f1c2a400000, "[heap]"}, true},
		{"7f1c2a000000-7f1c2a400000 rw-p 00000000 00:00 0", mapping{}, false},     // anonymous
		{"7f1c2a000000-7f1c2a400000 rw-p 00000000 00:00 0    ", mapping{}, false}, // anonymous, padded
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

func TestIsTable(t *testing.T) {
	for _, c := range []struct {
		path string
		want bool
	}{
		{"/data/000123.sst", true},
		{"/data/small/000123.sst", false},
		{"/data/000123.sst (deleted)", false},
		{"/data/000123.vlog", false},
		{"/data/.sst", true},
		{"/database/000123.sst", false},
		{"/data", false},
	} {
		if got := isTable(c.path, "/data"); got != c.want {
			t.Errorf("isTable(%q, /data) = %v, want %v", c.path, got, c.want)
		}
	}
}
