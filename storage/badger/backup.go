package badger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendguard/sendguard/storage"
)

// restorePendingWrites bounds the write batches in flight while Restore loads a
// backup. Badger's own `badger restore` uses 256, which held 2.1 GB to load a
// 711 MB backup (1M numbers); 16 held 0.9 GB and was as fast.
const restorePendingWrites = 16

// Backup writes every key of the store to w in Badger's backup format
// (length-prefixed protobuf KV lists, the format of badger.DB.Backup and `badger
// backup`), while the store keeps serving. The copy is consistent: it is read in
// one read transaction, so it holds every write committed before it started and
// none committed after (an UpdateContacts batch committed in several chunks may
// be cut between two chunks, as a crash would cut it; applying it again is safe).
// Each key keeps its version and its expiry (ExpiresAt, an absolute time), and
// deleted or expired keys still in the tree are written as such.
//
// Only versions newer than since are written (0: everything). Backup returns the
// highest version written (or since, when nothing newer exists), which a later
// Backup can take as since to write only what changed after this one; Restore
// of a full backup followed by such incremental ones (read one after the other,
// e.g. with io.MultiReader) rebuilds the later state.
//
// Backup stops with ctx.Err() when ctx ends (at its next write to w). An error of
// w is returned wrapped but not as storage.ErrUnavailable (the store is fine);
// errors of the engine wrap storage.ErrUnavailable. Close waits for a Backup in
// progress.
func (s *Store) Backup(ctx context.Context, w io.Writer, since uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.inflight.Done()

	start := time.Now()
	stream := s.db.NewStream()
	stream.LogPrefix = "sendguard backup"
	stream.SinceTs = since
	// One goroutine, because each of a Stream's goroutines opens its own read
	// transaction (Stream.produceKVs in Badger v4.9.6): with more than one, key
	// ranges would be read at different timestamps and a transaction that wrote
	// keys in two ranges (a contact record and its dedup key) could be cut in
	// half. One transaction gives one read timestamp.
	stream.NumGo = 1
	// Send each 16 MB batch the reader makes as it comes (Badger's default merges
	// them up to 100 MB before encoding, several times that in memory).
	stream.MaxSize = 16 << 20
	cw := &backupWriter{ctx: ctx, w: w}
	cw.cond = sync.NewCond(&cw.mu)
	defer context.AfterFunc(ctx, cw.stop)()
	var keys int64
	stream.ChooseKey = func(item *badger.Item) bool {
		keys++ // one reader goroutine: no race
		cw.admit(item.KeySize() + item.ValueSize() + kvOverhead)
		return true
	}
	version, err := stream.Backup(cw, since)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return 0, ctx.Err()
	case cw.err != nil:
		return 0, fmt.Errorf("storage/badger: backup: write: %w", cw.err)
	default:
		return 0, unavailable("backup", err)
	}
	version = max(version, since)
	s.log.Info("badger backup written", "keys", keys, "bytes", cw.n, "version", version,
		"since", since, "elapsed", time.Since(start).Round(time.Millisecond))
	return version, nil
}

// backupAhead bounds how far (in bytes of keys and values) the backup's reader
// may run ahead of what has been written out. Badger's Stream buffers up to 32
// batches of 16 MB (in 32 MB buffers) between its reader and the writer, so a
// slow client would otherwise make a backup of a large store hold most of it in
// memory. It must exceed one batch (16 MB): a batch is handed to the writer only
// when full.
const backupAhead = 48 << 20

// kvOverhead is roughly what the backup format adds to a key and its value
// (version, expiry, meta and protobuf framing).
const kvOverhead = 24

// backupWriter counts what a backup writes, remembers the writer's error (to tell
// it from the engine's), stops the backup when its context ends (Badger's
// Stream.Backup takes no context), and holds the reader back while it is more
// than backupAhead bytes ahead of the writes.
type backupWriter struct {
	ctx context.Context
	w   io.Writer
	n   int64 // bytes written (only the Send goroutine writes)
	err error

	mu      sync.Mutex
	cond    *sync.Cond
	read    int64 // bytes the reader admitted (estimated)
	written int64 // bytes written, as seen by the reader
	stopped bool  // the writer failed or ctx ended: never hold the reader again
}

func (b *backupWriter) Write(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		b.stop()
		return 0, err
	}
	n, err := b.w.Write(p)
	b.n += int64(n)
	if err != nil && b.err == nil {
		b.err = err
	}
	b.mu.Lock()
	b.written += int64(n)
	b.stopped = b.stopped || err != nil
	b.mu.Unlock()
	b.cond.Broadcast()
	return n, err
}

// admit counts n bytes read and waits while the reader is too far ahead. The
// wait ends when the writer catches up, fails, or ctx ends (the last also frees
// the reader should Badger's sending stop for a reason of its own).
func (b *backupWriter) admit(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.read += n
	for !b.stopped && b.read-b.written > backupAhead {
		b.cond.Wait()
	}
}

func (b *backupWriter) stop() {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.cond.Broadcast()
}

// Restore loads a backup written by Backup into a new database in opts.Dir and
// closes it; open it afterwards with Open (or `sendguard serve --data`). Restore
// runs offline: the directory must be new or empty, so a backup is never merged
// into live data (a non-empty directory is refused with an error that says so).
// Keys keep their versions and expiry times, so a record that would have expired
// at 10:00 still expires at 10:00 (and one whose time passed before the restore
// is restored already expired). If loading fails, what Restore wrote is removed
// again (the directory too, when Restore created it), leaving no half-restored
// store behind. Errors of the engine wrap storage.ErrUnavailable. The space
// guard watches the load as it watches a store's writes: on a disk that cannot
// take the backup, Restore stops with storage.ErrNoSpace (and removes what it
// wrote) instead of letting Badger fault.
func Restore(opts Options, r io.Reader) error {
	if opts.InMemory || opts.Dir == "" {
		return errors.New("storage/badger: restore needs Options.Dir (a new, empty directory), not an in-memory store")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	created, err := prepareRestoreDir(opts.Dir)
	if err != nil {
		return err
	}
	cleanup := func() {
		if created {
			_ = os.RemoveAll(opts.Dir)
			return
		}
		entries, _ := os.ReadDir(opts.Dir)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(opts.Dir, e.Name()))
		}
	}

	d, err := diskOf(opts)
	if err != nil {
		cleanup()
		return err
	}
	db, err := badger.Open(badgerOptions(opts, log))
	if err != nil {
		cleanup()
		return fmt.Errorf("%w: open badger in %q: %w", storage.ErrUnavailable, opts.Dir, err)
	}
	if d != nil {
		r = guardedReader{r: r, space: newSpaceGuard(d, tableSizes(db), opts.DiskHeadroom, log)}
	}
	loadErr := db.Load(r, restorePendingWrites)
	closeErr := db.Close()
	switch {
	case loadErr != nil:
		cleanup()
		return unavailable(fmt.Sprintf("restore into %q (nothing was kept)", opts.Dir), loadErr)
	case closeErr != nil:
		cleanup()
		return unavailable(fmt.Sprintf("restore into %q: close (nothing was kept)", opts.Dir), closeErr)
	}
	return nil
}

// guardedReader admits what it reads, about what a restore writes, through a
// space guard: a read fails with errNoSpace once the disk is nearly full.
type guardedReader struct {
	r     io.Reader
	space *spaceGuard
}

func (g guardedReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if n > 0 {
		if err := g.space.admit(int64(n)); err != nil {
			return 0, err
		}
	}
	return n, err
}

// prepareRestoreDir makes sure dir is a new or empty directory, creating it when
// missing; it reports whether it created it.
func prepareRestoreDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("storage/badger: restore: create %q: %w", dir, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("storage/badger: restore into %q: %w", dir, err)
	case len(entries) > 0:
		return false, fmt.Errorf("storage/badger: restore into %q: the directory is not empty (%d entries): restore only into a new, empty directory; it never merges a backup into existing data", dir, len(entries))
	}
	return false, nil
}
