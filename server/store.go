package server

import (
	"context"
	"time"
)

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
