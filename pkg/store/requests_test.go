package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
)

// TestPortRequests: the web writes port requests, one pitasks claims each under a lease, a
// second one takes over a request whose lease ran out, and only the holder ends it.
func TestPortRequests(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 2, 0) // ports 1-3
		c.sw.MasterPort = 3
		check(t, s.UpdateSwitch(ctx, &c.sw))
		for _, bad := range []struct {
			port   int
			action string
			field  string
		}{{0, store.PortOn, "port 0"}, {4, store.PortOff, "no port 4"}, {3, store.PortCycle, "pimaster"},
			{1, "reboot", `"reboot"`}, {2, store.PortStatus, "port 0"}} {
			_, err := s.RequestPort(ctx, c.sw.ID, bad.port, bad.action, c.alice.ID)
			var ie *store.InvalidError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), bad.field) {
				t.Errorf("port %d %s: %v", bad.port, bad.action, err)
			}
		}
		if _, err := s.RequestPort(ctx, 999, 1, store.PortOn, c.alice.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown switch: %v", err)
		}

		off, err := s.RequestPort(ctx, c.sw.ID, 2, store.PortOff, c.alice.ID)
		check(t, err)
		st1, err := s.RequestPort(ctx, c.sw.ID, 0, store.PortStatus, c.alice.ID)
		check(t, err)
		if st2, err := s.RequestPort(ctx, c.sw.ID, 0, store.PortStatus, c.bob.ID); err != nil || st2.ID != st1.ID {
			t.Fatalf("a second pending status request: %+v %v", st2, err)
		}

		now := time.Now()
		got, err := s.ClaimPortRequest(ctx, "pitasks-1", now, time.Minute)
		check(t, err)
		if got == nil || got.ID != off.ID || got.Switch.Name != "sw1" || got.Attempts != 1 || got.State != store.RequestRunning {
			t.Fatalf("claim: %+v", got)
		}
		// pitasks-1 stops. Within its lease, pitasks-2 gets the next request only.
		next, err := s.ClaimPortRequest(ctx, "pitasks-2", now.Add(30*time.Second), time.Minute)
		check(t, err)
		if next == nil || next.ID != st1.ID {
			t.Fatalf("second claim: %+v", next)
		}
		if again, err := s.ClaimPortRequest(ctx, "pitasks-2", now.Add(30*time.Second), time.Minute); err != nil || again != nil {
			t.Fatalf("claimed a request under a live lease: %+v %v", again, err)
		}
		states := map[int]store.PortState{1: {On: true, Detail: "delivering power"}, 2: {}, 3: {On: true}}
		if _, pending, err := s.LatestPortStatus(ctx, c.sw.ID); err != nil || pending == nil || pending.ID != st1.ID {
			t.Fatalf("pending status: %+v %v", pending, err)
		}
		check(t, s.FinishPortRequest(ctx, next.ID, "pitasks-2", states, nil, now.Add(31*time.Second)))
		latest, pending, err := s.LatestPortStatus(ctx, c.sw.ID)
		check(t, err)
		if pending != nil {
			t.Fatalf("still pending: %+v", pending)
		}
		read, err := latest.PortStates()
		check(t, err)
		if latest.ID != st1.ID || len(read) != 3 || read[1] != states[1] || read[2].On {
			t.Fatalf("latest status: %+v %v", latest, read)
		}

		// Past pitasks-1's lease, pitasks-2 takes its request over; pitasks-1 can no longer end it.
		took, err := s.ClaimPortRequest(ctx, "pitasks-2", now.Add(61*time.Second), time.Minute)
		check(t, err)
		if took == nil || took.ID != off.ID || took.Owner != "pitasks-2" || took.Attempts != 2 {
			t.Fatalf("takeover: %+v", took)
		}
		if err := s.RenewPortRequest(ctx, off.ID, "pitasks-1", now.Add(2*time.Minute)); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("renewal by the old owner: %v", err)
		}
		if err := s.FinishPortRequest(ctx, off.ID, "pitasks-1", nil, nil, now); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("end by the old owner: %v", err)
		}
		check(t, s.RenewPortRequest(ctx, off.ID, "pitasks-2", now.Add(3*time.Minute)))
		// The renewed lease holds past the first one.
		if again, err := s.ClaimPortRequest(ctx, "pitasks-3", now.Add(2*time.Minute), time.Minute); err != nil || again != nil {
			t.Fatalf("claimed a renewed request: %+v %v", again, err)
		}
		// A request whose pitasks keeps stopping is given up after MaxPortAttempts claims.
		at := now.Add(4 * time.Minute)
		for i := 3; i <= store.MaxPortAttempts; i++ {
			r, err := s.ClaimPortRequest(ctx, "pitasks-x", at, time.Minute)
			check(t, err)
			if r == nil || r.ID != off.ID || r.Attempts != i {
				t.Fatalf("claim %d: %+v", i, r)
			}
			at = at.Add(2 * time.Minute)
		}
		if r, err := s.ClaimPortRequest(ctx, "pitasks-x", at, time.Minute); err != nil || r != nil {
			t.Fatalf("claimed past the attempts: %+v %v", r, err)
		}
		ended, err := s.PortRequest(ctx, off.ID)
		check(t, err)
		if ended.State != store.RequestFailed || !strings.Contains(ended.Error, "pitasks stopped during the request") || ended.EndedAt == nil {
			t.Fatalf("given up: %+v", ended)
		}
		list, err := s.PortRequests(ctx, c.sw.ID, 5)
		check(t, err)
		if len(list) != 1 || list[0].ID != off.ID {
			t.Fatalf("port requests of the switch (status requests are not listed): %+v", list)
		}
	})
}

// TestDiscoveryLease: a discovery run whose pitasks stopped is ended with the reason by the
// next claim, so the switch's discovery can be asked for again.
func TestDiscoveryLease(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 1, 0)
		r, err := s.RequestDiscovery(ctx, c.sw.ID, nil, c.alice.ID)
		check(t, err)
		now := time.Now()
		got, err := s.ClaimDiscovery(ctx, "pitasks-1", now, time.Minute)
		check(t, err)
		if got == nil || got.ID != r.ID {
			t.Fatalf("claim: %+v", got)
		}
		check(t, s.RenewDiscovery(ctx, r.ID, "pitasks-1", now.Add(90*time.Second)))
		if err := s.RenewDiscovery(ctx, r.ID, "pitasks-2", now.Add(90*time.Second)); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("renewal by another pitasks: %v", err)
		}
		// Within the renewed lease the run stays pitasks-1's.
		if _, err := s.ClaimDiscovery(ctx, "pitasks-2", now.Add(80*time.Second), time.Minute); err != nil {
			t.Fatal(err)
		}
		if run, _ := s.DiscoveryRun(ctx, r.ID); run.State != store.DiscoveryRunning {
			t.Fatalf("run ended within its lease: %+v", run)
		}
		// pitasks-1 stopped: the next claim past the lease ends the run with the reason.
		if again, err := s.ClaimDiscovery(ctx, "pitasks-2", now.Add(91*time.Second), time.Minute); err != nil || again != nil {
			t.Fatalf("claim: %+v %v", again, err)
		}
		run, err := s.DiscoveryRun(ctx, r.ID)
		check(t, err)
		if run.State != store.DiscoveryFailed || run.Error != store.StoppedDuringRun || run.EndedAt == nil {
			t.Fatalf("stopped run: %+v", run)
		}
		if err := s.FinishDiscovery(ctx, r.ID, "pitasks-1", nil, now); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("the stopped pitasks ended the run again: %v", err)
		}
		if _, err := s.RequestDiscovery(ctx, c.sw.ID, nil, c.alice.ID); err != nil {
			t.Fatalf("a new run after the stopped one: %v", err)
		}
	})
}
