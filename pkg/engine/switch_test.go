package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// frozenSwitch is a switch that does not answer between from and until (fake clock).
type frozenSwitch struct {
	mu          sync.Mutex
	clock       *fakeClock
	from, until time.Time
}

func (f *frozenSwitch) freeze(from, until time.Time) {
	f.mu.Lock()
	f.from, f.until = from, until
	f.mu.Unlock()
}

// call is one request to the switch: an error marked SwitchSilent while it is frozen.
func (f *frozenSwitch) call() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := f.clock.Now(); !now.Before(f.from) && now.Before(f.until) {
		return SwitchSilent(fmt.Errorf("sw1: %w", errors.New("no answer from switch")))
	}
	return nil
}

// Three nodes in turn_on while their switch is frozen for longer than turn_on's limit (90 s)
// are not lost: they are asked again every few seconds, not after a backoff that runs past
// the thaw, and all go on within SwitchRetry of it.
func TestFrozenSwitchDoesNotLoseNodesInTurnOn(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 3)
	ds := c.Deploy(t, s, 3)
	f := newFakeSteps()
	clock := newClock()
	sw := &frozenSwitch{clock: clock}
	start := clock.Now()
	thaw := start.Add(150 * time.Second)
	sw.freeze(start, thaw)
	f.post = func(_ context.Context, t *Task) (bool, error) {
		if t.D.State == process.TurnOn {
			if err := sw.call(); err != nil {
				return false, err
			}
		}
		return true, nil
	}
	e := newEngine(t, s, f, clock, nil)
	tickUntil(t, e, clock, time.Second, 400, func() bool {
		for _, d := range ds {
			if load(t, s, d.ID).State != process.Deployed {
				return false
			}
		}
		return true
	})
	for _, d := range ds {
		var retries int
		var prev time.Time
		for _, ev := range events(t, s, d.ID) {
			if ev.State != process.TurnOn {
				continue
			}
			if !prev.IsZero() && ev.EndedAt.Sub(prev) > 3*time.Second+time.Second {
				t.Errorf("deployment %d: %s between two tries of turn_on, want at most SwitchRetry (3s) and a tick", d.ID, ev.EndedAt.Sub(prev))
			}
			prev = ev.EndedAt
			switch ev.Outcome {
			case store.OutcomeRetry:
				retries++
			case store.OutcomeDone:
				if late := ev.EndedAt.Sub(thaw); late < 0 || late > 4*time.Second {
					t.Errorf("deployment %d: turn_on done %s after the thaw, want within 4s", d.ID, late)
				}
			default:
				t.Errorf("deployment %d: turn_on %s: %s", d.ID, ev.Outcome, ev.Message)
			}
		}
		if retries < 150/3 {
			t.Errorf("deployment %d: %d tries during 150s of silence, want one every 3s at most", d.ID, retries)
		}
	}
}

// A switch that stays silent loses the deployment after SwitchLimit, with a reason that
// names the switch and the state.
func TestSilentSwitchLosesAfterItsLimit(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	f := newFakeSteps()
	clock := newClock()
	sw := &frozenSwitch{clock: clock}
	sw.freeze(clock.Now(), clock.Now().Add(time.Hour))
	f.exec = func(_ context.Context, t *Task) error {
		if t.D.State == process.TurnOff {
			return sw.call()
		}
		return nil
	}
	const limit = 2 * time.Minute
	e := newEngine(t, s, f, clock, func(o *Options) { o.SwitchLimit = limit })
	tickUntil(t, e, clock, time.Second, 300, func() bool { return load(t, s, d.ID).State == process.Lost })
	got := load(t, s, d.ID)
	if want := "switch sw1 did not answer for 2m"; got.ResumeState != process.TurnOff || !strings.HasPrefix(got.LastError, want) || !strings.HasSuffix(got.LastError, "s during turn_off") {
		t.Errorf("lost in %s: %q, want %q… during turn_off", got.ResumeState, got.LastError, want)
	}
	for _, ev := range events(t, s, d.ID) {
		if ev.Outcome == store.OutcomeLost {
			if el := time.Duration(ev.DurationMS) * time.Millisecond; el < limit || el > limit+5*time.Second {
				t.Errorf("lost %s after turn_off started, want the switch's limit %s", el, limit)
			}
		}
	}
}

// The time a state waits for its switch does not count against the state's limit, but the
// rest of its time does: a turn_off whose port stays on is lost after 30 s of its own,
// silence of the switch in between or not.
func TestSwitchSilenceStopsTheStatesClock(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	f := newFakeSteps()
	clock := newClock()
	sw := &frozenSwitch{clock: clock}
	var entered time.Time
	f.exec = func(_ context.Context, t *Task) error {
		if t.D.State == process.TurnOff && entered.IsZero() {
			// Frozen from 10 s into turn_off for 60 s: the port reads fail, then so does
			// the Exec asked again after the state's clock moved.
			entered = clock.Now()
			sw.freeze(entered.Add(10*time.Second), entered.Add(70*time.Second))
		}
		return nil
	}
	f.post = func(_ context.Context, t *Task) (bool, error) {
		if t.D.State == process.TurnOff {
			return false, sw.call() // the port never reads off
		}
		return true, nil
	}
	e := newEngine(t, s, f, clock, nil)
	tickUntil(t, e, clock, time.Second, 300, func() bool { return load(t, s, d.ID).State == process.Lost })
	var lost *store.StateEvent
	evs := events(t, s, d.ID)
	for i := range evs {
		if evs[i].Outcome == store.OutcomeLost {
			lost = &evs[i]
		}
	}
	if lost == nil || lost.State != process.TurnOff {
		t.Fatalf("not lost in turn_off: %+v", lost)
	}
	if el := lost.EndedAt.Sub(entered); el < 90*time.Second || el > 95*time.Second {
		t.Errorf("lost %s after entering turn_off, want 30s of its own plus 60s of the switch's silence", el)
	}
	if got := load(t, s, d.ID).LastError; got != "no progress in turn_off after 30s" {
		t.Errorf("reason %q, want the state's own time", got)
	}
}

// frozenRebooter is a hard reboot through a frozenSwitch.
type frozenRebooter struct {
	*fakeSteps
	sw *frozenSwitch
}

func (r frozenRebooter) HardReboot(ctx context.Context, d *store.Deployment) error {
	if err := r.sw.call(); err != nil {
		return err
	}
	return r.fakeSteps.HardReboot(ctx, d)
}

// A node that waited for a boot slot past turn_on's time before a hard reboot (60 s) while
// its switch was frozen gets the reboot once the switch answers, and is not lost at turn_on's
// limit (90 s) for the silence; a switch frozen for good loses it after SwitchLimit.
func TestHardRebootWaitsForTheSwitch(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 2)
	ds := c.Deploy(t, s, 2)
	thawing, frozen := ds[0], ds[1]
	f := newFakeSteps()
	clock := newClock()
	start := clock.Now()
	thaw, forGood := &frozenSwitch{clock: clock}, &frozenSwitch{clock: clock}
	thaw.freeze(start.Add(50*time.Second), start.Add(200*time.Second))
	forGood.freeze(start.Add(50*time.Second), start.Add(time.Hour))
	f.post = func(_ context.Context, t *Task) (bool, error) {
		// No boot slot before the hard reboot.
		return t.D.State != process.TurnOn || t.D.Rebooted, nil
	}
	byID := map[uint]*frozenSwitch{thawing.ID: thaw, frozen.ID: forGood}
	e := newEngine(t, s, f, clock, func(o *Options) {
		o.Rebooter = rebooterFunc(func(ctx context.Context, d *store.Deployment) error {
			return frozenRebooter{f, byID[d.ID]}.HardReboot(ctx, d)
		})
		o.SwitchLimit = 3 * time.Minute
	})
	tickUntil(t, e, clock, time.Second, 600, func() bool {
		return load(t, s, thawing.ID).State == process.Deployed && load(t, s, frozen.ID).State == process.Lost
	})
	for _, ev := range events(t, s, thawing.ID) {
		if ev.State == process.TurnOn && ev.Outcome == store.OutcomeReboot {
			if late := ev.EndedAt.Sub(start.Add(200 * time.Second)); late < 0 || late > 4*time.Second {
				t.Errorf("hard reboot %s after the thaw, want within 4s", late)
			}
		}
	}
	if got := load(t, s, frozen.ID).LastError; !strings.HasPrefix(got, "switch sw1 did not answer for 3m") || !strings.HasSuffix(got, "s during turn_on") {
		t.Errorf("lost: %q, want the switch named", got)
	}
}

type rebooterFunc func(context.Context, *store.Deployment) error

func (f rebooterFunc) HardReboot(ctx context.Context, d *store.Deployment) error { return f(ctx, d) }
