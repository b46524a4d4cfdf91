package badger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// record is one live key of a database as a reader sees it.
type record struct {
	Value     string
	ExpiresAt uint64
	Version   uint64
}

// dump reads every live key (latest version, not deleted, not expired) of db.
func dump(t *testing.T, db *badger.DB) map[string]record {
	t.Helper()
	out := map[string]record{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(item.KeyCopy(nil))] = record{Value: string(v), ExpiresAt: item.ExpiresAt(), Version: item.Version()}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// restoreInto restores r into a new directory under t.TempDir and opens it.
func restoreInto(t *testing.T, r io.Reader) *Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	if err := Restore(Options{Dir: dir, Logger: quietLogger()}, r); err != nil {
		t.Fatal(err)
	}
	return openDisk(t, dir)
}

// hotNumbers are the numbers the concurrent writers of TestBackupWhileWriting
// update; hotBusiness their business.
const hotBusiness = "hot"

func hotNumber(i int) string { return fmt.Sprintf("+55119876%05d", i) }

// seed writes one of every kind of record sendguard keeps: relationships (with and
// without TTL), number facts with TTL, dedup keys (TTL storage.DedupTTL), links,
// suppressions, business state and policies, and a deleted link.
func seed(t *testing.T, s *Store, numbers int) {
	t.Helper()
	ctx := t.Context()
	at := time.Unix(1_780_000_000, 0).UTC()
	var updates []storage.ContactUpdate
	for i := range numbers {
		k := storage.ContactKey{Business: fmt.Sprintf("biz-%d", i%3), ID: fmt.Sprintf("+55119%08d", i)}
		ttl := time.Duration(i%5) * time.Hour // 0: an opt-out, kept until lifted
		updates = append(updates, storage.ContactUpdate{Key: k, Dedup: fmt.Sprintf("wamid.%d", i), Fn: func(c *storage.Contact) (storage.Write, error) {
			c.Rel.Sends = append(c.Rel.Sends, validator.Send{At: at, Ref: fmt.Sprint("ref-", i), Category: sgv1.Category_CATEGORY_MARKETING, Template: "promo"})
			if ttl == 0 {
				c.Rel.OwnStopAt, c.Rel.OwnStopReason = at, "STOP"
			}
			c.Facts.EcoStreak, c.Facts.EcoAt = 1, at
			return storage.Write{Rel: true, RelTTL: ttl, Facts: true, FactsTTL: 24*time.Hour + time.Duration(i)*time.Second}, nil
		}})
	}
	for len(updates) > 0 {
		n := min(len(updates), 500)
		res, err := s.UpdateContacts(ctx, updates[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range res {
			if err != nil {
				t.Fatal(err)
			}
		}
		updates = updates[n:]
	}
	for i := range 20 {
		b := fmt.Sprintf("biz-%d", i%3)
		if err := s.SetLink(ctx, b, fmt.Sprint("BR.", i), fmt.Sprintf("+55119%08d", i)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSuppression(ctx, b, fmt.Sprintf("hash-%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteLink(ctx, "biz-0", "BR.0"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b := fmt.Sprintf("biz-%d", i)
		if _, err := s.UpdateBusiness(ctx, b, func(bs *validator.Business) error {
			bs.Templates = map[string][]validator.TemplateState{"promo": {{PausedAt: at, Pauses: i + 1}}}
			bs.Reached = []validator.ReachBucket{{Minute: at.Unix() / 60, Count: i + 10}}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPolicy(ctx, b, []byte(fmt.Sprintf("policy of %s", b))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackupWhileWriting backs up a store while writers keep updating it, and
// restores the backup into a fresh directory:
//   - every record written before the backup is restored with the same value,
//     version and expiry;
//   - the backup is one snapshot: each writer's transaction bumps a number's
//     relationship and its number facts together and records a dedup key, and in
//     the restored store the three always agree;
//   - a later incremental backup (since the first's version), read after the full
//     one, restores exactly the final state, deletions included.
func TestBackupWhileWriting(t *testing.T) {
	ctx := t.Context()
	src := openDisk(t, t.TempDir())
	seed(t, src, 3000)
	before := dump(t, src.DB())

	const writers, hot = 4, 8
	isHot := func(key string) bool {
		return strings.HasPrefix(key, "c\x00+55119876") ||
			strings.HasPrefix(key, "d\x00"+hotBusiness+"\x00")
	}
	var (
		wrote   atomic.Int64
		stop    = make(chan struct{})
		started = make(chan struct{})
		once    sync.Once
		wg      sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (w + n*writers) % hot
				k := storage.ContactKey{Business: hotBusiness, ID: hotNumber(i)}
				err := src.UpdateContact(ctx, k, fmt.Sprintf("%s/%d-%d", k.ID, w, n), func(c *storage.Contact) (storage.Write, error) {
					c.Rel.PairStreak++
					c.Facts.UndeliverableStreak++
					return storage.Write{Rel: true, RelTTL: time.Hour, Facts: true, FactsTTL: time.Hour}, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if wrote.Add(1) == 200 {
					once.Do(func() { close(started) })
				}
			}
		}()
	}
	<-started
	var full bytes.Buffer
	atStart := wrote.Load()
	start := time.Now()
	v1, err := src.Backup(ctx, &full, 0)
	elapsed := time.Since(start)
	during := wrote.Load() - atStart
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full backup: %d bytes, %d records before it, in %s, version %d; %d writes committed while it ran",
		full.Len(), len(before), elapsed, v1, during)

	// The snapshot restores every record written before it, unchanged.
	restored := restoreInto(t, bytes.NewReader(full.Bytes()))
	after := dump(t, restored.DB())
	for k, want := range before {
		got, ok := after[k]
		if !ok {
			t.Errorf("key %q lost", k)
			continue
		}
		if got != want {
			t.Errorf("key %q: restored %+v, want %+v", k, got, want)
		}
	}
	// And only the writers' keys are new, each transaction whole: a hot number's
	// relationship, facts and dedup keys agree.
	dedups := map[string]int{}
	for k := range after {
		if _, ok := before[k]; !ok && !isHot(k) {
			t.Errorf("unexpected key %q", k)
		}
		if rest, ok := strings.CutPrefix(k, "d\x00"+hotBusiness+"\x00"); ok {
			dedups[strings.SplitN(rest, "/", 2)[0]]++
		}
	}
	total := 0
	for i := range hot {
		k := storage.ContactKey{Business: hotBusiness, ID: hotNumber(i)}
		c, err := restored.GetContact(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if c.Rel.PairStreak != c.Facts.UndeliverableStreak || c.Rel.PairStreak != dedups[k.ID] {
			t.Errorf("%s: relationship says %d updates, facts %d, dedup keys %d: the backup cut a transaction",
				k.ID, c.Rel.PairStreak, c.Facts.UndeliverableStreak, dedups[k.ID])
		}
		total += c.Rel.PairStreak
	}
	if total < 200 {
		t.Errorf("the backup holds %d of the writers' updates, want at least the 200 made before it started", total)
	}

	// Changes after the full backup, deletions too, then an incremental backup.
	if err := src.DeleteLink(ctx, "biz-1", "BR.1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := src.DeleteContact(ctx, storage.ContactKey{Business: "biz-2", ID: "+5511900000002"}); err != nil {
		t.Fatal(err)
	}
	if err := src.PutPolicy(ctx, "biz-0", []byte("a newer policy")); err != nil {
		t.Fatal(err)
	}
	var incr bytes.Buffer
	v2, err := src.Backup(ctx, &incr, v1)
	if err != nil {
		t.Fatal(err)
	}
	if v2 <= v1 || incr.Len() >= full.Len() {
		t.Fatalf("incremental backup: version %d after %d, %d bytes after a full %d", v2, v1, incr.Len(), full.Len())
	}
	t.Logf("incremental backup: %d bytes, version %d", incr.Len(), v2)
	final := restoreInto(t, io.MultiReader(bytes.NewReader(full.Bytes()), &incr))
	if got, want := dump(t, final.DB()), dump(t, src.DB()); !reflect.DeepEqual(got, want) {
		t.Fatalf("full + incremental restore differs from the source: %d keys, want %d", len(got), len(want))
	}

	// The restored store works through the storage API as the source does.
	if _, err := final.GetLink(ctx, "biz-1", "BR.1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a link deleted before the incremental backup: %v", err)
	}
	if n, err := final.GetLink(ctx, "biz-2", "BR.2"); err != nil || n != "+5511900000002" {
		t.Errorf("link: %q, %v", n, err)
	}
	if ok, err := final.HasSuppression(ctx, "biz-1", "hash-04"); err != nil || !ok {
		t.Errorf("suppression: %v, %v", ok, err)
	}
	if p, err := final.GetPolicy(ctx, "biz-0"); err != nil || string(p) != "a newer policy" {
		t.Errorf("policy: %q, %v", p, err)
	}
	if b, err := final.GetBusiness(ctx, "biz-2"); err != nil || b.Templates["promo"][0].Pauses != 3 || b.Reached[0].Count != 12 {
		t.Errorf("business: %+v, %v", b, err)
	}
	err = final.UpdateContact(ctx, storage.ContactKey{Business: "biz-1", ID: "+5511900000001"}, "wamid.1",
		func(*storage.Contact) (storage.Write, error) { return storage.Write{}, nil })
	if !errors.Is(err, storage.ErrDuplicate) {
		t.Errorf("a dedup key recorded before the backup: %v, want ErrDuplicate", err)
	}
}

// TestBackupKeepsExpiry checks the expiry of each kind of record after a restore:
// absolute expiry times, unchanged, and none where none was set.
func TestBackupKeepsExpiry(t *testing.T) {
	ctx := t.Context()
	src := openMem(t)
	seed(t, src, 10)
	var buf bytes.Buffer
	if _, err := src.Backup(ctx, &buf, 0); err != nil {
		t.Fatal(err)
	}
	got := dump(t, restoreInto(t, &buf).DB())
	now := uint64(time.Now().Unix())
	for _, c := range []struct {
		key     []byte
		expires bool
	}{
		{contactKey("+5511900000000"), false}, // an opt-out: kept until lifted
		{contactKey("+5511900000001"), true},  // a relationship and facts, both with a TTL
		{dedupKey("biz-1", "wamid.1"), true},
		{linkKey("biz-1", "BR.1"), false},
		{suppressionKey("biz-1", "hash-01"), false},
		{businessKey("biz-1"), false},
		{policyKey("biz-1"), false},
	} {
		r, ok := got[string(c.key)]
		switch {
		case !ok:
			t.Errorf("%q missing", c.key)
		case c.expires && (r.ExpiresAt <= now || r.ExpiresAt > now+uint64((storage.DedupTTL+time.Minute)/time.Second)):
			t.Errorf("%q expires at %d, want a time within DedupTTL of now (%d)", c.key, r.ExpiresAt, now)
		case !c.expires && r.ExpiresAt != 0:
			t.Errorf("%q expires at %d, want never", c.key, r.ExpiresAt)
		}
	}
	if r := got[string(dedupKey("biz-1", "wamid.1"))]; r.ExpiresAt < now+uint64((storage.DedupTTL-time.Minute)/time.Second) {
		t.Errorf("dedup key expires at %d, want about now + DedupTTL", r.ExpiresAt)
	}
}

func TestRestoreRefusesNonEmptyDir(t *testing.T) {
	var buf bytes.Buffer
	if _, err := openMem(t).Backup(t.Context(), &buf, 0); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Restore(Options{Dir: dir, Logger: quietLogger()}, bytes.NewReader(buf.Bytes()))
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a non-empty directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(b) != "mine" {
		t.Fatalf("the directory's file after a refused restore: %q, %v", b, err)
	}

	// An existing store is refused too, open or closed.
	live := t.TempDir()
	openDisk(t, live)
	if err := Restore(Options{Dir: live, Logger: quietLogger()}, bytes.NewReader(buf.Bytes())); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a store's directory: %v", err)
	}
	if err := Restore(Options{InMemory: true}, bytes.NewReader(buf.Bytes())); err == nil {
		t.Fatal("restore in memory succeeded")
	}

	// A new directory and an existing empty one are both fine.
	for _, d := range []string{filepath.Join(t.TempDir(), "a", "b"), t.TempDir()} {
		if err := Restore(Options{Dir: d, Logger: quietLogger()}, bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatalf("restore into %s: %v", d, err)
		}
	}
}

// TestRestoreFailureKeepsNothing restores a truncated backup: the error wraps
// ErrUnavailable and nothing is left behind to be mistaken for a restored store.
func TestRestoreFailureKeepsNothing(t *testing.T) {
	src := openMem(t)
	seed(t, src, 50)
	var buf bytes.Buffer
	if _, err := src.Backup(t.Context(), &buf, 0); err != nil {
		t.Fatal(err)
	}
	cut := buf.Bytes()[:buf.Len()-10]

	created := filepath.Join(t.TempDir(), "new")
	err := Restore(Options{Dir: created, Logger: quietLogger()}, bytes.NewReader(cut))
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("restore of a truncated backup: %v", err)
	}
	if _, err := os.Stat(created); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the directory restore created is still there: %v", err)
	}
	empty := t.TempDir()
	if err := Restore(Options{Dir: empty, Logger: quietLogger()}, bytes.NewReader(cut)); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("restore of a truncated backup: %v", err)
	}
	if entries, err := os.ReadDir(empty); err != nil || len(entries) != 0 {
		t.Fatalf("the empty directory after a failed restore: %v, %v", entries, err)
	}
}

// slowWriter writes at about 64 MB/s, as a client on a slow link.
type slowWriter struct{ n atomic.Int64 }

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(time.Duration(len(p)>>16) * time.Millisecond)
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// TestBackupLargerThanReadAhead backs up more data than the reader may run ahead
// of the writer (backupAhead), to a slow writer: the reader is held back and let
// go again until the end, and everything arrives.
func TestBackupLargerThanReadAhead(t *testing.T) {
	s := openMem(t)
	value := bytes.Repeat([]byte("0123456789abcdef"), 60<<10/16) // 60 KB: in-memory stores keep values under their value threshold
	keys := 2 * backupAhead / len(value)
	wb := s.DB().NewWriteBatch()
	defer wb.Cancel()
	for i := range keys {
		if err := wb.Set(policyKey(fmt.Sprintf("biz-%04d", i)), value); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	w := &slowWriter{}
	go func() {
		_, err := s.Backup(t.Context(), w, 0)
		done <- err
	}()
	// Stuck means no progress: a wall-clock deadline for the whole backup failed
	// on a loaded machine (19 s for what takes 2 s quiet), while a reader that is
	// never let go stops the writes for good.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, idle := int64(-1), 0
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		case <-tick.C:
			n := w.n.Load()
			if n != last {
				last, idle = n, 0
				continue
			}
			idle++
			if idle == 20 {
				t.Fatalf("backup stuck at %d bytes for 20 s: the reader was held back and never let go", n)
			}
		}
	}
	if n := w.n.Load(); n < int64(keys*len(value)) {
		t.Fatalf("backup wrote %d bytes, want at least %d", n, keys*len(value))
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestBackupErrors(t *testing.T) {
	s := openMem(t)
	seed(t, s, 10)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Backup(ctx, io.Discard, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Backup with an ended context: %v", err)
	}

	broken := errors.New("connection reset")
	_, err := s.Backup(t.Context(), failingWriter{broken}, 0)
	if !errors.Is(err, broken) || errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Backup to a failing writer: %v, want the writer's error, not ErrUnavailable", err)
	}

	// Nothing newer than the latest version: an empty backup, the same version.
	v, err := s.Backup(t.Context(), io.Discard, 0)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if v2, err := s.Backup(t.Context(), &buf, v); err != nil || v2 != v || buf.Len() != 0 {
		t.Errorf("incremental backup with no changes: version %d (want %d), %d bytes, %v", v2, v, buf.Len(), err)
	}

	s.Close()
	if _, err := s.Backup(t.Context(), io.Discard, 0); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Backup after Close: %v", err)
	}
}

// BenchmarkBackup backs up a store of b relationships (with their number facts
// and dedup keys) to io.Discard; it reports bytes and keys per second.
func BenchmarkBackup(b *testing.B) {
	for _, numbers := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(numbers), func(b *testing.B) {
			s := openDisk(b, b.TempDir())
			now := time.Unix(1_780_000_000, 0).UTC()
			for lo := 0; lo < numbers; lo += 1000 {
				var ups []storage.ContactUpdate
				for i := lo; i < min(lo+1000, numbers); i++ {
					ups = append(ups, storage.ContactUpdate{
						Key:   storage.ContactKey{Business: "biz-1", ID: fmt.Sprintf("+55119%08d", i)},
						Dedup: fmt.Sprint("wamid.", i),
						Fn: func(c *storage.Contact) (storage.Write, error) {
							for j := range keptSends {
								_, _ = reserve(now.Add(time.Duration(j) * time.Hour))(c)
							}
							c.Facts.LastDeliveredAt = now
							return storage.Write{Rel: true, RelTTL: 7 * 24 * time.Hour, Facts: true, FactsTTL: 7 * 24 * time.Hour}, nil
						},
					})
				}
				if _, err := s.UpdateContacts(b.Context(), ups); err != nil {
					b.Fatal(err)
				}
			}
			var n countWriter
			b.ResetTimer()
			for b.Loop() {
				n = 0
				if _, err := s.Backup(b.Context(), &n, 0); err != nil {
					b.Fatal(err)
				}
			}
			perOp := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(n), "bytes/backup")
			b.ReportMetric(float64(n)/perOp/1e6, "MB/s")
			b.ReportMetric(float64(3*numbers)/perOp, "keys/s")
		})
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
