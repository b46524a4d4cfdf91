package server

import (
	"context"
	"errors"
	"syscall"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sendguard/sendguard/storage"
)

// probeInterval is how often a failed store is probed until it answers again.
const probeInterval = time.Second

// storeFailed is called when the store failed a call: health goes NOT_SERVING
// (load balancers stop sending traffic) and a probe watches for the store to come
// back, then health goes SERVING again. Only one probe runs at a time.
func (s *Server) storeFailed(err error) {
	if !s.unhealthy.CompareAndSwap(false, true) {
		return
	}
	s.log.Error("storage failing: health NOT_SERVING until it answers again", "err", err)
	s.setServing(false)
	s.metrics.storeFailures.Inc()
	go s.probeStore()
}

func (s *Server) probeStore() {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.store.GetPolicy(ctx, "")
		cancel()
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			s.log.Info("storage answers again: health SERVING")
			s.unhealthy.Store(false)
			s.setServing(true)
			return
		}
	}
}

func (s *Server) setServing(ok bool) {
	st := healthpb.HealthCheckResponse_SERVING
	if !ok {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(serviceName, st)
}

// unavailableMessage says what is wrong with the store in words a client can act
// on, without paths or keys.
func unavailableMessage(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "storage unavailable: the disk is full; retry with backoff"
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EIO):
		return "storage unavailable: the disk is failing; retry with backoff"
	}
	return "storage unavailable; retry with backoff"
}
