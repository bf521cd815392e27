package web

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/store"
)

// The pitasks processes' health, read from their heartbeats (store.WorkerHealth): when none
// has ticked for three of its ticks, every page says so, and queued deployments say why they
// wait.

// noWorkerQueued is what a deployment waiting for a worker says when no pitasks runs.
const noWorkerQueued = "queued: no worker running"

// workersCache keeps the health read for a second: every page asks for it.
type workersCache struct {
	mu   sync.Mutex
	at   time.Time
	h    store.WorkerHealth
	read bool
}

// workerHealth is the pitasks processes' health; ok is false when it could not be read (then
// nothing is said about it).
func (s *Server) workerHealth(ctx context.Context) (h store.WorkerHealth, ok bool) {
	c := &s.workers
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read && time.Since(c.at) < time.Second {
		return c.h, true
	}
	h, err := s.store.WorkerHealth(ctx, s.now().UTC())
	if err != nil {
		s.log.Warn("worker health", "err", err)
		return h, false
	}
	c.h, c.at, c.read = h, time.Now(), true
	return h, true
}

// noWorkerBanner is the banner every page shows while no pitasks runs; empty when one does.
func (s *Server) noWorkerBanner(ctx context.Context) string {
	h, ok := s.workerHealth(ctx)
	switch {
	case !ok || h.Running():
		return ""
	case h.LastTick.IsZero():
		return "No pitasks worker has run yet: deployments, reboots and discoveries wait until one starts."
	default:
		return fmt.Sprintf("No pitasks worker is running (the last one ticked %s ago, at %s UTC): deployments, reboots and discoveries wait until one starts.",
			humanDuration(s.now().Sub(h.LastTick)), h.LastTick.UTC().Format("2006-01-02 15:04:05"))
	}
}

// noWorker reports whether no pitasks runs (false when that could not be read).
func (s *Server) noWorker(ctx context.Context) bool {
	h, ok := s.workerHealth(ctx)
	return ok && !h.Running()
}

// markQueued says in vs that the deployments waiting for a worker have none while no pitasks
// runs; the health is read only if one of them is queued.
func (s *Server) markQueued(ctx context.Context, vs ...*apijson.Deployment) {
	for _, v := range vs {
		if v.Queued {
			idle := s.noWorker(ctx)
			for _, v := range vs {
				sayNoWorker(v, idle)
			}
			return
		}
	}
}

// sayNoWorker sets v's queued_reason when it waits for a worker and none runs (idle).
func sayNoWorker(v *apijson.Deployment, idle bool) {
	if idle && v.Queued {
		v.QueuedReason = noWorkerQueued
	}
}

// withWorkers is the generation of an answer that holds queued_reason: live's generation with
// idle, whether no pitasks runs, folded in, so that its ETag changes when a pitasks stops or
// starts though no deployment did.
func withWorkers(gen uint64, idle bool) uint64 {
	if idle {
		return gen<<1 | 1
	}
	return gen << 1
}

// noWorkerFor is noWorker for the event streams of ds: the health is read only while one of
// them waits for a worker, so a quiet hub reads the store only when the generation moves.
func (s *Server) noWorkerFor(ctx context.Context, ds []store.Deployment) bool {
	for i := range ds {
		if ds[i].Queued && ds[i].Active() {
			return s.noWorker(ctx)
		}
	}
	return false
}

// workerRow is one pitasks process on the admin page.
type workerRow struct {
	store.Heartbeat
	Alive bool
	Ago   string // since its last tick
}

func (s *Server) workerRows(ctx context.Context) ([]workerRow, error) {
	hs, err := s.store.Heartbeats(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]workerRow, len(hs))
	for i, h := range hs {
		out[i] = workerRow{Heartbeat: h, Alive: h.Alive(now), Ago: humanDuration(now.Sub(h.LastTick))}
	}
	return out, nil
}
