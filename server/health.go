package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sendguard/sendguard/storage"
)

const (
	// probeInterval is how often a failed store is probed until it answers again.
	probeInterval = time.Second
	// spaceInterval is how often the server looks at the disk of a store that
	// watches it (the store itself checks as often, and before writes).
	spaceInterval = 250 * time.Millisecond
)

// writesServiceName is the health service that says whether writes are taken:
// NOT_SERVING while the store refuses them because its disk is nearly full,
// while serviceName stays SERVING (reads go on), and while the store fails.
const writesServiceName = serviceName + ".writes"

// servingState is what the health service says: down while the store fails
// (every service NOT_SERVING), diskFull while it refuses writes (only
// writesServiceName). mu makes each update read both and set the statuses as
// one step.
type servingState struct {
	mu       sync.Mutex
	down     bool
	diskFull bool
}

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
//
// A write refused for a nearly full disk (storage.ErrNoSpace) is no failure:
// the store answers, reads go on, and writesServiceName already says so.
func (s *Server) storeFailed(err error) {
	if errors.Is(err, storage.ErrNoSpace) {
		return
	}
	if !s.unhealthy.CompareAndSwap(false, true) {
		return
	}
	s.metrics.storeFailures.Inc()
	if _, ok := storage.UnwrapAs[storage.Pinger](s.store); !ok {
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
	if p, ok := storage.UnwrapAs[storage.Pinger](s.store); ok {
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

// setServing sets every health service SERVING (ok: the store answers) or
// NOT_SERVING; writes stay NOT_SERVING while the disk is nearly full.
func (s *Server) setServing(ok bool) {
	s.serving.mu.Lock()
	defer s.serving.mu.Unlock()
	s.serving.down = !ok
	s.applyServingLocked()
}

// setDiskFull sets writesServiceName NOT_SERVING while the store refuses writes
// for a nearly full disk, and back.
func (s *Server) setDiskFull(full bool) {
	s.serving.mu.Lock()
	defer s.serving.mu.Unlock()
	if s.serving.diskFull == full {
		return
	}
	s.serving.diskFull = full
	if full {
		s.log.Warn("disk nearly full: health " + writesServiceName + " NOT_SERVING until space is freed; reads go on")
	} else {
		s.log.Info("disk space freed: health " + writesServiceName + " SERVING")
	}
	s.applyServingLocked()
}

func (s *Server) applyServingLocked() {
	st := servingStatus(!s.serving.down)
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(serviceName, st)
	s.health.SetServingStatus(writesServiceName, servingStatus(!s.serving.down && !s.serving.diskFull))
}

func servingStatus(ok bool) healthpb.HealthCheckResponse_ServingStatus {
	if ok {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

// startSpaceWatch follows the disk of a store that watches it
// (storage.SpaceGuard: Badger on Linux) until the server stops: the writes
// health status and the disk gauges.
func (s *Server) startSpaceWatch() {
	sg, ok := storage.UnwrapAs[storage.SpaceGuard](s.store)
	if !ok {
		return
	}
	if _, watched := sg.Space(); !watched {
		return
	}
	s.metrics.watchSpace(sg)
	follow := func() bool {
		sp, _ := sg.Space()
		s.setDiskFull(!sp.Writable)
		return true
	}
	follow()
	go s.every(spaceInterval, follow)
}

// serves tells whether the health service says SERVING for name.
func (s *Server) serves(ctx context.Context, name string) bool {
	resp, err := s.health.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
	return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
}

// handleHealthz is GET /healthz: 200 while the server serves (reads), saying so
// when writes are refused; 503 when it does not.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	switch {
	case !s.serves(r.Context(), serviceName):
		http.Error(w, "not serving", http.StatusServiceUnavailable)
	case !s.serves(r.Context(), writesServiceName):
		fmt.Fprintln(w, "ok; writes refused: the disk is nearly full (GET /healthz/writes answers 503)")
	default:
		fmt.Fprintln(w, "ok")
	}
}

// handleHealthzWrites is GET /healthz/writes, for load balancers of writers:
// 200 while writes are taken, 503 while they are refused or the store fails.
func (s *Server) handleHealthzWrites(w http.ResponseWriter, r *http.Request) {
	switch {
	case !s.serves(r.Context(), serviceName):
		http.Error(w, "not serving", http.StatusServiceUnavailable)
	case !s.serves(r.Context(), writesServiceName):
		http.Error(w, "writes refused: the disk is nearly full; reads go on", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ok")
	}
}

// unavailableMessage says what is wrong with the store in words a client can act
// on, without paths or keys.
func unavailableMessage(err error) string {
	switch {
	case errors.Is(err, storage.ErrNoSpace):
		return "storage unavailable: the disk is nearly full; writes are refused until space is freed (reads go on); retry with backoff"
	case errors.Is(err, syscall.ENOSPC):
		return "storage unavailable: the disk is full; retry with backoff"
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EIO):
		return "storage unavailable: the disk is failing; retry with backoff"
	}
	return "storage unavailable; retry with backoff"
}
