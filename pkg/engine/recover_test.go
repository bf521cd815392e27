package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// ports is a switch for the fake steps: a hard reboot leaves the port on; failReboots makes
// the next hard reboots fail (a switch that does not answer).
type ports struct {
	*fakeSteps
	mu          sync.Mutex
	off         map[uint]bool // by deployment
	failReboots int
}

func (p *ports) PortOn(_ context.Context, d *store.Deployment) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.off[d.ID], nil
}

func (p *ports) HardReboot(ctx context.Context, d *store.Deployment) error {
	p.mu.Lock()
	if p.failReboots > 0 {
		p.failReboots--
		p.mu.Unlock()
		return errors.New("switch did not answer")
	}
	p.off[d.ID] = false
	p.mu.Unlock()
	return p.fakeSteps.HardReboot(ctx, d)
}

func (p *ports) set(id uint, off bool) {
	p.mu.Lock()
	p.off[id] = off
	p.mu.Unlock()
}

var errNoRoute = Silent(errors.New("dial: connect: no route to host"))

func outcomesIn(t *testing.T, s *store.Store, id uint, state process.StateName) []string {
	t.Helper()
	var out []string
	for _, ev := range events(t, s, id) {
		if ev.State == state {
			out = append(out, ev.Outcome)
		}
	}
	return out
}

// A node whose port goes off in the middle of its copy is power-cycled as soon as the copy
// fails, and goes back to the NFS boot, without waiting for env_copy's limit; the other node,
// whose step fails the same way in a state that needs no node, is only retried.
func TestPortOffMidCopyIsPowerCycledAtOnce(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 2)
	ds := c.Deploy(t, s, 2)
	copying, other := ds[0], ds[1]
	f := newFakeSteps()
	p := &ports{fakeSteps: f, off: map[uint]bool{}}
	clock := newClock()
	var mu sync.Mutex
	turnOnFails := 1
	f.exec = func(_ context.Context, t *Task) error {
		if t.D.ID == copying.ID && t.D.State == process.EnvCopy {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.off[t.D.ID] {
				return errNoRoute
			}
		}
		return nil
	}
	f.post = func(_ context.Context, t *Task) (bool, error) {
		if t.D.ID == other.ID && t.D.State == process.TurnOn {
			mu.Lock()
			defer mu.Unlock()
			if turnOnFails > 0 {
				turnOnFails--
				return false, errNoRoute
			}
		}
		return true, nil
	}
	p.set(copying.ID, true)
	e := newEngine(t, s, f, clock, func(o *Options) { o.Rebooter = p; o.SilentLimit = time.Minute })
	tickUntil(t, e, clock, time.Second, 30, func() bool {
		return load(t, s, copying.ID).State == process.Deployed && load(t, s, other.ID).State == process.Deployed
	})
	if got := f.reboots[copying.ID]; !slices.Equal(got, []process.StateName{process.EnvCopy}) {
		t.Errorf("hard reboots %v, want one, in env_copy", got)
	}
	if got := outcomesIn(t, s, copying.ID, process.EnvCopy); !slices.Equal(got, []string{store.OutcomeReboot, store.OutcomeDone}) {
		t.Errorf("env_copy outcomes %v, want reboot (at the first failure) then done", got)
	}
	for _, ev := range events(t, s, copying.ID) {
		if ev.Outcome == store.OutcomeReboot {
			want := c.Nodes[0].Name + "'s port was off during env_copy: power-cycled, back to ssh_nfs"
			if ev.Message != want {
				t.Errorf("reboot event %q, want %q", ev.Message, want)
			}
			if ev.DurationMS != 0 {
				t.Errorf("power-cycled after %dms, want at the first failure", ev.DurationMS)
			}
		}
	}
	// The wait for the NFS system ran again, then the copy; the power cycle was the reboot.
	var again []process.StateName
	for _, st := range f.execsOf(copying.ID) {
		if st == process.SSHNFS || st == process.EnvCopy || st == process.TurnOn {
			again = append(again, st)
		}
	}
	if want := []process.StateName{process.TurnOn, process.SSHNFS, process.EnvCopy, process.SSHNFS, process.EnvCopy}; !slices.Equal(again, want) {
		t.Errorf("states run %v, want %v", again, want)
	}
	if got := load(t, s, copying.ID); !got.NodeRecovered || got.SilentSince != nil {
		t.Errorf("after the recovery: node_recovered %v, silent_since %v", got.NodeRecovered, got.SilentSince)
	}
	if got := f.reboots[other.ID]; len(got) != 0 {
		t.Errorf("turn_on has no node to lose, yet got hard reboots %v", got)
	}
	if got := outcomesIn(t, s, other.ID, process.TurnOn); !slices.Equal(got, []string{store.OutcomeRetry, store.OutcomeDone}) {
		t.Errorf("turn_on outcomes %v, want retry then done", got)
	}
}

// A node that stops answering with its port on is power-cycled once it was silent for
// SilentLimit, not before; silent a second time, it is lost, saying where and why.
func TestSilentNodeIsPowerCycledAfterTheLimitThenLost(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	f := newFakeSteps()
	p := &ports{fakeSteps: f, off: map[uint]bool{}}
	clock := newClock()
	f.exec = func(_ context.Context, t *Task) error {
		if t.D.State == process.UserScript {
			return errNoRoute
		}
		return nil
	}
	const limit = 20 * time.Second
	e := newEngine(t, s, f, clock, func(o *Options) { o.Rebooter = p; o.SilentLimit = limit })
	tickUntil(t, e, clock, 2*time.Second, 200, func() bool { return load(t, s, d.ID).State == process.Lost })
	got := load(t, s, d.ID)
	want := c.Nodes[0].Name + " stopped answering during user_script"
	if !strings.HasPrefix(got.LastError, want) || !strings.Contains(got.LastError, "again after its power cycle") || got.ResumeState != process.UserScript {
		t.Errorf("lost in %s: %q, want %q…, again after its power cycle", got.ResumeState, got.LastError, want)
	}
	if r := f.reboots[d.ID]; !slices.Equal(r, []process.StateName{process.UserScript}) {
		t.Errorf("hard reboots %v, want one, in user_script", r)
	}
	if got := outcomesIn(t, s, d.ID, process.SSHSystem); !slices.Equal(got, []string{store.OutcomeDone, store.OutcomeDone}) {
		t.Errorf("ssh_system outcomes %v, want done twice (the card boot again after the power cycle)", got)
	}
	// Each stretch of silence lasted the limit (and less than the limit plus a quarter of it
	// and a tick), measured from the first failure.
	var first time.Time
	for _, ev := range events(t, s, d.ID) {
		if ev.State != process.UserScript {
			continue
		}
		switch ev.Outcome {
		case store.OutcomeRetry:
			if first.IsZero() {
				first = ev.EndedAt
			}
		case store.OutcomeReboot, store.OutcomeLost:
			if el := ev.EndedAt.Sub(first); el < limit || el > limit+limit/4+2*time.Second {
				t.Errorf("%s after %s of silence, want %s", ev.Outcome, el, limit)
			}
			first = time.Time{}
		}
	}
	// A new request starts a new run, with its own power cycle to spend.
	if err := s.RequestProcess(context.Background(), d.ID, process.Deploy); err != nil {
		t.Fatal(err)
	}
	if got := load(t, s, d.ID); got.NodeRecovered || got.SilentSince != nil {
		t.Errorf("a new deploy kept node_recovered %v, silent_since %v", got.NodeRecovered, got.SilentSince)
	}
}

// A pitasks that could not power-cycle the node (its switch did not answer) and then died
// leaves the deployment where it was: the next one finds the node silent and brings it back.
func TestRecoveryContinuesInTheNextPitasks(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	f := newFakeSteps()
	p := &ports{fakeSteps: f, off: map[uint]bool{}, failReboots: 1}
	clock := newClock()
	f.exec = func(_ context.Context, t *Task) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if t.D.State == process.SystemConf && p.off[t.D.ID] {
			return errNoRoute
		}
		return nil
	}
	p.set(d.ID, true)
	e := newEngine(t, s, f, clock, func(o *Options) { o.Rebooter = p })
	tickUntil(t, e, clock, time.Second, 20, func() bool { return len(outcomesIn(t, s, d.ID, process.SystemConf)) > 0 })
	got := load(t, s, d.ID)
	if got.State != process.SystemConf || got.NodeRecovered || got.SilentSince == nil ||
		!strings.Contains(got.LastError, "port was off during system_conf; power-cycling it: switch did not answer") {
		t.Fatalf("after a failed power cycle: %s, recovered %v, silent since %v, %q", got.State, got.NodeRecovered, got.SilentSince, got.LastError)
	}
	// e ticks no more: the next pitasks takes over.
	e2 := newEngine(t, s, f, clock, func(o *Options) { o.Rebooter = p })
	tickUntil(t, e2, clock, 10*time.Second, 30, func() bool { return load(t, s, d.ID).State == process.Deployed })
	if r := f.reboots[d.ID]; !slices.Equal(r, []process.StateName{process.SystemConf}) {
		t.Errorf("hard reboots %v, want one, in system_conf", r)
	}
	if got := outcomesIn(t, s, d.ID, process.SystemConf); !slices.Equal(got, []string{store.OutcomeRetry, store.OutcomeReboot, store.OutcomeDone}) {
		t.Errorf("system_conf outcomes %v, want retry (switch), reboot, done", got)
	}
}
