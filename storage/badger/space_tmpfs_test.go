//go:build linux

package badger

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sendguard/sendguard/storage"
)

// mountTmpfs mounts a tmpfs of size bytes for the test and unmounts it at the
// end; it skips the test when it cannot (not root, or no mount allowed).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (CI runs as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file of n bytes (real pages: tmpfs has no holes for writes).
func fill(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for n > 0 {
		w := min(n, int64(len(chunk)))
		if _, err := f.Write(chunk[:w]); err != nil {
			t.Fatalf("filler: %v", err)
		}
		n -= w
	}
}

// TestFullTmpfs fills a real filesystem and writes until the store refuses: the
// process must not die of SIGBUS (it would take this test with it), reads go on,
// and once the filler is deleted writes are taken again; every acknowledged write
// is there after a reopen.
func TestFullTmpfs(t *testing.T) {
	mnt := mountTmpfs(t, 192<<20)
	dir := filepath.Join(mnt, "data")
	s, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = s.Close()
		}
	}()
	sp, _ := s.Space()
	// Leave 40 MiB of room above the headroom: more than two memtables' worth,
	// so that flushes run while the disk fills.
	filler := filepath.Join(mnt, "filler")
	fill(t, filler, sp.Free-sp.Headroom-40<<20)

	ctx := context.Background()
	var (
		mu    sync.Mutex
		acked []string // numbers whose write was acknowledged
		wg    sync.WaitGroup
	)
	deadline := time.Now().Add(60 * time.Second)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, 1536)
			for i := 0; i < 100_000 && time.Now().Before(deadline); i++ {
				_, _ = rand.Read(payload)
				number := fmt.Sprintf("+55119%d%07d", w, i)
				reason := base64.StdEncoding.EncodeToString(payload) // hardly compressible
				err := s.UpdateContact(ctx, storage.ContactKey{Business: "acme", ID: number}, "", func(c *storage.Contact) (storage.Write, error) {
					c.Rel.OwnStopReason = reason
					return storage.Write{Rel: true}, nil
				})
				if i%50 == 0 && err == nil {
					// A value over the inline threshold goes to the value log.
					big := make([]byte, 100<<10)
					_, _ = rand.Read(big)
					err = s.PutPolicy(ctx, number, big)
				}
				if errors.Is(err, storage.ErrNoSpace) {
					return
				}
				if err != nil {
					t.Errorf("write: %v", err)
					return
				}
				mu.Lock()
				acked = append(acked, number)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sp, _ = s.Space()
	t.Logf("%d writes acknowledged; refused at %s free, headroom %s", len(acked), mib(sp.Free), mib(sp.Headroom))
	if sp.Writable {
		t.Fatalf("writes ended without a refusal: %+v", sp)
	}
	// A memtable flush while the writes ran used the headroom's flush room, and
	// its table is then counted again as an L0 table: the free space may end
	// below the headroom by that much twice, plus the writes in flight — never
	// into the compactions' share.
	if below := int64(writeRoom + 2*memTableSize); sp.Free < sp.Headroom-below {
		t.Errorf("the writes went %s below the headroom, more than the %s of writes in flight and a flush", mib(sp.Headroom-sp.Free), mib(below))
	}
	k := storage.ContactKey{Business: "acme", ID: acked[len(acked)/2]}
	if c, err := s.GetContact(ctx, k); err != nil || !c.RelFound {
		t.Fatalf("read on the full disk: %+v %v", c, err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(deadline) {
		if sp, _ := s.Space(); sp.Writable {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.PutPolicy(ctx, "acme", []byte("after")); err != nil {
		t.Fatalf("write after the filler was deleted: %v", err)
	}

	closed = true
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, number := range acked {
		c, err := s2.GetContact(ctx, storage.ContactKey{Business: "acme", ID: number})
		if err != nil || !c.RelFound {
			t.Fatalf("acknowledged write of %s lost: %+v %v", number, c, err)
		}
	}
}
