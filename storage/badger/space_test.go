package badger

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// fakeDisk is a disk whose free space the test sets; it counts the checks.
type fakeDisk struct {
	mu      sync.Mutex
	free    int64
	discard int64 // DISCARD's unwritten bytes
	err     error
	calls   int // of available
}

func (d *fakeDisk) available() (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return d.free, d.err
}

func (d *fakeDisk) unallocated(name string) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if name != discardFile {
		return 0, nil
	}
	return d.discard, nil
}

func (d *fakeDisk) set(free int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.free = free
}

// take removes n bytes of free space, as a write reaching the disk does, and
// returns what is left.
func (d *fakeDisk) take(n int64) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.free -= n
	return d.free
}

func (d *fakeDisk) checks() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

func (d *fakeDisk) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
}

const mb = 1 << 20

// emptyHeadroom is the computed headroom of an empty store: a flush, the writes
// in flight and the least compaction room.
const emptyHeadroom = memTableSize + writeRoom + minCompactionRoom

func newTestGuard(t *testing.T, free int64, fixed int64) (*spaceGuard, *fakeDisk, *bytes.Buffer) {
	t.Helper()
	d := &fakeDisk{free: free}
	var logs bytes.Buffer
	g := newSpaceGuard(d, func() (int64, int64) { return 0, 0 }, fixed, slog.New(slog.NewTextHandler(&logs, nil)))
	return g, d, &logs
}

func TestHeadroomFormula(t *testing.T) {
	for _, c := range []struct {
		name                string
		l0, rest, unwritten int64
		want                int64
	}{
		{"empty store", 0, 0, 0, 84 * mb},
		{"1 M numbers (90 MB of tables, 10 MB in L0)", 10 * mb, 80 * mb, 0, 94 * mb},
		{"10 M numbers (861 MiB of tables, 20 MiB in L0)", 20 * mb, 841 * mb, 0, 16*mb + 4*mb + 20*mb + 841*mb/4},
		{"DISCARD's unwritten part", 0, 0, 1 * mb, 85 * mb},
	} {
		if got := headroom(c.l0, c.rest, c.unwritten); got != c.want {
			t.Errorf("%s: headroom %d MiB, want %d MiB", c.name, got/mb, c.want/mb)
		}
	}
}

// TestSpaceGuardRefusesAndResumes: below the headroom every write is refused
// with both sentinels and "disk nearly full"; writes come back only once the
// free space is resumeRoom above it.
func TestSpaceGuardRefusesAndResumes(t *testing.T) {
	g, d, logs := newTestGuard(t, 200*mb, 0)
	if err := g.admit(1000); err != nil {
		t.Fatalf("admit with room: %v", err)
	}
	if sp := g.space(); !sp.Writable || sp.Free != 200*mb || sp.Headroom != emptyHeadroom {
		t.Fatalf("space: %+v", sp)
	}

	d.set(emptyHeadroom - 1)
	g.check()
	err := g.admit(1000)
	if !errors.Is(err, storage.ErrUnavailable) || !errors.Is(err, storage.ErrNoSpace) || !strings.Contains(err.Error(), "disk nearly full") {
		t.Fatalf("admit below the headroom: %v", err)
	}
	if sp := g.space(); sp.Writable {
		t.Fatalf("space below the headroom: %+v", sp)
	}
	if !strings.Contains(logs.String(), "disk nearly full") {
		t.Fatalf("no log line when writes stopped: %s", logs)
	}

	// Above the headroom but within the hysteresis: still refused.
	d.set(emptyHeadroom + resumeRoom - 1)
	g.check()
	if err := g.admit(1000); !errors.Is(err, storage.ErrNoSpace) {
		t.Fatalf("admit within the hysteresis: %v", err)
	}
	// Refused writes do not check the disk themselves (the ticker does).
	before := d.checks()
	for range 100 {
		_ = g.admit(1000)
	}
	if d.checks() != before {
		t.Fatalf("refused writes checked the disk %d times", d.checks()-before)
	}

	d.set(emptyHeadroom + resumeRoom)
	g.check()
	if err := g.admit(1000); err != nil {
		t.Fatalf("admit after space was freed: %v", err)
	}
	if !strings.Contains(logs.String(), "taking writes again") {
		t.Fatalf("no log line when writes resumed: %s", logs)
	}
	// Once writable, a dip below the headroom+hysteresis is fine until the
	// headroom itself is reached.
	d.set(emptyHeadroom)
	g.check()
	if err := g.admit(1000); err != nil {
		t.Fatalf("admit at the headroom: %v", err)
	}
}

// TestSpaceGuardBurst: a burst of writes between two ticks is admitted against
// the room above the headroom found at the last check; the write that spends it
// checks again at once, so the free space never falls below the headroom by
// more than one write, and no check is made while room is left.
func TestSpaceGuardBurst(t *testing.T) {
	g, d, _ := newTestGuard(t, emptyHeadroom+16*mb, 0)
	start := d.checks()
	const write = mb
	admitted := 0
	for range 100 {
		if err := g.admit(write); err != nil {
			break
		}
		admitted++
		if free := d.take(write); free < emptyHeadroom-write {
			t.Fatalf("after %d writes the free space is %d MiB, below the headroom (%d MiB) by more than one write", admitted, free/mb, emptyHeadroom/mb)
		}
	}
	if admitted != 17 {
		t.Fatalf("admitted %d writes of 1 MiB with 16 MiB of room, want 17 (the 17th finds exactly the headroom)", admitted)
	}
	if n := d.checks() - start; n != 2 {
		t.Fatalf("%d checks during the burst, want 2 (when the room ran out, twice)", n)
	}
}

func TestSpaceGuardFixedHeadroom(t *testing.T) {
	g, d, _ := newTestGuard(t, 10*mb, 5*mb)
	d.mu.Lock()
	d.discard = 100 * mb // not counted in a configured headroom
	d.mu.Unlock()
	g.check()
	if sp := g.space(); !sp.Writable || sp.Headroom != 5*mb {
		t.Fatalf("fixed headroom: %+v", sp)
	}
	d.set(5*mb - 1)
	g.check()
	if err := g.admit(1); !errors.Is(err, storage.ErrNoSpace) {
		t.Fatalf("below a fixed headroom: %v", err)
	}
}

func TestSpaceGuardCountsDiscard(t *testing.T) {
	g, d, _ := newTestGuard(t, 200*mb, 0)
	d.mu.Lock()
	d.discard = 1 * mb
	d.mu.Unlock()
	g.check()
	if sp := g.space(); sp.Headroom != emptyHeadroom+1*mb {
		t.Fatalf("headroom with DISCARD's unwritten MiB: %d, want %d", sp.Headroom, emptyHeadroom+1*mb)
	}
}

// TestSpaceGuardDiskError: a disk that cannot be asked leaves the last answer
// standing and is logged once.
func TestSpaceGuardDiskError(t *testing.T) {
	g, d, logs := newTestGuard(t, 200*mb, 0)
	d.fail(errors.New("statfs: input/output error"))
	g.check()
	g.check()
	if err := g.admit(1); err != nil {
		t.Fatalf("admit while the disk cannot be asked: %v", err)
	}
	if n := strings.Count(logs.String(), "cannot read the free disk space"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs)
	}
}

func TestNilSpaceGuard(t *testing.T) {
	var g *spaceGuard
	if g.admit(1<<40) != nil || !g.allows(1<<40) {
		t.Fatal("a nil guard refused")
	}
}

func TestRoomToOpen(t *testing.T) {
	d := &fakeDisk{free: openRoom - 1}
	err := roomToOpen(d, "/data")
	if !errors.Is(err, storage.ErrNoSpace) || !strings.Contains(err.Error(), "/data has 32.0 MiB free") {
		t.Fatalf("open with less than a WAL free: %v", err)
	}
	d.set(openRoom)
	if err := roomToOpen(d, "/data"); err != nil {
		t.Fatalf("open with a WAL's room: %v", err)
	}
}

// TestStoreRefusesWrites: a store on a nearly full disk refuses every kind of
// write, goes on reading, answers writes that stage nothing (a duplicate event),
// and takes writes again once space is freed.
func TestStoreRefusesWrites(t *testing.T) {
	d := &fakeDisk{free: 1 << 40}
	s, err := Open(Options{Dir: t.TempDir(), Logger: quietLogger(), disk: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	k := storage.ContactKey{Business: "acme", ID: "+5511987654321"}
	optOut := func(c *storage.Contact) (storage.Write, error) {
		c.Rel.OwnStopReason = "STOP"
		return storage.Write{Rel: true}, nil
	}
	if err := s.UpdateContact(ctx, k, "wamid.1", optOut); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPolicy(ctx, "acme", []byte("policy")); err != nil {
		t.Fatal(err)
	}

	d.set(emptyHeadroom - 1)
	s.space.check()
	if sp, ok := s.Space(); !ok || sp.Writable {
		t.Fatalf("Space on a full disk: %+v %v", sp, ok)
	}
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrNoSpace) || !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s on a nearly full disk: %v", what, err)
		}
	}
	refused("UpdateContact", s.UpdateContact(ctx, k, "wamid.2", optOut))
	_, err = s.UpdateContacts(ctx, []storage.ContactUpdate{{Key: k, Dedup: "wamid.3", Fn: optOut}})
	refused("UpdateContacts", err)
	_, _, err = s.DeleteContact(ctx, k)
	refused("DeleteContact", err)
	refused("PutPolicy", s.PutPolicy(ctx, "acme", []byte("other")))
	refused("PutSuppression", s.PutSuppression(ctx, "acme", "h"))
	refused("DeleteSuppression", s.DeleteSuppression(ctx, "acme", "h"))
	refused("SetLink", s.SetLink(ctx, "acme", "BR.1", k.ID))
	refused("DeleteLink", s.DeleteLink(ctx, "acme", "BR.1"))
	_, err = s.UpdateBusiness(ctx, "acme", func(b *validator.Business) error {
		b.Templates = map[string][]validator.TemplateState{"t": {{}}}
		return nil
	})
	refused("UpdateBusiness", err)

	// Writes that stage nothing go through, as reads do.
	if err := s.UpdateContact(ctx, k, "wamid.1", optOut); !errors.Is(err, storage.ErrDuplicate) {
		t.Errorf("a duplicate event on a nearly full disk: %v", err)
	}
	if err := s.UpdateContact(ctx, k, "", func(*storage.Contact) (storage.Write, error) { return storage.Write{}, nil }); err != nil {
		t.Errorf("an update that writes nothing on a nearly full disk: %v", err)
	}
	c, err := s.GetContact(ctx, k)
	if err != nil || c.Rel.OwnStopReason != "STOP" {
		t.Fatalf("read on a nearly full disk: %+v %v", c, err)
	}
	if p, err := s.GetPolicy(ctx, "acme"); err != nil || string(p) != "policy" {
		t.Fatalf("policy read on a nearly full disk: %q %v", p, err)
	}

	d.set(1 << 40)
	s.space.check()
	if err := s.UpdateContact(ctx, k, "wamid.2", optOut); err != nil {
		t.Fatalf("write after space was freed: %v", err)
	}
}

// TestRestoreOnFullDisk: a restore that the disk cannot take stops with
// ErrNoSpace and leaves nothing behind; with room it goes through.
func TestRestoreOnFullDisk(t *testing.T) {
	src := openMem(t)
	seed(t, src, 100)
	var buf bytes.Buffer
	if _, err := src.Backup(t.Context(), &buf, 0); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	d := &fakeDisk{free: emptyHeadroom - 1}
	err := Restore(Options{Dir: dir, Logger: quietLogger(), disk: d}, bytes.NewReader(buf.Bytes()))
	if !errors.Is(err, storage.ErrNoSpace) {
		t.Fatalf("restore onto a nearly full disk: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the refused restore left %s behind: %v", dir, err)
	}
	d.set(1 << 40)
	if err := Restore(Options{Dir: dir, Logger: quietLogger(), disk: d}, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("restore with room: %v", err)
	}
}
