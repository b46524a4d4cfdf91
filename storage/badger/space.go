package badger

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendguard/sendguard/storage"
)

// The space guard. Badger writes its write-ahead log (a memtable's *.mem file),
// its value log (*.vlog) and its tables (*.sst, on every flush and compaction,
// and on Close, which flushes the memtable) through memory mappings of files it
// sizes in advance, mostly sparse. On a full disk the kernel cannot back a page
// the process writes to, and the process dies of SIGBUS instead of getting
// ENOSPC. So the store watches the free space of its filesystem and refuses
// writes (errNoSpace: the server answers UNAVAILABLE, reads go on) while it is
// below the headroom Badger needs for what it writes without asking:
//
//   - flush: the L0 table a memtable flush writes, at most a memtable's size
//     (16 MiB). Flushes run one at a time and each deletes its WAL afterwards,
//     so one table is needed at a time; Close flushes the same way.
//   - compaction: Badger writes a compaction's new tables before it deletes the
//     old ones. An L0 compaction rewrites every L0 table (each spans the whole
//     range of phone numbers) with the base level's; below L0 a compaction
//     rewrites one table and the next level's tables it overlaps, about a tenth
//     of that level with Badger's ×10 level ratio. With two compactors and levels
//     running over their targets, a quarter of the levels below L0 covers it,
//     and 64 MiB at least (L0 starts compacting at five tables). So: the L0
//     tables plus max(64 MiB, a quarter of the rest).
//   - writes in flight: a check does not see the writes admitted but not yet on
//     disk (4 MiB).
//   - the unwritten part of DISCARD, a sparse mapped file Badger fills in the
//     background (from stat: apparent size less allocated blocks).
//
// The unwritten parts of the sparse WAL and value-log files are not reserved:
// only writes that pass the guard fill them (and a new WAL only when they fill
// the last), so reserving them would count those writes twice: 160 MiB for an
// empty store. Instead every write is admitted against the room above the
// headroom found at the last check, and a write that finds that room spent
// checks again at once, so writes between two checks cannot outrun it.
//
// A check (statfs, stat, Badger's level sizes: a few microseconds) runs every
// spaceInterval and whenever the room runs out. Writes resume when the free
// space is back above the headroom by resumeRoom.

const (
	// spaceInterval is how often the guard checks the disk when nothing else
	// makes it.
	spaceInterval = 250 * time.Millisecond
	// writeRoom is the headroom's share for writes in flight during a check.
	writeRoom = 4 << 20
	// minCompactionRoom is the least room kept for compactions.
	minCompactionRoom = 64 << 20
	// resumeRoom is the hysteresis: writes are taken again once the free space
	// is this much above the headroom.
	resumeRoom = 8 << 20
	// openRoom is the least free space Open starts with: a new WAL file (twice
	// the memtable size, which Badger sizes it to).
	openRoom = 2 * memTableSize
	// entryOverhead and txnOverhead bound what Badger's WAL adds to each key and
	// value (header, version, checksum) and to each transaction (its end marker).
	entryOverhead = 64
	txnOverhead   = 64
	// discardFile is Badger's sparse file of value-log discard statistics.
	discardFile = "DISCARD"
)

// errNoSpace is what a refused write returns.
var errNoSpace = fmt.Errorf("%w: %w: writes are refused until space is freed", storage.ErrUnavailable, storage.ErrNoSpace)

// disk is what the space guard asks the system about the store's directory
// (space_linux.go; fakes in tests).
type disk interface {
	// available returns the bytes an unprivileged process may still allocate
	// on the directory's filesystem (statfs: f_bavail blocks).
	available() (int64, error)
	// unallocated returns the part of a file's apparent size that has no
	// blocks yet (a sparse file's unwritten part); 0 for a missing file.
	unallocated(name string) (int64, error)
}

// headroom is the free space Badger needs for an LSM tree of l0 bytes in level 0
// and rest in the levels below it, with unwritten bytes of background sparse
// files (see the comment at the top of this file).
func headroom(l0, rest, unwritten int64) int64 {
	return memTableSize + writeRoom + l0 + max(minCompactionRoom, rest/4) + unwritten
}

// spaceGuard refuses the store's writes while the disk is nearly full. A nil
// guard (in memory, or a system it cannot ask) admits everything.
type spaceGuard struct {
	disk   disk
	tables func() (l0, rest int64)
	fixed  int64 // the configured headroom; 0: computed
	log    *slog.Logger

	writable atomic.Bool
	// room is the free space above the headroom at the last check, less what
	// writes were admitted since: when it runs out, a write checks again.
	room atomic.Int64
	last atomic.Pointer[storage.Space]

	mu      sync.Mutex // serialises checks
	failing bool       // the last check could not read the disk (logged once); under mu
}

// newSpaceGuard returns a guard of disk for a store whose table sizes tables
// reports, and checks once.
func newSpaceGuard(d disk, tables func() (l0, rest int64), fixed int64, log *slog.Logger) *spaceGuard {
	g := &spaceGuard{disk: d, tables: tables, fixed: fixed, log: log}
	g.writable.Store(true)
	g.check()
	return g
}

// tableSizes reports the sizes of db's tables in level 0 and below it.
func tableSizes(db *badger.DB) func() (l0, rest int64) {
	return func() (l0, rest int64) {
		for _, l := range db.Levels() {
			if l.Level == 0 {
				l0 += l.Size
			} else {
				rest += l.Size
			}
		}
		return l0, rest
	}
}

// diskOf returns the disk the space guard of a store opened with opts asks (nil:
// none, in memory or where the system cannot be asked), once it has checked that
// the disk can hold a new WAL. opts.Dir must exist.
func diskOf(opts Options) (disk, error) {
	d := opts.disk
	if d == nil && !opts.InMemory {
		d = newDisk(opts.Dir)
	}
	if d == nil {
		return nil, nil
	}
	return d, roomToOpen(d, opts.Dir)
}

// roomToOpen refuses to open a store on a disk that cannot hold a new WAL.
func roomToOpen(d disk, dir string) error {
	free, err := d.available()
	if err != nil {
		return nil // the guard's first check logs it; a disk that cannot be asked refuses nothing
	}
	if free < openRoom {
		return fmt.Errorf("%w: %w: %s has %s free; Badger needs at least %s to open (a new write-ahead log); free some space",
			storage.ErrUnavailable, storage.ErrNoSpace, dir, mib(free), mib(openRoom))
	}
	return nil
}

// admit lets a write of n bytes through, or returns errNoSpace while writes are
// refused. A write that spends the last of the room checks the disk first.
func (g *spaceGuard) admit(n int64) error {
	if g == nil {
		return nil
	}
	if g.room.Add(-n) < 0 && g.writable.Load() {
		g.mu.Lock()
		if g.room.Load() < 0 { // no other write has checked since
			g.checkLocked()
		}
		g.mu.Unlock()
	}
	if !g.writable.Load() {
		return errNoSpace
	}
	return nil
}

// allows tells whether n bytes may be written now without a check (value-log GC,
// which writes through Badger and not through admit).
func (g *spaceGuard) allows(n int64) bool {
	return g == nil || g.writable.Load() && g.room.Load() >= n
}

// space returns what the last check saw.
func (g *spaceGuard) space() storage.Space {
	if sp := g.last.Load(); sp != nil {
		return *sp
	}
	return storage.Space{Writable: g.writable.Load()}
}

// run checks every spaceInterval until ctx ends.
func (g *spaceGuard) run(ctx context.Context) {
	t := time.NewTicker(spaceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.check()
	}
}

// check measures the disk and decides whether writes are taken.
func (g *spaceGuard) check() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.checkLocked()
}

func (g *spaceGuard) checkLocked() {
	free, err := g.disk.available()
	var unwritten int64
	if err == nil && g.fixed == 0 {
		unwritten, err = g.disk.unallocated(discardFile)
	}
	if err != nil {
		// The last answer stands (and a write that ran out of room checks
		// again): a disk that cannot be asked is no reason to refuse writes.
		if !g.failing {
			g.log.Warn("badger: cannot read the free disk space", "err", err)
		}
		g.failing = true
		return
	}
	g.failing = false
	need := g.fixed
	if need == 0 {
		l0, rest := g.tables()
		need = headroom(l0, rest, unwritten)
	}
	was := g.writable.Load()
	ok := was
	switch {
	case was && free < need:
		ok = false
	case !was && free >= need+resumeRoom:
		ok = true
	}
	g.room.Store(free - need)
	g.last.Store(&storage.Space{Free: free, Headroom: need, Writable: ok})
	if ok == was {
		return
	}
	g.writable.Store(ok)
	if ok {
		g.log.Info("badger: disk space freed: taking writes again", "free", mib(free), "headroom", mib(need))
	} else {
		g.log.Warn("badger: disk nearly full: refusing writes until space is freed (reads go on)", "free", mib(free), "headroom", mib(need))
	}
}

// Space implements storage.SpaceGuard.
func (s *Store) Space() (storage.Space, bool) {
	if s.space == nil {
		return storage.Space{}, false
	}
	return s.space.space(), true
}

var _ storage.SpaceGuard = (*Store)(nil)

// mib formats a byte count for a log line or an error.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
