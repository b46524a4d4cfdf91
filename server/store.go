package server

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
	redisstore "github.com/sendguard/sendguard/storage/redis"
)

// openStore opens the store cfg names: Badger in cfg.DataDir, or Redis.
func openStore(cfg Config) (storage.Store, error) {
	if cfg.StoreURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		st, err := badger.Open(badger.Options{Dir: cfg.DataDir, Logger: cfg.Logger, SyncWrites: cfg.Durability == DurabilityStrict,
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

// sharedStore tells whether other replicas may write the store too.
func sharedStore(st storage.Store) bool {
	_, ok := st.(storage.SecretKeeper)
	return ok
}

// businessRefresh is the effective Config.BusinessRefresh, on a store shared by
// replicas or not.
func businessRefresh(cfg Config, shared bool) time.Duration {
	switch {
	case cfg.BusinessRefresh > 0:
		return cfg.BusinessRefresh
	case cfg.BusinessRefresh == 0 && shared:
		return time.Second
	}
	return 0
}

// refreshBusinesses reloads the cached businesses every interval until the server
// stops, so that policies, template pauses and messaging-limit counts written by
// other replicas are seen within an interval.
func (s *Server) refreshBusinesses(interval time.Duration) {
	s.every(interval, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), interval+5*time.Second)
		defer cancel()
		if err := s.biz.refresh(ctx); err != nil {
			s.log.Warn("refreshing business state", "err", err)
		}
		return true
	})
}
