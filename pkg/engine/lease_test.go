package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// overlapTracker proves that no step of a deployment ever runs twice at the same time,
// whichever engine runs it.
type overlapTracker struct {
	mu       sync.Mutex
	running  map[string]string // "deployment/state" -> engine running it
	execs    map[string]int
	byOwner  map[string]int
	overlaps []string
}

func (o *overlapTracker) enter(owner string, t *Task) string {
	key := fmt.Sprintf("%d/%s", t.D.ID, t.D.State)
	o.mu.Lock()
	defer o.mu.Unlock()
	if other, busy := o.running[key]; busy {
		o.overlaps = append(o.overlaps, fmt.Sprintf("%s by %s and %s", key, other, owner))
	}
	o.running[key] = owner
	o.byOwner[owner]++
	return key
}

func (o *overlapTracker) leave(key string) {
	o.mu.Lock()
	delete(o.running, key)
	o.mu.Unlock()
}

func TestTwoEnginesNeverRunAStepTwiceAtOnce(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			const n = 100
			url := storetest.URL(t, dialect)
			open := func() *store.Store {
				s, err := store.Open(context.Background(), url)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			s1, s2 := open(), open()
			c := storetest.Seed(t, s1, n)
			ds := c.Deploy(t, s1, n)
			tr := &overlapTracker{running: map[string]string{}, execs: map[string]int{}, byOwner: map[string]int{}}
			engines := make([]*Engine, 2)
			for i, s := range []*store.Store{s1, s2} {
				owner := fmt.Sprintf("engine-%d", i)
				f := newFakeSteps()
				f.exec = func(_ context.Context, t *Task) error {
					key := tr.enter(owner, t)
					tr.mu.Lock()
					tr.execs[key]++
					tr.mu.Unlock()
					time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
					tr.leave(key)
					return nil
				}
				f.post = func(_ context.Context, t *Task) (bool, error) {
					key := tr.enter(owner, t)
					defer tr.leave(key)
					time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
					return true, nil
				}
				// Limits far above a turn's time even on a loaded machine: a save that missed its
				// deadline, or a heartbeat late enough for a takeover, rightly has a step done
				// again (steps are idempotent), and this test counts every run.
				engines[i] = newEngine(t, s, f, nil, func(o *Options) {
					o.Owner, o.Workers = owner, 8
					o.Lease, o.StepDeadline, o.TakeoverAfter = 30*time.Second, time.Minute, time.Minute
				})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			for _, e := range engines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
							t.Errorf("tick: %v", err)
						}
						time.Sleep(10 * time.Millisecond)
					}
					e.Wait()
				}()
			}
			for ctx.Err() == nil {
				var left int64
				storetest.DB(s1).Model(&store.Deployment{}).Where("state <> ?", "deployed").Count(&left)
				if left == 0 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			wg.Wait()
			if len(tr.overlaps) > 0 {
				t.Fatalf("%d steps ran twice at once, e.g. %s", len(tr.overlaps), tr.overlaps[0])
			}
			var done int64
			storetest.DB(s1).Model(&store.Deployment{}).Where("state = ?", "deployed").Count(&done)
			if done != n {
				t.Fatalf("%d of %d deployed", done, n)
			}
			for _, d := range ds {
				for _, st := range nonTerminal(deployProcess) {
					if k := fmt.Sprintf("%d/%s", d.ID, st); tr.execs[k] != 1 {
						t.Fatalf("%s ran %d times, want once", k, tr.execs[k])
					}
				}
			}
			t.Logf("steps run by engine: %v", tr.byOwner)
			if tr.byOwner["engine-0"] == 0 || tr.byOwner["engine-1"] == 0 {
				t.Fatalf("both engines should have shared the work: %v", tr.byOwner)
			}
		})
	}
}

var deployProcess, _ = process.Get(process.Deploy)

func TestCrashedEnginesLeasesAreTakenOver(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			c := storetest.Seed(t, s, 3)
			ds := c.Deploy(t, s, 3)
			clock := newClock()
			// A pitasks that died holding leases on every deployment.
			if err := storetest.DB(s).Model(&store.Deployment{}).Where("1 = 1").
				Updates(map[string]any{"lease_owner": "dead", "lease_until": clock.Now().Add(time.Minute)}).Error; err != nil {
				t.Fatal(err)
			}
			f := newFakeSteps()
			e := newEngine(t, s, f, clock, nil)
			if err := e.Tick(context.Background()); err != nil {
				t.Fatal(err)
			}
			e.Wait()
			if got := load(t, s, ds[0].ID); got.State != "boot_conf" || len(f.execsOf(ds[0].ID)) != 0 {
				t.Fatalf("a live lease was not respected: %s", got.State)
			}
			clock.Add(61 * time.Second)
			tickUntil(t, e, clock, time.Second, 3, func() bool {
				for _, d := range ds {
					if load(t, s, d.ID).State != "deployed" {
						return false
					}
				}
				return true
			})
		})
	}
}
