package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
	"github.com/sendguard/sendguard/storage/faulty"
)

// replicated stands for a backend with capabilities (as Redis has): shared by
// replicas, keeping their secret, answering pings.
type replicated struct {
	storage.Store
	shared bool
}

func (r replicated) SharedByReplicas() bool { return r.shared }
func (replicated) SharedSecret(context.Context, string) ([]byte, error) {
	return []byte("kept"), nil
}
func (replicated) SharedValue(_ context.Context, _ string, v []byte) ([]byte, error) {
	return v, nil
}
func (replicated) Ping(context.Context) error { return errors.New("pong from the backend") }

// decorator stands for a decorator that forwards by Unwrap alone.
type decorator struct{ storage.Store }

func (d decorator) Unwrap() storage.Store { return d.Store }

// pinging is a decorator that answers pings itself.
type pinging struct{ decorator }

func (pinging) Ping(context.Context) error { return nil }

// TestUnwrapAs: a capability is found on the store, through any chain of
// decorators that unwrap (storage/faulty among them), first on the decorator
// that implements it itself; not through a wrapper that does not unwrap, nor on
// a store that lacks it.
func TestUnwrapAs(t *testing.T) {
	st, err := badger.Open(badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	backend := replicated{Store: st, shared: true}
	for name, c := range map[string]struct {
		st               storage.Store
		shared, keeps    bool
		pingErr, backups bool
	}{
		"badger":                     {st: st, backups: true},
		"badger under faulty":        {st: faulty.Wrap(st), backups: true},
		"backend":                    {st: backend, shared: true, keeps: true, pingErr: true},
		"backend under faulty":       {st: faulty.Wrap(backend), shared: true, keeps: true, pingErr: true},
		"backend under two":          {st: decorator{faulty.Wrap(backend)}, shared: true, keeps: true, pingErr: true},
		"decorator that pings":       {st: pinging{decorator{backend}}, shared: true, keeps: true},
		"wrapper that hides":         {st: struct{ storage.Store }{backend}},
		"backend that is not shared": {st: faulty.Wrap(replicated{Store: st}), keeps: true, pingErr: true},
	} {
		if got := storage.IsShared(c.st); got != c.shared {
			t.Errorf("%s: IsShared %v, want %v", name, got, c.shared)
		}
		k, ok := storage.UnwrapAs[storage.SecretKeeper](c.st)
		if ok != c.keeps {
			t.Errorf("%s: SecretKeeper found %v, want %v", name, ok, c.keeps)
		} else if ok {
			if b, err := k.SharedSecret(context.Background(), "hash"); err != nil || string(b) != "kept" {
				t.Errorf("%s: SharedSecret %q, %v", name, b, err)
			}
		}
		p, ok := storage.UnwrapAs[storage.Pinger](c.st)
		switch {
		case ok && (p.Ping(context.Background()) != nil) != c.pingErr:
			t.Errorf("%s: Ping answered by the wrong store", name)
		case !ok && (c.pingErr || name == "decorator that pings"):
			t.Errorf("%s: no Pinger found", name)
		}
		if _, ok := storage.UnwrapAs[storage.Backuper](c.st); ok != c.backups {
			t.Errorf("%s: Backuper found %v, want %v", name, ok, c.backups)
		}
		if _, ok := storage.UnwrapAs[storage.SpaceGuard](c.st); ok != c.backups {
			t.Errorf("%s: SpaceGuard found %v, want %v", name, ok, c.backups)
		}
	}
	if _, ok := storage.UnwrapAs[storage.Pinger](nil); ok {
		t.Error("a capability of no store")
	}
}
