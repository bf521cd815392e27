package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Now().UTC()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeSteps records what ran; exec and post decide what each call does (nil: succeed at once).
type fakeSteps struct {
	mu      sync.Mutex
	execs   map[uint][]process.StateName // deployment -> states whose Exec ran, in order
	reboots map[uint][]process.StateName // deployment -> states that got a hard reboot
	exec    func(ctx context.Context, t *Task) error
	post    func(ctx context.Context, t *Task) (bool, error)
}

func newFakeSteps() *fakeSteps {
	return &fakeSteps{execs: map[uint][]process.StateName{}, reboots: map[uint][]process.StateName{}}
}

type fakeStep struct{ f *fakeSteps }

func (s fakeStep) Exec(ctx context.Context, t *Task) error {
	s.f.mu.Lock()
	s.f.execs[t.D.ID] = append(s.f.execs[t.D.ID], t.D.State)
	exec := s.f.exec
	s.f.mu.Unlock()
	if exec != nil {
		return exec(ctx, t)
	}
	return nil
}

func (s fakeStep) Post(ctx context.Context, t *Task) (bool, error) {
	s.f.mu.Lock()
	post := s.f.post
	s.f.mu.Unlock()
	if post != nil {
		return post(ctx, t)
	}
	return true, nil
}

func (f *fakeSteps) HardReboot(_ context.Context, d *store.Deployment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reboots[d.ID] = append(f.reboots[d.ID], d.State)
	return nil
}

func (f *fakeSteps) steps() map[process.StateName]Step {
	m := map[process.StateName]Step{}
	for _, p := range process.All() {
		for _, st := range p.States {
			m[st.Name] = fakeStep{f}
		}
	}
	return m
}

func (f *fakeSteps) execsOf(id uint) []process.StateName {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.execs[id])
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEngine(t *testing.T, s *store.Store, f *fakeSteps, clock Clock, mod func(*Options)) *Engine {
	t.Helper()
	o := Options{Store: s, Steps: f.steps(), Rebooter: f, Log: quietLog(), Clock: clock, Workers: 8,
		StepDeadline: 5 * time.Second, PollInterval: time.Second}
	if mod != nil {
		mod(&o)
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	return e
}

// tickUntil ticks (advancing the clock by step each time) until cond holds or max ticks pass;
// it returns the number of ticks used.
func tickUntil(t *testing.T, e *Engine, clock *fakeClock, step time.Duration, max int, cond func() bool) int {
	t.Helper()
	for i := 1; i <= max; i++ {
		if err := e.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.Wait()
		if cond() {
			return i
		}
		clock.Add(step)
	}
	t.Fatalf("condition not met after %d ticks", max)
	return 0
}

func load(t *testing.T, s *store.Store, id uint) *store.Deployment {
	t.Helper()
	d, err := s.Deployment(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func events(t *testing.T, s *store.Store, id uint) []store.StateEvent {
	t.Helper()
	var evs []store.StateEvent
	if err := storetest.DB(s).Where("deployment_id = ?", id).Order("id").Find(&evs).Error; err != nil {
		t.Fatal(err)
	}
	return evs
}

func nonTerminal(p process.Process) []process.StateName {
	var out []process.StateName
	for _, st := range p.States {
		if !p.Terminal(st.Name) {
			out = append(out, st.Name)
		}
	}
	return out
}

func TestProcessesRunTheirStatesInOrderWithinOneTick(t *testing.T) {
	for _, proc := range []string{process.Deploy, process.Destroy, process.BootTest} {
		t.Run(proc, func(t *testing.T) {
			s := storetest.Open(t, "sqlite")
			c := storetest.Seed(t, s, 1)
			d := c.Deploy(t, s, 1)[0]
			if proc != process.Deploy {
				if err := s.RequestProcess(context.Background(), d.ID, proc); err != nil {
					t.Fatal(err)
				}
			}
			f := newFakeSteps()
			clock := newClock()
			e := newEngine(t, s, f, clock, nil)
			p, _ := process.Get(proc)
			last := p.States[len(p.States)-1].Name
			ticks := tickUntil(t, e, clock, time.Second, 5, func() bool { return load(t, s, d.ID).State == last })
			if ticks != 1 {
				t.Errorf("took %d ticks, want 1: a state whose work is done moves on at once", ticks)
			}
			if got, want := f.execsOf(d.ID), nonTerminal(p); !slices.Equal(got, want) {
				t.Errorf("states run %v, want %v", got, want)
			}
			evs := events(t, s, d.ID)
			if len(evs) != 1+len(nonTerminal(p)) {
				t.Fatalf("%d events, want the wait for a worker then one per state", len(evs))
			}
			if q := evs[0]; q.Outcome != store.OutcomeQueued || q.State != p.First() {
				t.Errorf("first event = %s/%s, want the wait for a worker before %s", q.State, q.Outcome, p.First())
			}
			for i, ev := range evs[1:] {
				if ev.Outcome != store.OutcomeDone || ev.State != nonTerminal(p)[i] {
					t.Errorf("event %d = %s/%s", i, ev.State, ev.Outcome)
				}
			}
			if got := load(t, s, d.ID); got.LeaseOwner != "" {
				t.Errorf("lease not released: %q", got.LeaseOwner)
			}
		})
	}
}

// TestTheWaitForAWorkerIsNotTheFirstStatesTime: a request that waited ten minutes for a worker
// (pitasks down, or every worker busy) shows the wait as a queued event; the first state's clock
// starts when a worker takes it, so its time and its timeouts do not include the wait.
func TestTheWaitForAWorkerIsNotTheFirstStatesTime(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	if got := load(t, s, d.ID); !got.Queued {
		t.Fatal("a new request is not marked as waiting for a worker")
	}
	clock := newClock()
	clock.Add(10 * time.Minute)
	f := newFakeSteps()
	// boot_conf (lost after 30 s) is not done at the first look: a clock that started with the
	// request would give the node up as lost.
	var mu sync.Mutex
	looked := false
	f.post = func(_ context.Context, t *Task) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if t.D.State == "boot_conf" && !looked {
			looked = true
			return false, nil
		}
		return true, nil
	}
	e := newEngine(t, s, f, clock, nil)
	tickUntil(t, e, clock, time.Second, 5, func() bool { return load(t, s, d.ID).State == "deployed" })
	evs := events(t, s, d.ID)
	q, bc := evs[0], evs[1]
	if q.Outcome != store.OutcomeQueued || q.State != "boot_conf" || q.DurationMS < (10*time.Minute).Milliseconds() {
		t.Errorf("wait for a worker = %s/%s %d ms, want boot_conf/queued of 10 min", q.State, q.Outcome, q.DurationMS)
	}
	if bc.Outcome != store.OutcomeDone || bc.State != "boot_conf" || bc.DurationMS != time.Second.Milliseconds() {
		t.Errorf("boot_conf = %s %d ms, want done in the 1 s between its two looks", bc.Outcome, bc.DurationMS)
	}
	if got := load(t, s, d.ID); got.Queued {
		t.Error("still marked as waiting for a worker")
	}
}

func TestRebootResumesWhereTheNodeWas(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	f := newFakeSteps()
	clock := newClock()
	// Stop the deployment in ssh_system, then reboot it.
	f.post = func(_ context.Context, t *Task) (bool, error) { return t.D.State != "ssh_system", nil }
	e := newEngine(t, s, f, clock, nil)
	tickUntil(t, e, clock, time.Second, 3, func() bool { return load(t, s, d.ID).State == "ssh_system" })
	if err := s.RequestProcess(context.Background(), d.ID, process.Reboot); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.post = nil
	f.execs = map[uint][]process.StateName{}
	f.mu.Unlock()
	tickUntil(t, e, clock, time.Second, 5, func() bool { return load(t, s, d.ID).State == "deployed" })
	want := []process.StateName{"turn_off", "turn_on", "coming_back", "ssh_system", "system_update", "boot_update", "user_conf", "user_script"}
	if got := f.execsOf(d.ID); !slices.Equal(got, want) {
		t.Errorf("after reboot ran %v, want %v", got, want)
	}
	if got := load(t, s, d.ID); got.Process != process.Deploy || got.ResumeState != "" {
		t.Errorf("after reboot: process %s resume %q", got.Process, got.ResumeState)
	}
}

func TestTimeoutsRebootOnceThenLost(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	f := newFakeSteps()
	clock := newClock()
	f.post = func(_ context.Context, t *Task) (bool, error) { return t.D.State != "ssh_nfs", nil }
	e := newEngine(t, s, f, clock, func(o *Options) {
		o.Timeouts = map[process.Key]process.Timeout{{Process: process.Deploy, State: process.SSHNFS}: {BeforeReboot: 45 * time.Second, Lost: 60 * time.Second}}
	})
	tickUntil(t, e, clock, 5*time.Second, 30, func() bool { return load(t, s, d.ID).State == process.Lost })
	got := load(t, s, d.ID)
	if got.ResumeProcess != process.Deploy || got.ResumeState != "ssh_nfs" || got.LastError == "" {
		t.Errorf("lost deployment: resume %s/%s, error %q", got.ResumeProcess, got.ResumeState, got.LastError)
	}
	if r := f.reboots[d.ID]; !slices.Equal(r, []process.StateName{"ssh_nfs"}) {
		t.Errorf("hard reboots %v, want exactly one in ssh_nfs", r)
	}
	var outcomes []string
	for _, ev := range events(t, s, d.ID) {
		if ev.State == "ssh_nfs" {
			outcomes = append(outcomes, ev.Outcome)
		}
	}
	if !slices.Equal(outcomes, []string{store.OutcomeReboot, store.OutcomeLost}) {
		t.Errorf("ssh_nfs outcomes %v", outcomes)
	}
	// The reboot happened after before_reboot, the loss after lost, both measured from the
	// state's start.
	for _, ev := range events(t, s, d.ID) {
		if ev.State != "ssh_nfs" {
			continue
		}
		el := time.Duration(ev.DurationMS) * time.Millisecond
		if ev.Outcome == store.OutcomeReboot && (el < 45*time.Second || el >= 60*time.Second) {
			t.Errorf("reboot after %s", el)
		}
		if ev.Outcome == store.OutcomeLost && (el < 60*time.Second || el > 65*time.Second) {
			t.Errorf("lost after %s", el)
		}
	}

	// A new pitasks resumes the lost node where it was; this time the node answers.
	f.mu.Lock()
	f.post = nil
	f.mu.Unlock()
	e2 := newEngine(t, s, f, clock, nil)
	if err := e2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := load(t, s, d.ID); got.State != "ssh_nfs" || got.Rebooted {
		t.Fatalf("after resume: state %s rebooted %v", got.State, got.Rebooted)
	}
	tickUntil(t, e2, clock, time.Second, 3, func() bool { return load(t, s, d.ID).State == "deployed" })
}

func TestTransientErrorsBackOffAndPermanentErrorsFail(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 2)
	ds := c.Deploy(t, s, 2)
	f := newFakeSteps()
	clock := newClock()
	var mu sync.Mutex
	attempts := 0
	f.exec = func(_ context.Context, t *Task) error {
		switch {
		case t.D.State == "env_copy" && t.D.NodeID == c.Nodes[0].ID:
			mu.Lock()
			defer mu.Unlock()
			attempts++
			if attempts < 3 {
				return errors.New("switch did not answer")
			}
		case t.D.State == "env_copy" && t.D.NodeID == c.Nodes[1].ID:
			return Permanent(errors.New("image is truncated"))
		}
		return nil
	}
	e := newEngine(t, s, f, clock, nil)
	tickUntil(t, e, clock, 10*time.Second, 20, func() bool { return load(t, s, ds[0].ID).State == "deployed" })
	if attempts != 3 {
		t.Errorf("env_copy attempted %d times, want 3", attempts)
	}
	retries := 0
	for _, ev := range events(t, s, ds[0].ID) {
		if ev.Outcome == store.OutcomeRetry {
			retries++
		}
	}
	if retries != 2 {
		t.Errorf("%d retry events, want 2", retries)
	}
	bad := load(t, s, ds[1].ID)
	if bad.State != process.Failed || bad.LastError != "env_copy: image is truncated" {
		t.Errorf("permanent error: state %s, error %q", bad.State, bad.LastError)
	}
}

func TestHungNodeDoesNotDelayOthers(t *testing.T) {
	const n = 200
	run := func(hang bool) (ticks int) {
		s := storetest.Open(t, "sqlite")
		c := storetest.Seed(t, s, n+1)
		ds := c.Deploy(t, s, n+1)
		hung := ds[0].ID
		f := newFakeSteps()
		clock := newClock()
		if hang {
			f.exec = func(ctx context.Context, t *Task) error {
				if t.D.ID == hung && t.D.State == "env_copy" {
					select {} // a step that ignores its context (abandoned after the deadline)
				}
				return nil
			}
		}
		e := newEngine(t, s, f, clock, func(o *Options) { o.Workers = 64; o.StepDeadline = time.Minute })
		others := func() bool {
			var cnt int64
			storetest.DB(s).Model(&store.Deployment{}).Where("state = ? AND id <> ?", "deployed", hung).Count(&cnt)
			return cnt == n
		}
		for ticks = 1; ticks <= 20; ticks++ {
			if err := e.Tick(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Wait for every turn but the hung one's: a worker still busy with a finished
			// deployment would make the next tick claim fewer, and the count noisy.
			stillHung := 0
			if hang {
				stillHung = 1
			}
			// No short bound here: on a busy machine a tick's 64 turns can take longer than
			// any guess, and cutting the wait short is what made the count noisy.
			for deadline := time.Now().Add(5 * time.Minute); e.Busy() > stillHung; {
				if time.Now().After(deadline) {
					t.Fatalf("tick %d: %d turns still running after 5 minutes", ticks, e.Busy())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if others() {
				return ticks
			}
			clock.Add(time.Second)
		}
		t.Fatalf("the %d other nodes did not finish in 20 ticks", n)
		return 0
	}
	base := run(false)
	withHung := run(true)
	t.Logf("ticks for %d nodes: %d without a hung node, %d with one", n, base, withHung)
	if withHung > base {
		t.Errorf("a hung node delayed the others: %d ticks instead of %d", withHung, base)
	}
}

func TestReservationEndDestroys(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 2)
	ds := c.Deploy(t, s, 2)
	f := newFakeSteps()
	clock := newClock()
	e := newEngine(t, s, f, clock, nil)
	tickUntil(t, e, clock, time.Second, 3, func() bool { return load(t, s, ds[1].ID).State == "deployed" })
	clock.Add(2 * time.Hour) // past the reservation's end
	tickUntil(t, e, clock, time.Second, 5, func() bool {
		return load(t, s, ds[0].ID).State == "destroyed" && load(t, s, ds[1].ID).State == "destroyed"
	})
	if got := f.execsOf(ds[0].ID); !slices.Equal(got[len(got)-2:], []process.StateName{"destroying", "turn_off"}) {
		t.Errorf("states run %v, want destroying, turn_off at the end", got)
	}
}

func TestNewRequestFencesOffARunningStep(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	f := newFakeSteps()
	clock := newClock()
	inCopy := make(chan struct{})
	release := make(chan struct{})
	f.exec = func(_ context.Context, t *Task) error {
		if t.D.State == "env_copy" && t.D.Process == process.Deploy {
			close(inCopy)
			<-release
		}
		return nil
	}
	e := newEngine(t, s, f, clock, nil)
	if err := e.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-inCopy
	// The user destroys the node while its image is being copied.
	if err := s.RequestProcess(context.Background(), d.ID, process.Destroy); err != nil {
		t.Fatal(err)
	}
	close(release)
	e.Wait()
	if got := load(t, s, d.ID); got.Process != process.Destroy || got.State != "destroying" {
		t.Fatalf("the running step overwrote the new request: %s/%s", got.Process, got.State)
	}
	tickUntil(t, e, clock, time.Second, 3, func() bool { return load(t, s, d.ID).State == "destroyed" })
}

func TestMissingStepIsRefused(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	f := newFakeSteps()
	steps := f.steps()
	delete(steps, "partition")
	_, err := New(Options{Store: s, Steps: steps, Rebooter: f})
	if err == nil || err.Error() != "engine: no step for state partition of process deploy" {
		t.Fatalf("err = %v", err)
	}
	_, err = New(Options{Store: s, Steps: f.steps(), Rebooter: f, Timeouts: map[process.Key]process.Timeout{{Process: process.Deploy, State: "nope"}: {}}})
	if err == nil {
		t.Fatal("unknown state in timeouts accepted")
	}
}

func ExamplePermanent() {
	err := fmt.Errorf("env_copy: %w", Permanent(errors.New("bad image")))
	fmt.Println(IsPermanent(err))
	// Output: true
}

// TestStepIgnoringItsDeadlineIsAbandoned: a step that never returns is given up shortly after
// the step deadline; its worker is free again and the attempt is recorded as failed.
func TestStepIgnoringItsDeadlineIsAbandoned(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	f := newFakeSteps()
	f.exec = func(ctx context.Context, t *Task) error {
		if t.D.State == "env_copy" {
			select {} // ignores ctx, like a driver stuck in a syscall
		}
		return nil
	}
	clock := newClock()
	e := newEngine(t, s, f, clock, func(o *Options) { o.StepDeadline = 300 * time.Millisecond })
	start := time.Now()
	if err := e.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	for e.Busy() > 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the worker of a hung step was never freed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := load(t, s, d.ID)
	if got.State != "env_copy" || got.Failures != 1 || !strings.Contains(got.LastError, "abandoned after 300ms") {
		t.Fatalf("after a hung step: %s, %d failures, %q", got.State, got.Failures, got.LastError)
	}
	t.Logf("worker freed after %s: %s", time.Since(start).Round(10*time.Millisecond), got.LastError)
}
