// Package serve is sendguard's serve path, the runner around the service
// (server.Server): it checks the config, opens the store the config names
// (Badger in the data directory, or Redis), loads the hash secret, builds the
// service on them, binds its listeners, serves until its context ends and closes
// the store last. The service knows none of the storage backends; this package
// is where they are chosen.
package serve

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
	redisstore "github.com/sendguard/sendguard/storage/redis"
)

// Runner is a service bound to its listeners, on a store it opened.
type Runner struct {
	srv   *server.Server
	store storage.Store
	cfg   server.Config
}

// Open checks cfg, opens its store, loads the hash secret, builds the service
// and binds its listeners. Call Run to serve (or Close to give up).
func Open(cfg server.Config) (*Runner, error) {
	if err := checkStore(cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = server.DefaultConfig().Logger
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.HashSecret, err = LoadHashSecret(cfg, st); err != nil {
		return nil, errors.Join(err, st.Close())
	}
	srv, err := server.New(st, cfg)
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		return nil, errors.Join(err, st.Close())
	}
	return &Runner{srv: srv, store: st, cfg: cfg}, nil
}

// Server returns the service.
func (r *Runner) Server() *server.Server { return r.srv }

// Store returns the store the runner opened (closed when Run returns).
func (r *Runner) Store() storage.Store { return r.store }

// Run serves until ctx ends, then stops the service (server.Server.Run) and
// closes the store.
func (r *Runner) Run(ctx context.Context) error {
	err := r.srv.Run(ctx)
	r.closeStore()
	return err
}

// Close stops a runner that is not running, and closes its store.
func (r *Runner) Close() {
	r.srv.Close()
	r.closeStore()
}

func (r *Runner) closeStore() {
	if err := r.store.Close(); err != nil {
		r.cfg.Logger.Error("closing store", "err", err)
	}
}

// checkStore checks the choice of store (a data directory for Badger, or a
// redis:// address) and that there is a gRPC address to listen on.
func checkStore(cfg server.Config) error {
	if cfg.GRPCAddr == "" {
		return errors.New("grpc address is empty")
	}
	switch {
	case cfg.StoreURL == "":
		if cfg.DataDir == "" {
			return errors.New("data directory is empty")
		}
	case strings.HasPrefix(cfg.StoreURL, "redis://"):
	default:
		return fmt.Errorf("store %q: want redis://host:port[,host:port…], or no store for Badger in the data directory", redisstore.Redact(cfg.StoreURL))
	}
	return nil
}

// openStore opens the store cfg names: Badger in cfg.DataDir, or Redis.
func openStore(cfg server.Config) (storage.Store, error) {
	if cfg.StoreURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		st, err := badger.Open(badger.Options{Dir: cfg.DataDir, Logger: cfg.Logger, SyncWrites: cfg.Durability == server.DurabilityStrict,
			DiskHeadroom: cfg.DiskHeadroom, RecordCache: cfg.RecordCache})
		if err != nil {
			return nil, fmt.Errorf("open store in %s: %w", cfg.DataDir, err)
		}
		return st, nil
	}
	o, err := redisstore.ParseURL(cfg.StoreURL)
	if err != nil {
		return nil, err
	}
	if cfg.RedisPassword != "" {
		o.Password = cfg.RedisPassword
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := redisstore.Open(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", redisstore.Redact(cfg.StoreURL), err)
	}
	cfg.Logger.Info("store: redis", "addrs", strings.Join(o.Addrs, ","), "cluster", st.Cluster())
	return st, nil
}

// LoadHashSecret returns the configured secret; or, on a store shared by
// replicas, the one kept in the store (the first replica creates it); or the one
// kept in the data directory (created on first start). A store must be read with
// the secret it was written with, so the secret's fingerprint is kept beside it
// on first use: in the shared store (the first replica's: checkSharedSecret), or
// in the data directory (checkLocalSecret); a server whose secret differs does
// not start.
func LoadHashSecret(cfg server.Config, st storage.Store) ([]byte, error) {
	if keeper, ok := storage.UnwrapAs[storage.SecretKeeper](st); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		b := cfg.HashSecret
		if len(b) == 0 {
			var err error
			if b, err = keeper.SharedSecret(ctx, "hash"); err != nil {
				return nil, fmt.Errorf("shared hash secret: %w", err)
			}
		}
		if err := checkSharedSecret(ctx, keeper, b, len(cfg.HashSecret) > 0); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, fresh, err := localHashSecret(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.DataDir != "" {
		// Checked before a new key is kept: a refused start leaves the data
		// directory as it found it.
		if err := checkLocalSecret(cfg, b, fresh); err != nil {
			return nil, err
		}
	}
	if fresh {
		path := filepath.Join(cfg.DataDir, SuppressionKeyFile)
		if err := writeFileAtomic(path, b); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return b, nil
}

// SuppressionKeyFile is the file in a data directory that keeps the hash secret
// when the config sets none (named for the suppressions of forgotten opt-outs it
// first keyed).
const SuppressionKeyFile = "suppression.key"

// localHashSecret is the configured secret, or the one kept in the data
// directory; fresh when there is none yet and b is a new random one, which the
// caller keeps once it is accepted.
func localHashSecret(cfg server.Config) (b []byte, fresh bool, err error) {
	if len(cfg.HashSecret) > 0 {
		return cfg.HashSecret, false, nil
	}
	if cfg.DataDir == "" {
		return nil, false, errors.New("no hash secret: configure hash_secret, or a data directory to keep one in")
	}
	path := filepath.Join(cfg.DataDir, SuppressionKeyFile)
	b, err = os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, false, nil
	}
	if err != nil && !os.IsNotExist(err) {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// writeFileAtomic writes b to path through a temporary file in its directory,
// synced and renamed over path, so that path never holds a part of b.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// hashFingerprintName names the shared value that holds the fingerprint of the
// hash secret the replicas of a shared store use.
const hashFingerprintName = "hash-fingerprint"

// checkSharedSecret makes sure that this replica hashes with the secret the
// other replicas of its store use: the first replica stores the secret's
// fingerprint (an HMAC of a fixed text, which does not reveal the secret), and
// every later one compares its own. Replicas with different secrets would store
// keyed hashes (dedup keys, suppressions of forgotten opt-outs, numbers with
// hash_numbers) that the others never find: an event counted twice, or an
// opt-out that one replica does not see.
func checkSharedSecret(ctx context.Context, keeper storage.SecretKeeper, secret []byte, configured bool) error {
	mine := hashFingerprint(secret)
	stored, err := keeper.SharedValue(ctx, hashFingerprintName, mine)
	if err != nil {
		return fmt.Errorf("shared hash secret's fingerprint: %w", err)
	}
	if hmac.Equal(stored, mine) {
		return nil
	}
	source := "the store's own, as no hash_secret is configured"
	if configured {
		source = configuredSource
	}
	return secretMismatch("replica", source, "the replicas sharing this store hash with",
		"Give every replica the same hash_secret, or none of them one.",
		fmt.Sprintf("delete the store's key ending in \"value:{%s}\"", hashFingerprintName))
}

// configuredSource names a configured hash secret in secretMismatch.
const configuredSource = "hash_secret or SENDGUARD_HASH_SECRET"

// secretMismatch is the error of a server (whose: "server" or "replica")
// whose hash secret, from source, is not the one its store was written with
// (theirs: whose secret that is): what it would cost, what to do (advice), and
// how to start the store over on purpose (reset).
func secretMismatch(whose, source, theirs, advice, reset string) error {
	return fmt.Errorf("hash secret: this %s's (%s) differs from the one %s: "+
		"what was stored with that one (dedup keys, suppressions of forgotten opt-outs, numbers with hash_numbers) "+
		"would not be found, so an event could count twice and an opt-out could be missed. %s "+
		"To start this store over with this secret on purpose, %s "+
		"(what was hashed with the old secret will no longer be found)", whose, source, theirs, advice, reset)
}

// hashFingerprint identifies a hash secret without revealing it: an HMAC of a
// fixed text, 16 bytes.
func hashFingerprint(secret []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("sendguard hash secret fingerprint v1"))
	return mac.Sum(nil)[:16]
}

// fingerprintFile is where a data directory keeps the fingerprint of the hash
// secret its store was first served with.
const fingerprintFile = "hash-secret.fingerprint"

// checkLocalSecret makes sure that a server hashes with the secret its data
// directory's store was written with: the first start keeps the secret's
// fingerprint in the directory, and every later start compares its own. A
// changed hash_secret (or one set, or removed, after the store was used) would
// leave every keyed hash stored before unfound: dedup keys, suppressions of
// forgotten opt-outs, and with hash_numbers every number's record. fresh says
// the secret is a new random one (no suppression.key was kept). A fingerprint
// that cannot be written (a full disk), or a file that holds none (one cut short
// by an older build's crash), is warned about and written again, not fatal.
func checkLocalSecret(cfg server.Config, secret []byte, fresh bool) error {
	path := filepath.Join(cfg.DataDir, fingerprintFile)
	mine := hex.EncodeToString(hashFingerprint(secret))
	b, err := os.ReadFile(path)
	kept := strings.TrimSpace(string(b))
	switch {
	case err == nil && kept == mine:
		return nil
	case err == nil && isFingerprint(kept):
		source := "the data directory's " + SuppressionKeyFile + ", as no hash_secret is configured"
		switch {
		case len(cfg.HashSecret) > 0:
			source = configuredSource
		case fresh:
			source = "a new key, as no hash_secret is configured and the data directory has no " + SuppressionKeyFile
		}
		return secretMismatch("server", source, "the store in "+cfg.DataDir+" was written with",
			"Start it with that secret (the hash_secret it had, or the "+SuppressionKeyFile+" its data directory had).",
			"delete "+path)
	case err != nil && !os.IsNotExist(err):
		return fmt.Errorf("read %s: %w", path, err)
	case err == nil && cfg.Logger != nil:
		cfg.Logger.Warn("the hash secret's fingerprint file holds no fingerprint: written again", "path", path)
	}
	if err := writeFileAtomic(path, []byte(mine+"\n")); err != nil && cfg.Logger != nil {
		cfg.Logger.Warn("the hash secret's fingerprint is not kept: a later start with another secret will not be noticed", "path", path, "err", err)
	}
	return nil
}

// isFingerprint tells whether s is a fingerprint as checkLocalSecret writes it:
// 32 hexadecimal digits.
func isFingerprint(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 16
}
