package redis

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/sendguard/sendguard/internal/duration"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/internal/stripe"
)

var (
	_ storage.Store        = (*Store)(nil)
	_ storage.SecretKeeper = (*Store)(nil)
	_ storage.Shared       = (*Store)(nil)
	_ storage.Pinger       = (*Store)(nil)
)

// Modes of Options.Mode.
const (
	// ModeAuto asks the first reachable address whether cluster mode is enabled.
	ModeAuto = "auto"
	// ModeCluster uses the cluster client (addresses are seeds).
	ModeCluster = "cluster"
	// ModeSingle uses one standalone server (exactly one address).
	ModeSingle = "single"
)

// DefaultPrefix starts every key the store writes.
const DefaultPrefix = "sg:"

// Options configure Open.
type Options struct {
	// Addrs are host:port addresses: the cluster's seed nodes, or the one server.
	Addrs []string
	// Mode is ModeAuto (the default when empty), ModeCluster or ModeSingle.
	Mode string
	// Username and Password authenticate (ACL user or requirepass); empty for none.
	Username, Password string
	// DB selects the database of a single server (a cluster has only 0).
	DB int
	// Prefix starts every key; DefaultPrefix when empty. It must not contain '{'
	// or '}', which would change the hash slots.
	Prefix string
	// Timeout bounds dialling, reading and writing one command; 2 s when zero.
	Timeout time.Duration
	// PoolSize is the connection pool size per node; go-redis's default (10 per
	// CPU) when zero.
	PoolSize int
	// WaitReplicas, when positive, makes every write of a recipient (a
	// reservation, a report, an opt-out, a forget) wait until that many
	// replicas of its master have it (WAIT), at most WaitTimeout (1 s when
	// zero), before it is acknowledged; a write not replicated in time fails
	// with storage.ErrUnavailable (it is applied on the master; retrying is
	// safe). Redis replication is asynchronous: without it, a failover can lose
	// the writes of the last moments before the master died.
	WaitReplicas int
	WaitTimeout  time.Duration
}

// ParseURL parses a store address:
//
//	redis://[user:password@]host:port[,host:port…][/db][?mode=auto|cluster|single&prefix=sg:&timeout=2s&pool=N&wait=N&wait_timeout=1s]
//
// Several host:port pairs are seeds of one cluster. A password holding '/', '?',
// ',', '@' or '%' must be percent-encoded; better, give it in the environment
// (SENDGUARD_REDIS_PASSWORD, see the server's configuration), so that it stays
// out of process listings.
func ParseURL(raw string) (Options, error) {
	var o Options
	rest, ok := strings.CutPrefix(raw, "redis://")
	if !ok {
		return o, fmt.Errorf("redis store address %q: want redis://host:port[,host:port…]", Redact(raw))
	}
	// url.Parse rejects a comma-separated host list, so the hosts are cut out
	// first and the rest is parsed with a placeholder host.
	hostEnd := strings.IndexAny(rest, "/?")
	if hostEnd < 0 {
		hostEnd = len(rest)
	}
	authority, tail := rest[:hostEnd], rest[hostEnd:]
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		info, err := url.Parse("redis://" + authority[:at+1] + "x" + tail)
		if err != nil {
			return o, fmt.Errorf("redis store address: %v", redactErr(err))
		}
		o.Username = info.User.Username()
		o.Password, _ = info.User.Password()
		authority = authority[at+1:]
	}
	for _, h := range strings.Split(authority, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			return o, fmt.Errorf("redis store address: %q is not host:port", h)
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return o, fmt.Errorf("redis store address: bad port in %q", h)
		}
		o.Addrs = append(o.Addrs, h)
	}
	u, err := url.Parse("redis://x" + tail)
	if err != nil {
		return o, fmt.Errorf("redis store address: %v", redactErr(err))
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if o.DB, err = strconv.Atoi(db); err != nil || o.DB < 0 {
			return o, fmt.Errorf("redis store address: database %q is not a number", db)
		}
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "mode", "prefix", "timeout", "pool", "wait", "wait_timeout":
		default:
			return o, fmt.Errorf("redis store address: unknown parameter %q (known: mode, prefix, timeout, pool, wait, wait_timeout)", k)
		}
	}
	o.Mode = q.Get("mode")
	o.Prefix = q.Get("prefix")
	if v := q.Get("timeout"); v != "" {
		if o.Timeout, err = duration.Parse(v); err != nil || o.Timeout <= 0 {
			return o, fmt.Errorf("redis store address: timeout %q is not a positive duration", v)
		}
	}
	if v := q.Get("pool"); v != "" {
		if o.PoolSize, err = strconv.Atoi(v); err != nil || o.PoolSize <= 0 {
			return o, fmt.Errorf("redis store address: pool %q is not a positive number", v)
		}
	}
	if v := q.Get("wait"); v != "" {
		if o.WaitReplicas, err = strconv.Atoi(v); err != nil || o.WaitReplicas < 0 {
			return o, fmt.Errorf("redis store address: wait %q is not a number of replicas", v)
		}
	}
	if v := q.Get("wait_timeout"); v != "" {
		if o.WaitTimeout, err = duration.Parse(v); err != nil || o.WaitTimeout <= 0 {
			return o, fmt.Errorf("redis store address: wait_timeout %q is not a positive duration", v)
		}
	}
	// check fills in defaults: call it before o is read (in `return o,
	// o.check()` the order is unspecified).
	err = o.check()
	return o, err
}

// Redact hides the credentials of a store address (scheme://user:password@…)
// for logs and error messages.
func Redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		return scheme + "://…@" + rest[at+1:]
	}
	return raw
}

func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func (o *Options) check() error {
	if len(o.Addrs) == 0 {
		return errors.New("redis store: no address")
	}
	switch o.Mode {
	case "":
		o.Mode = ModeAuto
	case ModeAuto, ModeCluster:
	case ModeSingle:
		if len(o.Addrs) != 1 {
			return fmt.Errorf("redis store: mode=single takes one address, got %d", len(o.Addrs))
		}
	default:
		return fmt.Errorf("redis store: mode %q: want auto, cluster or single", o.Mode)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return fmt.Errorf("redis store: prefix %q must not contain { or }", o.Prefix)
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	if o.WaitReplicas > 0 {
		if o.WaitTimeout == 0 {
			o.WaitTimeout = time.Second
		}
		// A WAIT holds its connection up to WaitTimeout: the read timeout must
		// be longer.
		o.Timeout = max(o.Timeout, o.WaitTimeout+time.Second)
	}
	if o.DB != 0 && o.Mode == ModeCluster {
		return errors.New("redis store: a cluster has only database 0")
	}
	return nil
}

const (
	// contactStripes are in-process locks that serialise one replica's updates of
	// a number, so that its own goroutines do not fail each other's
	// compare-and-set; other replicas are caught by the compare-and-set itself.
	contactStripes = 1024
	// maxAttempts bounds the compare-and-set retries of one update.
	maxAttempts = 50
)

// Store is a storage.Store on Redis Cluster or a standalone Redis server. Create
// it with Open; it is safe for concurrent use, and any number of processes may
// use one Redis deployment at once.
type Store struct {
	c   goredis.UniversalClient
	cc  *goredis.ClusterClient // c, on a cluster; nil on a single server
	pre string
	// waitReplicas and waitTimeout are Options.WaitReplicas and WaitTimeout.
	waitReplicas int
	waitTimeout  time.Duration

	seed     maphash.Seed
	contacts stripe.Locks
	closed   atomic.Bool

	// hours remembers which reach-hour keys this process has indexed already.
	hoursMu sync.Mutex
	hours   map[hourID]struct{}
}

// goredisLog sends go-redis's own messages (a refused dial while a master is
// down, for example) to slog at debug level: the store reports each failure to
// its caller, which logs it.
type goredisLog struct{}

func (goredisLog) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

var setLogger sync.Once

// Open connects and checks that the deployment answers (and, in ModeAuto,
// whether it is a cluster). It does not create anything.
func Open(ctx context.Context, o Options) (*Store, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	setLogger.Do(func() { goredis.SetLogger(goredisLog{}) })
	cluster := o.Mode == ModeCluster || len(o.Addrs) > 1
	if o.Mode == ModeAuto && !cluster {
		probe := goredis.NewClient(universalOptions(o).Simple())
		info, err := probe.Info(ctx, "cluster").Result()
		_ = probe.Close() // a client of its own, used once: nothing is lost
		if err != nil {
			return nil, fmt.Errorf("%w: redis at %s: %v", storage.ErrUnavailable, o.Addrs[0], err)
		}
		cluster = strings.Contains(info, "cluster_enabled:1")
	}
	var (
		c  goredis.UniversalClient
		cc *goredis.ClusterClient
	)
	if cluster {
		co := universalOptions(o).Cluster()
		// go-redis re-reads the slot map on MOVED, but not when a master stops
		// answering; the store asks for a reload on every failure (fail), and the
		// map is re-read at least this often while in use.
		co.ClusterStateReloadInterval = 2 * time.Second
		cc = goredis.NewClusterClient(co)
		c = cc
	} else {
		c = goredis.NewClient(universalOptions(o).Simple())
	}
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close() // never used: the error returned says why
		return nil, fmt.Errorf("%w: redis at %s: %v", storage.ErrUnavailable, strings.Join(o.Addrs, ","), err)
	}
	return &Store{
		c:            c,
		cc:           cc,
		waitReplicas: o.WaitReplicas,
		waitTimeout:  o.WaitTimeout,
		pre:          o.Prefix,
		seed:         maphash.MakeSeed(),
		contacts:     stripe.New(contactStripes),
		hours:        map[hourID]struct{}{},
	}, nil
}

// universalOptions are the client options of o, for a cluster or one server.
func universalOptions(o Options) *goredis.UniversalOptions {
	return &goredis.UniversalOptions{
		Addrs:                    o.Addrs,
		Username:                 o.Username,
		Password:                 o.Password,
		DB:                       o.DB,
		DialTimeout:              o.Timeout,
		ReadTimeout:              o.Timeout,
		WriteTimeout:             o.Timeout,
		DialerRetries:            2,
		DialerRetryTimeout:       50 * time.Millisecond,
		ContextTimeoutEnabled:    true,
		PoolSize:                 o.PoolSize,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

// Cluster reports whether the store talks to a Redis Cluster.
func (s *Store) Cluster() bool { return s.cc != nil }

// Close closes the connections; later calls return storage.ErrUnavailable.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("%w: redis store closed", storage.ErrUnavailable)
	}
	if err := s.c.Close(); err != nil {
		return fmt.Errorf("%w: redis close: %v", storage.ErrUnavailable, err)
	}
	return nil
}

// locked runs attempt under the in-process lock of name, again after a short
// backoff while it reports a lost race (done false), up to maxAttempts times;
// then it gives up with storage.ErrConflict.
func (s *Store) locked(ctx context.Context, name string, attempt func() (done bool, err error)) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	lk, err := s.contacts.Lock(ctx, s.seed, name)
	if err != nil {
		return err
	}
	defer stripe.Unlock(lk)
	for n := range maxAttempts {
		if n > 0 {
			if err := backoff(ctx, n); err != nil {
				return err
			}
		}
		if done, err := attempt(); done || err != nil {
			return err
		}
	}
	return storage.ErrConflict
}

// enter refuses work after Close.
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return fmt.Errorf("%w: redis store closed", storage.ErrUnavailable)
	}
	return nil
}

// fail turns an engine error into the storage contract's: the context's own
// error as is when the context has ended, anything else (a dial or read timeout
// included) wrapping storage.ErrUnavailable. Redis errors name
// slots and nodes, never keys, so no phone number reaches a message.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s.cc != nil && !s.closed.Load() {
		// A master may have died and a replica taken its slots: read the slot
		// map again (in the background, at most every 200 ms).
		s.cc.ReloadState(context.Background())
	}
	return fmt.Errorf("%w: redis %s: %v", storage.ErrUnavailable, op, err)
}

// SharedByReplicas implements storage.Shared: every replica that names the same
// Redis writes it.
func (s *Store) SharedByReplicas() bool { return true }

// SharedSecret implements storage.SecretKeeper: the first replica to ask stores
// a new random secret (SET NX); every replica then reads the same one. Losing it
// in a failover would make replicas disagree on every stored hash, so when the
// master has replicas, the secret is written again and WAITed for until one of
// them has it; a replica that cannot confirm that does not start.
func (s *Store) SharedSecret(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := crand.Read(fresh); err != nil {
		return nil, err
	}
	v, err := s.setOnce(ctx, s.pre+"secret:{"+name+"}", fresh, true)
	if err != nil {
		return nil, err
	}
	if len(v) < 32 {
		return nil, fmt.Errorf("redis store: the shared secret %q is shorter than 32 bytes", name)
	}
	return v, nil
}

// SharedValue implements storage.SecretKeeper: the first replica to offer a
// value under name stores it (SET NX, WAITed for by that replica); every replica
// gets the stored one back.
func (s *Store) SharedValue(ctx context.Context, name string, value []byte) ([]byte, error) {
	return s.setOnce(ctx, s.pre+"value:{"+name+"}", value, false)
}

// setOnce stores v at k unless k holds a value (SET NX) and returns what k holds.
// When the master has replicas, the value is written again and WAITed for until
// one of them has it (a value lost in a failover could be set again
// differently): by every caller when always, else only by the one that stored
// it.
func (s *Store) setOnce(ctx context.Context, k string, v []byte, always bool) ([]byte, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	node, err := s.master(ctx, k)
	if err != nil {
		return nil, s.fail(ctx, "find "+k+"'s master", err)
	}
	stored, err := node.SetNX(ctx, k, v, 0).Result()
	if err != nil {
		return nil, s.fail(ctx, "set "+k, err)
	}
	got, err := node.Get(ctx, k).Bytes()
	if err != nil {
		return nil, s.fail(ctx, "get "+k, err)
	}
	if !always && !stored {
		return got, nil
	}
	info, err := node.Info(ctx, "replication").Result()
	if err != nil {
		return nil, s.fail(ctx, "replication info", err)
	}
	if strings.Contains(info, "connected_slaves:0") {
		return got, nil
	}
	pipe := node.Pipeline()
	pipe.Set(ctx, k, got, 0) // the same bytes: a write of this connection for WAIT to wait on
	acked := goredis.NewIntCmd(ctx, "wait", 1, 5000)
	_ = pipe.Process(ctx, acked)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.fail(ctx, "replicate "+k, err)
	}
	if acked.Val() < 1 {
		return nil, fmt.Errorf("%w: redis: %s is not on any replica after 5 s", storage.ErrUnavailable, k)
	}
	return got, nil
}

// master returns the client of the master that serves key.
func (s *Store) master(ctx context.Context, key string) (*goredis.Client, error) {
	if s.cc != nil {
		return s.cc.MasterForKey(ctx, key)
	}
	return s.c.(*goredis.Client), nil
}

// Ping implements storage.Pinger: the deployment answers (on a cluster, at
// least one master does: a master that is down fails only its own slots).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	if s.cc == nil {
		return s.fail(ctx, "ping", s.c.Ping(ctx).Err())
	}
	var answered atomic.Int32
	err := s.cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		if err := m.Ping(ctx).Err(); err != nil {
			return err
		}
		answered.Add(1)
		return nil
	})
	if answered.Load() > 0 {
		return nil
	}
	return s.fail(ctx, "ping", err)
}

// ttlMillis converts a Write TTL: whole seconds, rounded up, as Badger keeps them.
func ttlMillis(d time.Duration) int64 {
	secs := (d + time.Second - 1) / time.Second
	return int64(secs) * 1000
}

// runReplicated runs a script on the master of keys[0] and, when the store waits
// for replicas, WAIT on the same connection right after it (WAIT counts only
// what its own connection wrote): one round trip either way.
func (s *Store) runReplicated(ctx context.Context, script *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	if s.waitReplicas <= 0 {
		return script.Run(ctx, s.c, keys, args...)
	}
	node, err := s.master(ctx, keys[0])
	if err != nil {
		cmd := goredis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	for attempt := 0; ; attempt++ {
		pipe := node.Pipeline()
		cmd := script.EvalSha(ctx, pipe, keys, args...)
		acked := goredis.NewIntCmd(ctx, "wait", s.waitReplicas, s.waitTimeout.Milliseconds())
		_ = pipe.Process(ctx, acked)
		_, _ = pipe.Exec(ctx)
		if isNoScript(cmd.Err()) && attempt == 0 {
			if err := script.Load(ctx, node).Err(); err != nil {
				cmd.SetErr(err)
				return cmd
			}
			continue
		}
		if cmd.Err() == nil && acked.Err() != nil {
			cmd.SetErr(acked.Err())
		} else if cmd.Err() == nil && acked.Val() < int64(s.waitReplicas) {
			cmd.SetErr(fmt.Errorf("written on the master but acknowledged by %d of %d replicas within %v", acked.Val(), s.waitReplicas, s.waitTimeout))
		}
		return cmd
	}
}
