package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestHeartbeatTakeOver: a pitasks whose heartbeat stopped has its deployment leases freed,
// its discovery run ended and its port request handed back by a live peer, at once; two
// takers racing declare it dead once; a beat that came in time keeps the leases; a process
// taken for dead learns it at its next beat.
func TestHeartbeatTakeOver(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Second)
		c := storetest.Seed(t, s, 3)
		ds := c.Deploy(t, s, 3)
		beat := func(owner string, at time.Time) error {
			return s.Beat(ctx, &store.Heartbeat{Owner: owner, Host: "pimaster", PID: 42, TickMS: 2000, LastTick: at})
		}
		check(t, beat("dead", now.Add(-time.Minute)))
		check(t, beat("late", now.Add(-time.Minute)))
		check(t, beat("live", now))
		lease := func(id uint, owner string) {
			check(t, storetest.DB(s).Model(&store.Deployment{}).Where("id = ?", id).
				Updates(map[string]any{"lease_owner": owner, "lease_until": now.Add(time.Minute)}).Error)
		}
		lease(ds[0].ID, "dead")
		lease(ds[1].ID, "late")
		lease(ds[2].ID, "live")
		sw := c.Nodes[0].SwitchID
		run, err := s.RequestDiscovery(ctx, sw, nil, 0)
		check(t, err)
		if r, err := s.ClaimDiscovery(ctx, "dead", now, time.Minute); err != nil || r == nil || r.ID != run.ID {
			t.Fatalf("claim discovery: %v %v", r, err)
		}
		pr, err := s.RequestPort(ctx, sw, 0, store.PortStatus, 0)
		check(t, err)
		if r, err := s.ClaimPortRequest(ctx, "dead", now, time.Minute); err != nil || r == nil || r.ID != pr.ID {
			t.Fatalf("claim port request: %v %v", r, err)
		}
		if w, err := s.WorkerHealth(ctx, now); err != nil || w.Alive != 1 || !w.LastTick.Equal(now) {
			t.Fatalf("worker health: %+v %v", w, err)
		}

		// "late" beats just before the takers look: it keeps its lease.
		check(t, beat("late", now))
		var wg sync.WaitGroup
		res := make([]store.TakenOver, 2)
		for i, taker := range []string{"live", "other"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				res[i], err = s.TakeOver(ctx, taker, now, now.Add(-10*time.Second), nil, false)
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := len(res[0].Owners) + len(res[1].Owners); n != 1 {
			t.Fatalf("the dead pitasks was declared dead %d times: %+v", n, res)
		}
		owners := map[uint]string{}
		for _, d := range ds {
			owners[d.ID] = load(t, s, d.ID).LeaseOwner
		}
		if owners[ds[0].ID] != "" || owners[ds[1].ID] != "late" || owners[ds[2].ID] != "live" {
			t.Fatalf("lease owners after the takeover: %v", owners)
		}
		if r, err := s.DiscoveryRun(ctx, run.ID); err != nil || r.State != store.DiscoveryFailed || r.Error != store.StoppedDuringRun {
			t.Fatalf("the dead pitasks's discovery run: %+v %v", r, err)
		}
		if r, err := s.ClaimPortRequest(ctx, "live", now, time.Minute); err != nil || r == nil || r.ID != pr.ID {
			t.Fatalf("the dead pitasks's port request was not handed back: %v %v", r, err)
		}
		// The dead process comes back: its next beat says it was taken over, then it is live again.
		if err := beat("dead", now); !errors.Is(err, store.ErrTakenOver) {
			t.Fatalf("beat after the takeover: %v", err)
		}
		check(t, beat("dead", now.Add(time.Second)))
		hs, err := s.Heartbeats(ctx)
		check(t, err)
		for _, h := range hs {
			if h.StoppedAt != nil || !h.Alive(now.Add(time.Second)) {
				t.Errorf("%s: stopped %v (%s), alive %v", h.Owner, h.StoppedAt, h.StopReason, h.Alive(now))
			}
		}

		// A process seen gone is declared dead whatever its heartbeat says; a clean stop is not
		// taken for alive.
		got, err := s.TakeOver(ctx, "live", now, now.Add(-10*time.Second), map[string]string{"late": "process 42 is gone"}, false)
		check(t, err)
		if len(got.Owners) != 1 || got.Owners[0] != "late" || got.Deployments != 1 || load(t, s, ds[1].ID).LeaseOwner != "" {
			t.Fatalf("gone process: %+v", got)
		}
		check(t, s.StopHeartbeat(ctx, "dead", "stopped", now))
		if w, err := s.WorkerHealth(ctx, now.Add(time.Second)); err != nil || w.Alive != 1 {
			t.Fatalf("worker health after a stop and a takeover: %+v %v", w, err)
		}
	})
}

func load(t *testing.T, s *store.Store, id uint) *store.Deployment {
	t.Helper()
	d, err := s.Deployment(context.Background(), id)
	check(t, err)
	return d
}
