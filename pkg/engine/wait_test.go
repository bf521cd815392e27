package engine

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// Four nodes share one boot slot and each holds it for 40 s of its NFS boot: the last waits
// 120 s in turn_on, past the state's hard reboot (60 s) and its limit (90 s). A wait
// for a turn stops the state's clock: none is hard-rebooted or lost for it, turn_on's
// recorded time leaves the wait out but keeps the work done in the turn (the call that took
// the slot lasts 7 s), and the wait shows in waiting_since while it lasts.
func TestAWaitForATurnStopsTheStatesClock(t *testing.T) {
	for _, db := range storetest.Dialects {
		t.Run(db, func(t *testing.T) {
			s := storetest.Open(t, db)
			c := storetest.Seed(t, s, 4)
			ds := c.Deploy(t, s, 4)
			f := newFakeSteps()
			clock := newClock()
			var mu sync.Mutex
			var holder uint      // the deployment holding the slot (0: free)
			var heldAt time.Time // since when
			const boot, work = 40 * time.Second, 7 * time.Second
			f.post = func(_ context.Context, t *Task) (bool, error) {
				mu.Lock()
				defer mu.Unlock()
				switch t.D.State {
				case process.TurnOn:
					if holder != 0 && holder != t.D.ID {
						return false, Wait("its turn to boot")
					}
					clock.Add(work)
					holder, heldAt = t.D.ID, clock.Now()
				case process.SSHNFS:
					if clock.Now().Sub(heldAt) < boot {
						return false, nil
					}
					holder = 0
				}
				return true, nil
			}
			// One worker: another node's 7 s would otherwise pass on the shared fake clock
			// between a node's entry into turn_on and the start of its wait.
			e := newEngine(t, s, f, clock, func(o *Options) { o.Workers = 1 })
			sawWaiting := false
			tickUntil(t, e, clock, time.Second, 600, func() bool {
				all := true
				for _, d := range ds {
					got := load(t, s, d.ID)
					if got.State.Stopped() {
						t.Fatalf("deployment %d ended %s in %s: %s", d.ID, got.State, got.ResumeState, got.LastError)
					}
					if got.WaitingSince != nil {
						sawWaiting = true
						if got.State != process.TurnOn || got.WaitingFor != "its turn to boot" {
							t.Fatalf("deployment %d waits in %s for %q", d.ID, got.State, got.WaitingFor)
						}
					}
					all = all && got.State == process.Deployed
				}
				return all
			})
			if !sawWaiting {
				t.Error("no deployment ever had waiting_since set")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, d := range ds {
				if r := f.reboots[d.ID]; len(r) > 0 {
					t.Errorf("deployment %d: hard reboots in %v", d.ID, r)
				}
				for _, ev := range events(t, s, d.ID) {
					if ev.State != process.TurnOn {
						continue
					}
					if ev.Outcome != store.OutcomeDone {
						t.Errorf("deployment %d: turn_on %s: %s", d.ID, ev.Outcome, ev.Message)
					}
					if ms := ev.DurationMS; ms < work.Milliseconds() || ms > work.Milliseconds()+5000 {
						t.Errorf("deployment %d: turn_on took %d ms by its event, want its turn's %s of work and its wait left out", d.ID, ms, work)
					}
					if ev.EndedAt.Sub(ev.StartedAt) < 0 {
						t.Errorf("deployment %d: turn_on ended before it started", d.ID)
					}
				}
				if got := load(t, s, d.ID); got.WaitingSince != nil || got.WaitingFor != "" {
					t.Errorf("deployment %d: deployed, still waiting since %v for %q", d.ID, got.WaitingSince, got.WaitingFor)
				}
				p, _ := process.Get(process.Deploy)
				if n := len(events(t, s, d.ID)); n > len(p.States)+1 { // its states' and the queue's
					t.Errorf("deployment %d: %d events: a wait must not record one per try", d.ID, n)
				}
			}
		})
	}
}

// Two nodes share one boot slot behind a switch that never answers again: each takes the
// slot, fails to power its node, gives the slot back and waits for it while the other tries.
// The waits do not end the switch's silence: both are lost after SwitchLimit, naming the
// switch, instead of waiting for ever.
func TestWaitsDoNotHideADeadSwitch(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 2)
	ds := c.Deploy(t, s, 2)
	f := newFakeSteps()
	clock := newClock()
	sw := &frozenSwitch{clock: clock}
	sw.freeze(clock.Now(), clock.Now().Add(24*time.Hour))
	var mu sync.Mutex
	holder := ds[0].ID // the tick loop below hands the slot over now and then
	f.post = func(_ context.Context, t *Task) (bool, error) {
		if t.D.State != process.TurnOn {
			return true, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if holder != 0 && holder != t.D.ID {
			return false, Wait("a boot slot")
		}
		if err := sw.call(); err != nil {
			return false, err
		}
		return true, nil
	}
	const limit = 2 * time.Minute
	e := newEngine(t, s, f, clock, func(o *Options) { o.SwitchLimit = limit })
	turns := 0
	tickUntil(t, e, clock, time.Second, 600, func() bool {
		mu.Lock()
		if turns++; turns%5 == 0 {
			holder = ds[(turns/5)%2].ID
		}
		mu.Unlock()
		for _, d := range ds {
			if load(t, s, d.ID).State != process.Lost {
				return false
			}
		}
		return true
	})
	for _, d := range ds {
		got := load(t, s, d.ID)
		if want := "switch sw1 did not answer for 2m"; got.ResumeState != process.TurnOn || !strings.HasPrefix(got.LastError, want) {
			t.Errorf("deployment %d lost in %s: %q, want %q… during turn_on", d.ID, got.ResumeState, got.LastError, want)
		}
	}
}
