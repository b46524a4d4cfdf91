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
//
// A store shared over the network (storage.Pinger) can fail in part: one Redis
// master down fails the checks of its slots while the others are served, and
// every replica sees the same. There the failure is first confirmed with a ping
// of the store; while the store answers, health stays SERVING (taking every
// replica out of its load balancer would turn a partial outage into a full one)
// and the next failure is looked at after probeInterval.
func (s *Server) storeFailed(err error) {
	if !s.unhealthy.CompareAndSwap(false, true) {
		return
	}
	s.metrics.storeFailures.Inc()
	if _, ok := s.store.(storage.Pinger); !ok {
		s.markDown(err)
		go s.probeStore()
		return
	}
	go func() {
		if s.probeOnce() == nil {
			s.log.Warn("storage failed a call but answers: health stays SERVING", "err", err)
			select {
			case <-s.done:
			case <-time.After(probeInterval):
			}
			s.unhealthy.Store(false)
			return
		}
		s.markDown(err)
		s.probeStore()
	}()
}

// markDown takes the server out of its load balancers after err.
func (s *Server) markDown(err error) {
	s.log.Error("storage failing: health NOT_SERVING until it answers again", "err", err)
	s.setServing(false)
}

// probeOnce asks the store whether it answers: a ping where the store has one,
// else a read.
func (s *Server) probeOnce() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if p, ok := s.store.(storage.Pinger); ok {
		return p.Ping(ctx)
	}
	_, err := s.store.GetPolicy(ctx, "")
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

func (s *Server) probeStore() {
	s.every(probeInterval, func() bool {
		if s.probeOnce() != nil {
			return true
		}
		s.log.Info("storage answers again: health SERVING")
		s.unhealthy.Store(false)
		s.setServing(true)
		return false
	})
}

// every calls f every interval until it returns false or the server stops.
func (s *Server) every(interval time.Duration, f func() (again bool)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if !f() {
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
