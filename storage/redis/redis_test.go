package redis_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/redistest"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/redis"
	"github.com/sendguard/sendguard/storage/storagetest"
	"github.com/sendguard/sendguard/validator"
)

var prefixes atomic.Int64

// open returns a store on addrs with a prefix of its own, so that every store is
// empty however many share the deployment.
func open(t *testing.T, mode string, addrs ...string) *redis.Store {
	t.Helper()
	s, err := redis.Open(t.Context(), redis.Options{
		Addrs:  addrs,
		Mode:   mode,
		Prefix: fmt.Sprintf("t%d:", prefixes.Add(1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sharing returns n stores on addrs that share one prefix: n replicas.
func sharing(t *testing.T, n int, addrs ...string) []*redis.Store {
	t.Helper()
	prefix := fmt.Sprintf("t%d:", prefixes.Add(1))
	var out []*redis.Store
	for range n {
		s, err := redis.Open(t.Context(), redis.Options{Addrs: addrs, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

// TestCluster runs the conformance suite and the multi-replica tests on one
// 3-master, 3-replica cluster.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, redistest.Options{})
	t.Run("Conformance", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Store {
			s := open(t, redis.ModeAuto, c.Addrs()[0]) // one seed is enough: auto-detected
			if !s.Cluster() {
				t.Fatal("a cluster seed was not detected as a cluster")
			}
			return s
		})
	})
	t.Run("ConformanceWaitingForReplicas", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Store {
			s, err := redis.Open(t.Context(), redis.Options{Addrs: c.Addrs(), Prefix: fmt.Sprintf("t%d:", prefixes.Add(1)), WaitReplicas: 1})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("WaitTimesOut", func(t *testing.T) { testWaitTimesOut(t, c.Addrs()) })
	t.Run("ReplicasReserveOnce", func(t *testing.T) { testReplicasReserveOnce(t, sharing(t, 2, c.Addrs()...)) })
	t.Run("ReplicasLoseNoUpdate", func(t *testing.T) { testReplicasLoseNoUpdate(t, sharing(t, 2, c.Addrs()...)) })
	t.Run("ReplicasBusiness", func(t *testing.T) { testReplicasBusiness(t, sharing(t, 2, c.Addrs()...)) })
	t.Run("ReplicasBatch", func(t *testing.T) { testReplicasBatch(t, sharing(t, 2, c.Addrs()...)) })
	t.Run("SharedSecret", func(t *testing.T) { testSharedSecret(t, sharing(t, 2, c.Addrs()...)) })
	t.Run("SharedValue", func(t *testing.T) { testSharedValue(t, sharing(t, 2, c.Addrs()...)) })
}

// testWaitTimesOut: a store that waits for more replicas than a master has
// reports the write as unavailable (it was applied on the master only), and a
// retry with the same dedup key is then a duplicate.
func testWaitTimesOut(t *testing.T, addrs []string) {
	s, err := redis.Open(t.Context(), redis.Options{Addrs: addrs, Prefix: fmt.Sprintf("t%d:", prefixes.Add(1)),
		WaitReplicas: 2, WaitTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := storage.ContactKey{Business: "acme", ID: "+5511900000009"}
	inc := func(c *storage.Contact) (storage.Write, error) {
		c.Rel.PairStreak++
		return storage.Write{Rel: true}, nil
	}
	err = s.UpdateContact(t.Context(), k, "ev-1", inc)
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "1 of 2 replicas") {
		t.Fatalf("write waiting for 2 replicas of a master that has 1: %v", err)
	}
	if err := s.UpdateContact(t.Context(), k, "ev-1", inc); !errors.Is(err, storage.ErrDuplicate) {
		t.Fatalf("retry of a write applied on the master: %v, want ErrDuplicate", err)
	}
	if c, err := s.GetContact(t.Context(), k); err != nil || c.Rel.PairStreak != 1 {
		t.Fatalf("after the timed-out wait: %+v, %v", c.Rel.PairStreak, err)
	}
}

// TestSingle runs the conformance suite on one standalone server.
func TestSingle(t *testing.T) {
	srv := redistest.StartServer(t)
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s := open(t, redis.ModeAuto, srv.Addr())
		if s.Cluster() {
			t.Fatal("a standalone server was taken for a cluster")
		}
		return s
	})
	t.Run("ReplicasReserveOnce", func(t *testing.T) { testReplicasReserveOnce(t, sharing(t, 2, srv.Addr())) })
}

// testReplicasReserveOnce: 40 concurrent check-and-reserves of one number, split
// over two replicas (whose in-process locks do not see each other), reserve once.
func testReplicasReserveOnce(t *testing.T, stores []*redis.Store) {
	k := storage.ContactKey{Business: "acme", ID: "+5511987654321"}
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		s := stores[i%len(stores)]
		wg.Go(func() {
			err := s.UpdateContact(t.Context(), k, "", func(c *storage.Contact) (storage.Write, error) {
				if len(c.Rel.Sends) > 0 {
					return storage.Write{}, nil
				}
				c.Rel.Sends = append(c.Rel.Sends, validator.Send{At: time.Unix(1_780_000_000, 0).UTC(), Ref: fmt.Sprint("r", i)})
				return storage.Write{Rel: true}, nil
			})
			if err != nil {
				t.Errorf("UpdateContact: %v", err)
				return
			}
			c, err := s.GetContact(t.Context(), k)
			if err == nil && len(c.Rel.Sends) == 1 && c.Rel.Sends[0].Ref == fmt.Sprint("r", i) {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	c, err := stores[0].GetContact(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rel.Sends) != 1 || allowed.Load() != 1 {
		t.Fatalf("%d sends stored, %d callers saw their own reserve; want 1 and 1", len(c.Rel.Sends), allowed.Load())
	}
}

// testReplicasLoseNoUpdate: increments of one number from two replicas, with a
// dedup key each, all land once.
func testReplicasLoseNoUpdate(t *testing.T, stores []*redis.Store) {
	k := storage.ContactKey{Business: "acme", ID: "+5511900000001"}
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for i := range each {
				err := s.UpdateContact(t.Context(), k, fmt.Sprintf("ev-%d-%d", w, i), func(c *storage.Contact) (storage.Write, error) {
					c.Rel.PairStreak++
					c.Facts.EcoStreak++
					return storage.Write{Rel: true, Facts: true}, nil
				})
				if err != nil {
					t.Errorf("UpdateContact: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Every event again, through the other replica: all duplicates.
	for w := range workers {
		err := stores[(w+1)%len(stores)].UpdateContact(t.Context(), k, fmt.Sprintf("ev-%d-0", w), func(c *storage.Contact) (storage.Write, error) {
			c.Rel.PairStreak++
			return storage.Write{Rel: true}, nil
		})
		if !errors.Is(err, storage.ErrDuplicate) {
			t.Fatalf("event replayed through another replica: %v, want ErrDuplicate", err)
		}
	}
	c, err := stores[1].GetContact(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rel.PairStreak != workers*each || c.Facts.EcoStreak != workers*each {
		t.Fatalf("counters %d and %d after %d increments from two replicas", c.Rel.PairStreak, c.Facts.EcoStreak, workers*each)
	}
}

// testReplicasBusiness: template changes and first reaches from two replicas are
// all kept; reach counts for the same minute add up.
func testReplicasBusiness(t *testing.T, stores []*redis.Store) {
	const workers, each = 6, 10
	minute := time.Now().Unix() / 60
	var wg sync.WaitGroup
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for range each {
				_, err := s.UpdateBusiness(t.Context(), "acme", func(b *validator.Business) error {
					if b.Templates == nil {
						b.Templates = map[string][]validator.TemplateState{}
					}
					ts := slices.Clone(b.Templates["sale"])
					if len(ts) == 0 {
						ts = []validator.TemplateState{{}}
					}
					ts[0].Pauses++
					b.Templates["sale"] = ts
					// As the server does: add one reach to the fresh state.
					for i := range b.Reached {
						if b.Reached[i].Minute == minute {
							b.Reached[i].Count++
							return nil
						}
					}
					b.Reached = append(b.Reached, validator.ReachBucket{Minute: minute, Count: 1})
					return nil
				})
				if err != nil {
					t.Errorf("UpdateBusiness: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, s := range stores {
		b, err := s.GetBusiness(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if b.Templates["sale"][0].Pauses != workers*each || len(b.Reached) != 1 || b.Reached[0].Count != workers*each {
			t.Fatalf("replica %d reads %+v after %d updates from two replicas", i, b, workers*each)
		}
	}
}

// testReplicasBatch: a webhook batch on one replica (with two updates of each
// number, chained) and single updates of the same numbers on another lose
// nothing and apply nothing twice.
func testReplicasBatch(t *testing.T, stores []*redis.Store) {
	keys := make([]storage.ContactKey, 10)
	for i := range keys {
		keys[i] = storage.ContactKey{Business: "acme", ID: fmt.Sprintf("+55117%08d", i)}
	}
	inc := func(c *storage.Contact) (storage.Write, error) {
		c.Rel.PairStreak++
		return storage.Write{Rel: true}, nil
	}
	const rounds = 20
	var wg sync.WaitGroup
	wg.Go(func() {
		for r := range rounds {
			var ups []storage.ContactUpdate
			for i, k := range keys { // each number twice: chained updates in one batch
				ups = append(ups,
					storage.ContactUpdate{Key: k, Dedup: fmt.Sprintf("b-%d-%d", r, i), Fn: inc},
					storage.ContactUpdate{Key: k, Dedup: fmt.Sprintf("c-%d-%d", r, i), Fn: inc})
			}
			res, err := stores[0].UpdateContacts(t.Context(), ups)
			if err != nil {
				t.Errorf("UpdateContacts: %v", err)
				return
			}
			for _, e := range res {
				if e != nil {
					t.Errorf("batch update: %v", e)
				}
			}
		}
	})
	wg.Go(func() {
		for r := range rounds {
			for i, k := range keys {
				if err := stores[1].UpdateContact(t.Context(), k, fmt.Sprintf("s-%d-%d", r, i), inc); err != nil {
					t.Errorf("UpdateContact: %v", err)
					return
				}
			}
		}
	})
	wg.Wait()
	for _, k := range keys {
		c, err := stores[0].GetContact(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		if c.Rel.PairStreak != 3*rounds {
			t.Fatalf("%s: counter %d, want %d", k.ID, c.Rel.PairStreak, 3*rounds)
		}
	}
}

func testSharedSecret(t *testing.T, stores []*redis.Store) {
	a, err := stores[0].SharedSecret(t.Context(), "suppression")
	if err != nil {
		t.Fatal(err)
	}
	b, err := stores[1].SharedSecret(t.Context(), "suppression")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) < 32 || !bytes.Equal(a, b) {
		t.Fatalf("replicas got different secrets (%d and %d bytes)", len(a), len(b))
	}
	if c, _ := stores[1].SharedSecret(t.Context(), "other"); bytes.Equal(c, a) {
		t.Fatal("two names share a secret")
	}
}

// testSharedValue: the first replica's value under a name wins, on a cluster
// whose masters have replicas (the value is WAITed for); names are apart.
func testSharedValue(t *testing.T, stores []*redis.Store) {
	a, err := stores[0].SharedValue(t.Context(), "fingerprint", []byte("first"))
	if err != nil || string(a) != "first" {
		t.Fatalf("first value: %q, %v", a, err)
	}
	b, err := stores[1].SharedValue(t.Context(), "fingerprint", []byte("second"))
	if err != nil || string(b) != "first" {
		t.Fatalf("second replica's value: %q, %v; want the first's", b, err)
	}
	if c, err := stores[1].SharedValue(t.Context(), "other", []byte("second")); err != nil || string(c) != "second" {
		t.Fatalf("another name: %q, %v", c, err)
	}
	if s, err := stores[0].SharedSecret(t.Context(), "fingerprint"); err != nil || bytes.Equal(s, a) {
		t.Fatalf("a secret and a value of one name share a key: %q, %v", s, err)
	}
}

// TestFailover kills the master that serves one number: updates of that number
// fail with storage.ErrUnavailable (not a hang, not a panic) while a number on
// another master goes on working; once the replica has taken over, the number
// works again.
func TestFailover(t *testing.T) {
	c := redistest.StartCluster(t, redistest.Options{})
	s := open(t, redis.ModeCluster, c.Addrs()...)
	defer s.Close()
	ctx := t.Context()
	victim := storage.ContactKey{Business: "acme", ID: "+5511900000001"}
	// The key of a recipient is tagged with its id, so it is in the id's slot;
	// find a number on another master.
	dead := c.MasterOf(t, victim.ID)
	other := storage.ContactKey{Business: "acme", ID: c.FirstNotOn(t, dead, func(n int) string { return fmt.Sprintf("+55119%08d", n+2) })}
	inc := func(c *storage.Contact) (storage.Write, error) {
		c.Rel.PairStreak++
		return storage.Write{Rel: true}, nil
	}
	for _, k := range []storage.ContactKey{victim, other} {
		if err := s.UpdateContact(ctx, k, "", inc); err != nil {
			t.Fatal(err)
		}
	}

	c.Kill(t, dead)
	// Bounded: the node timeout is 1 s, the failover a few.
	err := redistest.UntilFails(t, 20, 50*time.Millisecond, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return s.UpdateContact(cctx, victim, "", inc)
	})
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("update on the dead master's slot: %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), victim.ID) {
		t.Fatalf("error names the number: %v", err)
	}
	if err := s.UpdateContact(ctx, other, "", inc); err != nil {
		t.Fatalf("a number on a live master failed while another master was down: %v", err)
	}

	c.WaitFailover(t, dead, 30*time.Second)
	redistest.UntilSucceeds(t, 20*time.Second, 100*time.Millisecond, func() error { return s.UpdateContact(ctx, victim, "", inc) })
	got, err := s.GetContact(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	// Replication is asynchronous: the write before the kill may or may not have
	// reached the replica. The update after the failover did land.
	if got.Rel.PairStreak < 1 || got.Rel.PairStreak > 2 {
		t.Fatalf("counter %d after the failover, want 1 or 2", got.Rel.PairStreak)
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want redis.Options
		err  string
	}{
		{in: "redis://127.0.0.1:6379", want: redis.Options{Addrs: []string{"127.0.0.1:6379"}, Mode: "auto", Prefix: "sg:", Timeout: 2 * time.Second}},
		{in: "redis://a:1,b:2,c:3?mode=cluster&prefix=x:&timeout=500ms&pool=4",
			want: redis.Options{Addrs: []string{"a:1", "b:2", "c:3"}, Mode: "cluster", Prefix: "x:", Timeout: 500 * time.Millisecond, PoolSize: 4}},
		{in: "redis://user:s%40cret@h:1/2?mode=single",
			want: redis.Options{Addrs: []string{"h:1"}, Mode: "single", Username: "user", Password: "s@cret", DB: 2, Prefix: "sg:", Timeout: 2 * time.Second}},
		{in: "redis://h:1?wait=1&wait_timeout=3s",
			want: redis.Options{Addrs: []string{"h:1"}, Mode: "auto", Prefix: "sg:", Timeout: 4 * time.Second, WaitReplicas: 1, WaitTimeout: 3 * time.Second}},
		{in: "redis://h:1?wait=x", err: "wait"},
		{in: "redis://:pw@h:1", want: redis.Options{Addrs: []string{"h:1"}, Mode: "auto", Password: "pw", Prefix: "sg:", Timeout: 2 * time.Second}},
		{in: "http://h:1", err: "want redis://"},
		{in: "redis://h", err: "not host:port"},
		{in: "redis://h:0", err: "bad port"},
		{in: "redis://a:1,b:2?mode=single", err: "one address"},
		{in: "redis://h:1?mode=fast", err: "mode"},
		{in: "redis://h:1?foo=1", err: "unknown parameter"},
		{in: "redis://h:1?prefix={x}", err: "must not contain"},
		{in: "redis://:hunter2@h:1?timeout=-1s", err: "timeout"},
		{in: "redis://h:1/x", err: "database"},
	} {
		got, err := redis.ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseURL(%q) error = %v, want one containing %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("ParseURL(%q) error shows the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"redis://127.0.0.1:6379", "redis://a:1,b:2?mode=cluster", "redis://u:p@h:1/3?pool=2", "redis://[::1]:6379"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := redis.ParseURL(s)
		if err == nil && len(o.Addrs) == 0 {
			t.Fatalf("ParseURL(%q) accepted no address", s)
		}
	})
}

// TestTimeoutIsUnavailable: a Redis that stops answering (a network that drops
// packets, not one that refuses) makes calls fail with storage.ErrUnavailable
// after the configured timeout, not with the context's deadline error: the
// caller's context is still live, so the server must answer UNAVAILABLE.
func TestTimeoutIsUnavailable(t *testing.T) {
	srv := redistest.StartServer(t)
	var frozen atomic.Bool
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // a proxy to the server that can be frozen
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				c.Close()
				return
			}
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if err != nil {
						dst.Close()
						return
					}
					if frozen.Load() {
						continue // dropped
					}
					if _, err := dst.Write(buf[:n]); err != nil {
						return
					}
				}
			}
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
	s, err := redis.Open(t.Context(), redis.Options{Addrs: []string{l.Addr().String()}, Mode: redis.ModeSingle, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := storage.ContactKey{Business: "acme", ID: "+5511900000001"}
	if _, err := s.GetContact(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	frozen.Store(true)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err = s.GetContact(ctx, k)
	if !errors.Is(err, storage.ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("GetContact through a frozen network: %v (context: %v), want ErrUnavailable before the context ends", err, ctx.Err())
	}
	if err := s.Ping(ctx); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Ping through a frozen network: %v, want ErrUnavailable", err)
	}
}
