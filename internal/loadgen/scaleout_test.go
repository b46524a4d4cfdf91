package loadgen

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	"github.com/sendguard/sendguard/client"
	"github.com/sendguard/sendguard/internal/redistest"
	"github.com/sendguard/sendguard/internal/serve"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage"
	badgerstore "github.com/sendguard/sendguard/storage/badger"
	redisstore "github.com/sendguard/sendguard/storage/redis"
)

// BenchmarkScaleOut measures decisions/s of CheckSendStream on one Badger node,
// one replica on a Redis Cluster (3 masters, 3 replicas, all on this machine)
// and two replicas on that cluster, in one run: the configurations alternate in
// rounds so that the machine's noise falls on all three, and the figures are
// reported as ratios to Badger. Both stores are seeded with 100,000 numbers, 30 %
// with history (opt-outs, failures, sends in the window); two workloads: checks
// of those numbers, and a stream where every row reserves. It also reports the
// Redis memory each seeded number takes. Run it with
//
//	go test -run '^$' -bench ScaleOut -benchtime 1x ./internal/loadgen/
//
// (make bench-scaleout). Every server listens on 127.0.0.1; each round is
// bounded by time. On one machine the replicas share its cores with each other,
// with the six Redis processes and with the load generator: the figures show
// what a Redis round trip costs a decision and that replicas work side by side,
// not how much a second machine adds.
func BenchmarkScaleOut(b *testing.B) {
	const (
		numbers = 100_000
		history = 0.3 // as the performance targets: 30 % with history
	)
	cluster := redistest.StartCluster(b, redistest.Options{})
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// The stores: Badger, and one Redis client per sendguard replica. Both get
	// the same seeded history.
	bst, err := badgerstore.Open(badgerstore.Options{Dir: b.TempDir(), Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bst.Close() })
	var rst [2]*redisstore.Store
	for i := range rst {
		if rst[i], err = redisstore.Open(ctx, redisstore.Options{Addrs: cluster.Addrs()}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rst[i].Close() })
	}
	before := usedMemory(b, cluster.Addrs())
	for _, st := range []storage.Store{bst, rst[0]} {
		if err := seedStore(ctx, st, 0, numbers, mix{history: history}, 4, nil); err != nil {
			b.Fatal(err)
		}
	}
	perNumber := float64(usedMemory(b, cluster.Addrs())-before) / numbers
	b.ReportMetric(perNumber, "redis-B/number")
	b.Logf("Redis memory: %.0f bytes per seeded number on the masters (used_memory; each replica holds as much again)", perNumber)

	start := func(st storage.Store) *server.Server {
		cfg := server.DefaultConfig()
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.APIAddr = "127.0.0.1:0", "", ""
		cfg.Logger = log
		cfg.DataDir = b.TempDir()
		secret, err := serve.LoadHashSecret(cfg, st) // Redis's shared one: the same in both replicas
		if err != nil {
			b.Fatal(err)
		}
		cfg.HashSecret = secret
		srv, err := server.New(st, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := srv.Listen(); err != nil {
			srv.Close()
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		b.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
		})
		return srv
	}
	dialAll := func(srvs ...*server.Server) []*client.Client {
		var cs []*client.Client
		for range 2 {
			for _, s := range srvs {
				c, err := client.Dial(s.GRPCAddr(), client.Options{Insecure: true, Timeout: 30 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { c.Close() })
				cs = append(cs, c)
			}
		}
		return cs
	}
	badger := start(bst)
	r1, r2 := start(rst[0]), start(rst[1])
	configs := []struct {
		name  string
		conns []*client.Client
	}{
		{"badger", dialAll(badger)},
		{"redis-1-replica", dialAll(r1)},
		{"redis-2-replicas", dialAll(r1, r2)},
	}
	const (
		streams = 8
		window  = 64
		rounds  = 3
		round   = 2 * time.Second
	)
	w := &workloads{run: fmt.Sprint(time.Now().UnixNano())}
	perm := newPermute(numbers)
	for _, reserve := range []bool{false, true} {
		res := make([]*result, len(configs))
		var seq atomic.Int64 // rows never repeat a number within a workload
		for range rounds {
			for i, cfg := range configs {
				var rr atomic.Uint64
				open := func(ctx context.Context) (grpc.ClientStream, error) {
					return cfg.conns[rr.Add(1)%uint64(len(cfg.conns))].API().CheckSendStream(ctx)
				}
				gc()
				r, err := runStreams(ctx, open, streams, window, limits{duration: round, seq: &seq}, func(seq int64) *sgv1.CheckSendRequest {
					return w.checkRequest(seq, perm.at(uint64(seq)), reserve)
				})
				if err != nil {
					b.Fatal(err)
				}
				if r.errs > 0 {
					b.Fatalf("%s: %d rows failed", cfg.name, r.errs)
				}
				if res[i] == nil {
					res[i] = &result{}
				}
				res[i].add(r)
			}
		}
		kind := "check"
		if reserve {
			kind = "reserve"
		}
		for i, cfg := range configs {
			b.ReportMetric(res[i].rate(), kind+"-"+cfg.name+"-dec/s")
			if i > 0 {
				x, _ := ratio(res[i], res[0])
				b.ReportMetric(x, kind+"-"+cfg.name+"/badger")
			}
			b.Logf("%-7s %-17s %9.0f decisions/s  p50 %v  p99 %v", kind, cfg.name, res[i].rate(),
				res[i].lat.quantile(0.5), res[i].lat.quantile(0.99))
		}
	}
}

// usedMemory sums used_memory over the masters of the cluster.
func usedMemory(b *testing.B, addrs []string) int64 {
	c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
	defer c.Close()
	var sum atomic.Int64
	err := c.ForEachMaster(context.Background(), func(ctx context.Context, m *goredis.Client) error {
		info, err := m.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		for line := range strings.SplitSeq(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return err
				}
				sum.Add(n)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return sum.Load()
}
