package serve

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const brPhone = "+5511987654321"

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestRunDrainsStreams: stopping the server lets an open stream finish, then closes
// the store.
func TestRunDrainsStreams(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.APIAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = discardLogger()
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	c, err := client.Dial(r.Server().GRPCAddr(), client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stream, err := c.CheckStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	send := func(id string) {
		t.Helper()
		if err := stream.Send(&sgv1.CheckSendRequest{RequestId: id, BusinessId: "acme", Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || resp.GetRequestId() != id {
			t.Fatalf("row %s: %v %v", id, resp, err)
		}
	}
	send("before")
	cancel() // SIGTERM
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run returned with a stream open: %v", err)
	default:
	}
	send("during drain")
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Fatal("stream not ended")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after the stream ended")
	}
	// The store is closed: reopening the directory works.
	st, err := badger.Open(badger.Options{Dir: cfg.DataDir})
	if err != nil {
		t.Fatalf("store not closed: %v", err)
	}
	st.Close()
}

// memStore is an in-memory Badger store, closed when the test ends.
func memStore(t *testing.T) storage.Store {
	t.Helper()
	st, err := badger.Open(badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestHashSecretKeptInDataDir: without a configured secret, the runner creates
// one in the data directory on first start and reads the same one after; a
// configured one wins on a new directory, and on a directory whose store was
// written with another secret it is refused, saying why and how to start over;
// without either there is none.
func TestHashSecretKeptInDataDir(t *testing.T) {
	st := memStore(t)
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	first, err := LoadHashSecret(cfg, st)
	if err != nil || len(first) < 32 {
		t.Fatalf("first start: %x, %v", first, err)
	}
	again, err := LoadHashSecret(cfg, st)
	if err != nil || !bytes.Equal(first, again) {
		t.Fatalf("second start: %x, %v; want %x", again, err, first)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, "suppression.key")); err != nil || !bytes.Equal(b, first) {
		t.Fatalf("suppression.key: %x, %v", b, err)
	}
	cfg.HashSecret = []byte("configured-secret")
	_, err = LoadHashSecret(cfg, st)
	fingerprint := filepath.Join(cfg.DataDir, "hash-secret.fingerprint")
	if err == nil || !strings.Contains(err.Error(), "differs from the one the store in "+cfg.DataDir+" was written with") ||
		!strings.Contains(err.Error(), "delete "+fingerprint) {
		t.Fatalf("configured, on a directory written with its own key: %v", err)
	}
	if b, err := os.ReadFile(fingerprint); err != nil || bytes.Contains(b, first) || len(strings.TrimSpace(string(b))) != 32 {
		t.Fatalf("fingerprint file: %q, %v", b, err)
	}
	if err := os.Remove(fingerprint); err != nil { // starting over, on purpose
		t.Fatal(err)
	}
	if got, err := LoadHashSecret(cfg, st); err != nil || string(got) != "configured-secret" {
		t.Fatalf("configured, once the fingerprint was removed: %q, %v", got, err)
	}
	if got, err := LoadHashSecret(cfg, st); err != nil || string(got) != "configured-secret" {
		t.Fatalf("configured, again: %q, %v", got, err)
	}
	cfg.HashSecret = nil
	if _, err := LoadHashSecret(cfg, st); err == nil || !strings.Contains(err.Error(), "suppression.key, as no hash_secret is configured") {
		t.Fatalf("the configured secret removed again: %v", err)
	}
	cfg.HashSecret = []byte("configured-secret")
	other := cfg
	other.DataDir = t.TempDir()
	if got, err := LoadHashSecret(other, st); err != nil || string(got) != "configured-secret" {
		t.Fatalf("configured, on a new directory: %q, %v", got, err)
	}
	cfg.HashSecret, cfg.DataDir = nil, ""
	if got, err := LoadHashSecret(cfg, st); err == nil {
		t.Fatalf("no secret and no data directory: %x", got)
	}
}

// TestHashSecretFingerprintFile: a fingerprint file that holds no fingerprint
// (cut short) is written again and the server starts; a start refused because
// the secret differs leaves the data directory as it was (no new key kept).
func TestHashSecretFingerprintFile(t *testing.T) {
	st := memStore(t)
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	fingerprint := filepath.Join(cfg.DataDir, "hash-secret.fingerprint")
	if err := os.WriteFile(fingerprint, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHashSecret(cfg, st); err != nil {
		t.Fatalf("an empty fingerprint file: %v", err)
	}
	if b, err := os.ReadFile(fingerprint); err != nil || len(strings.TrimSpace(string(b))) != 32 {
		t.Fatalf("fingerprint written again: %q, %v", b, err)
	}

	cfg.DataDir = t.TempDir()
	cfg.HashSecret = []byte("configured from the first start")
	if _, err := LoadHashSecret(cfg, st); err != nil {
		t.Fatal(err)
	}
	cfg.HashSecret = nil
	_, err := LoadHashSecret(cfg, st)
	if err == nil || !strings.Contains(err.Error(), "(a new key, as no hash_secret is configured and the data directory has no suppression.key)") {
		t.Fatalf("hash_secret removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "suppression.key")); !os.IsNotExist(err) {
		t.Fatalf("a refused start kept a new suppression.key: %v", err)
	}
}

// keeping is a store shared by replicas that keeps their secrets and values in
// memory, first writer wins, as Redis does (SET NX).
type keeping struct {
	storage.Store
	kept map[string][]byte
}

func (k *keeping) SharedSecret(_ context.Context, name string) ([]byte, error) {
	if _, ok := k.kept["secret:"+name]; !ok {
		k.kept["secret:"+name] = bytes.Repeat([]byte{byte(len(k.kept) + 1)}, 32)
	}
	return k.kept["secret:"+name], nil
}

func (k *keeping) SharedValue(_ context.Context, name string, v []byte) ([]byte, error) {
	if _, ok := k.kept["value:"+name]; !ok {
		k.kept["value:"+name] = bytes.Clone(v)
	}
	return k.kept["value:"+name], nil
}

// TestHashSecretSharedByReplicas: on a shared store, replicas that configure
// no secret all get the store's; one that configures the same secret as the
// first replica starts; one whose secret differs (another hash_secret, or none
// where the first had one) does not, with an error that says why and how to
// start over.
func TestHashSecretSharedByReplicas(t *testing.T) {
	st := memStore(t)
	replica := func(k *keeping, secret string) ([]byte, error) {
		cfg := server.DefaultConfig()
		cfg.DataDir = t.TempDir() // not used on a shared store
		if secret != "" {
			cfg.HashSecret = []byte(secret)
		}
		return LoadHashSecret(cfg, k)
	}
	const differs = "differs from the one the replicas sharing this store hash with"

	unset := &keeping{Store: st, kept: map[string][]byte{}}
	a, err := replica(unset, "")
	if err != nil || len(a) < 32 {
		t.Fatalf("first replica, no secret configured: %x, %v", a, err)
	}
	if b, err := replica(unset, ""); err != nil || !bytes.Equal(a, b) {
		t.Fatalf("second replica, no secret configured: %x, %v; want the first's %x", b, err, a)
	}
	if _, err := replica(unset, "a secret of its own, 32 bytes.."); err == nil ||
		!strings.Contains(err.Error(), differs) || !strings.Contains(err.Error(), "(hash_secret or SENDGUARD_HASH_SECRET)") {
		t.Fatalf("a replica with hash_secret among replicas without: %v", err)
	}

	set := &keeping{Store: st, kept: map[string][]byte{}}
	if got, err := replica(set, "the deployment's secret, 32 byte"); err != nil || string(got) != "the deployment's secret, 32 byte" {
		t.Fatalf("first replica with hash_secret: %q, %v", got, err)
	}
	if _, err := replica(set, "the deployment's secret, 32 byte"); err != nil {
		t.Fatalf("second replica with the same hash_secret: %v", err)
	}
	if _, err := replica(set, "another secret, also 32 bytes..."); err == nil || !strings.Contains(err.Error(), differs) {
		t.Fatalf("a replica with another hash_secret: %v", err)
	}
	_, err = replica(set, "")
	if err == nil || !strings.Contains(err.Error(), differs) || !strings.Contains(err.Error(), "(the store's own, as no hash_secret is configured)") ||
		!strings.Contains(err.Error(), `"value:{hash-fingerprint}"`) {
		t.Fatalf("a replica without hash_secret among replicas with one: %v", err)
	}
	secret := []byte("the deployment's secret, 32 byte")
	if fp := set.kept["value:hash-fingerprint"]; len(fp) != 16 || bytes.Contains(secret, fp) {
		t.Fatalf("fingerprint kept: %x", fp)
	}
}

// TestOpenChecksTheStore: a missing data directory or a store address that is
// not Redis's is refused before anything is opened.
func TestOpenChecksTheStore(t *testing.T) {
	for name, c := range map[string]struct {
		mutate func(*server.Config)
		want   string
	}{
		"no data directory": {func(c *server.Config) { c.DataDir = "" }, "data directory is empty"},
		"unknown store":     {func(c *server.Config) { c.StoreURL = "memcached://user:hunter2@h:1" }, "want redis://"},
		"bad address":       {func(c *server.Config) { c.GRPCAddr = "not an address" }, "grpc address"},
		"no address":        {func(c *server.Config) { c.GRPCAddr = "" }, "grpc address is empty"},
	} {
		cfg := server.DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.APIAddr = "127.0.0.1:0", "", ""
		cfg.Logger = discardLogger()
		c.mutate(&cfg)
		r, err := Open(cfg)
		if err == nil {
			r.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}

// TestDiskHeadroomReachesBadger: disk_headroom from the config file is the
// headroom of the Badger store the runner opens (here larger than any disk, so
// writes are refused from the start).
func TestDiskHeadroomReachesBadger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sendguard.yaml")
	if err := os.WriteFile(path, []byte("disk_headroom: 1000TiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	if err := server.LoadConfigFile(path, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Logger = discardLogger()
	st, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sp, ok := st.(storage.SpaceGuard).Space()
	if !ok {
		t.Skip("this system's Badger store does not watch its disk")
	}
	if sp.Writable || sp.Headroom != 1000<<40 {
		t.Fatalf("Space with a 1000 TiB headroom: %+v", sp)
	}
}
