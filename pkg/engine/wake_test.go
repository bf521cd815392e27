package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestWakeMakesADeploymentDueNow: a state that waits for its node is looked at again at
// once when woken, without a tick, and not after its poll interval (an hour here); a wake
// while a worker has the deployment looks again as soon as that turn ends.
func TestWakeMakesADeploymentDueNow(t *testing.T) {
	for _, busy := range []bool{false, true} {
		name := "idle"
		if busy {
			name = "during a turn"
		}
		t.Run(name, func(t *testing.T) {
			s := storetest.Open(t, "sqlite")
			c := storetest.Seed(t, s, 1)
			d := c.Deploy(t, s, 1)[0]
			f := newFakeSteps()
			var mu sync.Mutex
			up, posts := false, 0
			inPost, release := make(chan struct{}, 1), make(chan struct{})
			f.post = func(ctx context.Context, t *Task) (bool, error) {
				if t.D.State != process.SSHNFS {
					return true, nil
				}
				mu.Lock()
				posts++
				first, done := posts == 1, up
				mu.Unlock()
				if first && busy {
					inPost <- struct{}{}
					<-release
				}
				return done, nil
			}
			clock := newClock()
			e := newEngine(t, s, f, clock, func(o *Options) { o.PollInterval = time.Hour })
			ctx := context.Background()
			if err := e.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			if busy {
				<-inPost
				mu.Lock()
				up = true
				mu.Unlock()
				if err := e.Wake(ctx, d.ID); err != nil {
					t.Fatal(err)
				}
				close(release) // this look says "not yet": the wake must bring another
			}
			e.Wait()
			if !busy {
				if got := load(t, s, d.ID); got.State != process.SSHNFS {
					t.Fatalf("state %s, want ssh_nfs waiting", got.State)
				}
				if err := e.Tick(ctx); err != nil {
					t.Fatal(err)
				}
				e.Wait()
				mu.Lock()
				n := posts
				up = true
				mu.Unlock()
				if n != 1 {
					t.Fatalf("ssh_nfs looked at %d times before its poll interval, want 1", n)
				}
				if err := e.Wake(ctx, d.ID); err != nil {
					t.Fatal(err)
				}
				e.Wait()
			}
			if got := load(t, s, d.ID); got.State != "deployed" {
				t.Fatalf("state %s after the wake, want deployed", got.State)
			}
			mu.Lock()
			defer mu.Unlock()
			if posts != 2 {
				t.Fatalf("ssh_nfs looked at %d times, want 2: once, then once woken", posts)
			}
		})
	}
}

// TestAWakeStartsNothingWithoutARecentHeartbeat: a process whose heartbeat has not been
// written lately may be about to be taken over, so a wake between ticks leases nothing; the
// next tick writes its heartbeat first, then claims the deployment the wake made due.
func TestAWakeStartsNothingWithoutARecentHeartbeat(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	f := newFakeSteps()
	var mu sync.Mutex
	posts := 0
	f.post = func(ctx context.Context, t *Task) (bool, error) {
		if t.D.State != process.SSHNFS {
			return true, nil
		}
		mu.Lock()
		defer mu.Unlock()
		posts++
		return false, nil
	}
	looked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return posts
	}
	e := newEngine(t, s, f, newClock(), func(o *Options) { o.PollInterval = time.Hour })
	ctx := context.Background()
	if err := e.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	e.Wait()
	if n := looked(); n != 1 {
		t.Fatalf("ssh_nfs looked at %d times in the first tick, want 1", n)
	}

	e.mu.Lock()
	e.lastBeat = time.Now().Add(-e.fenceAfter())
	e.mu.Unlock()
	if err := e.Wake(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	e.Wait()
	if n, got := looked(), load(t, s, d.ID); n != 1 || got.LeaseOwner != "" {
		t.Fatalf("a wake with a late heartbeat: ssh_nfs looked at %d times, lease %q; want 1 and none", n, got.LeaseOwner)
	}
	if err := e.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	e.Wait()
	if n := looked(); n != 2 {
		t.Fatalf("the tick after the wake: ssh_nfs looked at %d times, want 2", n)
	}
}
