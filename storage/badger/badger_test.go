package badger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/storagetest"
	"github.com/sendguard/sendguard/validator"
)

// TestMain fails the package if any goroutine outlives the tests: every store is
// closed by its test, and Close must stop the GC loop and all of Badger's
// goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openMem(t testing.TB) *Store {
	t.Helper()
	s, err := Open(Options{InMemory: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openDisk(t testing.TB, dir string) *Store {
	t.Helper()
	// A short GC interval so that the GC loop runs during the tests.
	s, err := Open(Options{Dir: dir, Logger: quietLogger(), GCInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformanceInMemory(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return openMem(t) })
}

func TestConformanceOnDisk(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return openDisk(t, t.TempDir()) })
}

// The same suite with the record cache (cache.go) on, small enough that it
// evicts during the suite.
func TestConformanceInMemoryCached(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return openCached(t, "", 64<<10) })
}

func TestConformanceOnDiskCached(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return openCached(t, t.TempDir(), 1<<20) })
}

// openCached opens a store with a record cache of size bytes, on disk in dir or
// in memory ("").
func openCached(t testing.TB, dir string, size int64) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, InMemory: dir == "", Logger: quietLogger(), RecordCache: size})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestOpenOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"neither":   {},
		"both":      {Dir: t.TempDir(), InMemory: true},
		"dir taken": {}, // filled below: a directory another store holds
	} {
		t.Run(name, func(t *testing.T) {
			if name == "dir taken" {
				dir := t.TempDir()
				openDisk(t, dir)
				o = Options{Dir: dir, Logger: quietLogger()}
			}
			s, err := Open(o)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	k := storage.ContactKey{Business: "b", ID: "+5511987654321"}
	rel := validator.Relationship{
		OwnStopAt: time.Unix(1_780_000_000, 0).UTC(), OwnStopReason: "STOP",
		Sends: []validator.Send{{At: time.Unix(1_780_000_001, 0).UTC(), Ref: "r1", Category: sgv1.Category_CATEGORY_MARKETING}},
	}
	facts := validator.NumberFacts{EcoStreak: 1, EcoAt: time.Unix(1_780_000_002, 0).UTC()}

	s := openDisk(t, dir)
	if err := s.UpdateContact(ctx, k, "wamid.1", func(c *storage.Contact) (storage.Write, error) {
		c.Rel, c.Facts = rel, facts
		return storage.Write{Rel: true, Facts: true, FactsTTL: time.Hour}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLink(ctx, "b", "BR.1", k.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPolicy(ctx, "b", []byte{8, 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openDisk(t, dir)
	c, err := s.GetContact(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	want := storage.Contact{Rel: rel, RelFound: true, Facts: facts, FactsFound: true}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("after reopening:\n got %+v\nwant %+v", c, want)
	}
	if n, err := s.GetLink(ctx, "b", "BR.1"); err != nil || n != k.ID {
		t.Fatalf("link after reopening: %q, %v", n, err)
	}
	if p, err := s.GetPolicy(ctx, "b"); err != nil || !bytes.Equal(p, []byte{8, 1}) {
		t.Fatalf("policy after reopening: %x, %v", p, err)
	}
	// The dedup key survived too.
	err = s.UpdateContact(ctx, k, "wamid.1", func(*storage.Contact) (storage.Write, error) { return storage.Write{}, nil })
	if !errors.Is(err, storage.ErrDuplicate) {
		t.Fatalf("dedup key after reopening: err = %v, want ErrDuplicate", err)
	}
}

// TestForgetLeavesNothing forgets a number from both businesses that hold it and
// checks, over every key of the store, that nothing naming it is left.
func TestForgetLeavesNothing(t *testing.T) {
	ctx := t.Context()
	s := openMem(t)
	const number = "+5511987654321"
	write := func(c *storage.Contact) (storage.Write, error) {
		c.Rel.Sends = append(c.Rel.Sends, validator.Send{Ref: "r"})
		c.Facts.EcoStreak++
		return storage.Write{Rel: true, Facts: true}, nil
	}
	for _, b := range []string{"a", "b"} {
		if err := s.UpdateContact(ctx, storage.ContactKey{Business: b, ID: number}, "", write); err != nil {
			t.Fatal(err)
		}
		if err := s.SetLink(ctx, b, "BR.1", number); err != nil {
			t.Fatal(err)
		}
	}
	// Someone else's state stays.
	other := storage.ContactKey{Business: "a", ID: "+5511987654322"}
	if err := s.UpdateContact(ctx, other, "", write); err != nil {
		t.Fatal(err)
	}

	for _, b := range []string{"a", "b"} {
		if _, _, err := s.DeleteContact(ctx, storage.ContactKey{Business: b, ID: number}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteLink(ctx, b, "BR.1"); err != nil {
			t.Fatal(err)
		}
	}
	var left [][]byte
	if err := s.Scan(ctx, nil, func(key []byte) error {
		left = append(left, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{contactKey(other.ID)}
	if !reflect.DeepEqual(left, want) {
		t.Fatalf("keys left after forgetting %s: %q, want %q", number, left, want)
	}
}

func TestScan(t *testing.T) {
	ctx := t.Context()
	s := openMem(t)
	for _, h := range []string{"h1", "h2"} {
		for _, b := range []string{"a", "ab"} {
			if err := s.PutSuppression(ctx, b, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []string
	if err := s.Scan(ctx, suppressionKey("a", ""), func(key []byte) error {
		got = append(got, string(key))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"s\x00a\x00h1", "s\x00a\x00h2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Scan = %q, want %q", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Scan(ctx, nil, func([]byte) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("Scan with a failing fn = %v after %d keys, want fn's error after 1", err, n)
	}
	s.Close()
	if err := s.Scan(ctx, nil, func([]byte) error { return nil }); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Scan after Close: %v", err)
	}
}

func TestNegativeTTLDeletes(t *testing.T) {
	ctx := t.Context()
	s := openMem(t)
	k := storage.ContactKey{Business: "a", ID: "+5511987654321"}
	set := func(ttl time.Duration) {
		t.Helper()
		if err := s.UpdateContact(ctx, k, "", func(c *storage.Contact) (storage.Write, error) {
			c.Rel.PairStreak = 1
			return storage.Write{Rel: true, RelTTL: ttl}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	set(time.Hour)
	set(-time.Second)
	if c, err := s.GetContact(ctx, k); err != nil || c.RelFound {
		t.Fatalf("after a write with a negative TTL: %+v, %v", c, err)
	}
}

func TestCorruptRecordIsNotUnavailable(t *testing.T) {
	ctx := t.Context()
	s := openMem(t)
	k := storage.ContactKey{Business: "a", ID: "+5511987654321"}
	// Through the store's own write path, so that the key filter holds the key.
	if err := s.write(ctx, "test", func(t txn) error { return t.put(contactKey(k.ID), []byte{0xff}, 0) }); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetContact(ctx, k)
	if err == nil || errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("GetContact of a corrupt record: err = %v, want a non-Unavailable error", err)
	}
	if bytes.Contains([]byte(err.Error()), []byte(k.ID)) {
		t.Fatalf("error names the number: %v", err)
	}
}

func TestContextEnds(t *testing.T) {
	s := openMem(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	k := storage.ContactKey{Business: "a", ID: "+5511987654321"}
	if err := s.UpdateContact(ctx, k, "", func(*storage.Contact) (storage.Write, error) {
		t.Error("fn called with an ended context")
		return storage.Write{}, nil
	}); !errors.Is(err, context.Canceled) {
		t.Fatalf("UpdateContact with an ended context: %v", err)
	}

	// A caller waiting for a number's lock gives up when its context ends.
	held := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- s.UpdateContact(t.Context(), k, "", func(*storage.Contact) (storage.Write, error) {
			close(held)
			<-release
			return storage.Write{}, nil
		})
	}()
	<-held
	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err := s.UpdateContact(ctx, k, "", func(*storage.Contact) (storage.Write, error) { return storage.Write{}, nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("UpdateContact waiting for a held number: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCloseWaitsForCalls closes the store while updates run: each either
// completes or reports ErrUnavailable, and nothing panics.
func TestCloseWaitsForCalls(t *testing.T) {
	s := openDisk(t, t.TempDir())
	var ok, unavailable atomic.Int32
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			k := storage.ContactKey{Business: "a", ID: fmt.Sprintf("+55119876543%02d", i)}
			for {
				err := s.UpdateContact(context.Background(), k, "", func(c *storage.Contact) (storage.Write, error) {
					c.Rel.PairStreak++
					return storage.Write{Rel: true}, nil
				})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, storage.ErrUnavailable):
					unavailable.Add(1)
					return
				default:
					t.Errorf("UpdateContact: %v", err)
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 8 {
		<-done
	}
	if ok.Load() == 0 || unavailable.Load() != 8 {
		t.Fatalf("%d updates before Close, %d workers stopped by it; want some and 8", ok.Load(), unavailable.Load())
	}
}

func TestSlogAdapter(t *testing.T) {
	var buf bytes.Buffer
	a := slogAdapter{slog.New(slog.NewTextHandler(&buf, nil))}
	a.Infof("flushing %d\n", 1)
	a.Debugf("noise")
	a.Warningf("slow %s\n", "disk")
	a.Errorf("broken")
	got := buf.String()
	for _, want := range []string{`level=WARN msg="slow disk" component=badger`, `level=ERROR msg=broken component=badger`} {
		if !bytes.Contains([]byte(got), []byte(want)) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
	if bytes.Contains([]byte(got), []byte("flushing")) || bytes.Contains([]byte(got), []byte("noise")) {
		t.Errorf("info or debug logged: %q", got)
	}
}
