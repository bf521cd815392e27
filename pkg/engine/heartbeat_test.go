package engine

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// blockingExec holds each Exec of deployment id's first state until released or cancelled,
// recording who runs it through the overlap tracker.
type blockingExec struct {
	tr      *overlapTracker
	release chan struct{}
	entered chan string // the owner, each time an Exec starts
}

func (b *blockingExec) steps(owner string) *fakeSteps {
	f := newFakeSteps()
	f.exec = func(ctx context.Context, t *Task) error {
		if t.D.State != "boot_conf" {
			return nil
		}
		key := b.tr.enter(owner, t)
		defer b.tr.leave(key)
		b.entered <- owner
		select {
		case <-b.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f
}

// waitUntil polls cond with a generous deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestLateHeartbeatKeepsLeasesAndStoppedOneIsTakenOver: a holder whose heartbeat is late
// (more than three ticks) but comes before the takeover delay keeps its lease, and its step
// ends as its own; a holder that stops beating abandons its step before its peer takes the
// deployment over, so the step never runs twice at once and its result is written once.
func TestLateHeartbeatKeepsLeasesAndStoppedOneIsTakenOver(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			c := storetest.Seed(t, s, 1)
			d := c.Deploy(t, s, 1)[0]
			tr := &overlapTracker{running: map[string]string{}, execs: map[string]int{}, byOwner: map[string]int{}}
			b := &blockingExec{tr: tr, release: make(chan struct{}), entered: make(chan string, 4)}
			// Ticks of 100ms, takeover after 12s: the holder stops its steps after 8s without a beat.
			opts := func(owner string) func(*Options) {
				return func(o *Options) {
					o.Owner, o.Tick, o.TakeoverAfter, o.Lease, o.StepDeadline = owner, 100*time.Millisecond, 12*time.Second, time.Minute, time.Minute
				}
			}
			holder := newEngine(t, s, b.steps("holder"), nil, opts("holder"))
			peer := newEngine(t, s, b.steps("peer"), nil, opts("peer"))
			ctx := context.Background()
			tick := func(e *Engine) {
				t.Helper()
				if err := e.Tick(ctx); err != nil {
					t.Fatal(err)
				}
			}
			tick(holder)
			if who := <-b.entered; who != "holder" {
				t.Fatalf("%s runs the step", who)
			}
			// The holder's heartbeat is late: 0.8s, eight ticks, but less than the takeover delay.
			time.Sleep(800 * time.Millisecond)
			tick(peer)
			tick(holder)
			if got := load(t, s, d.ID).LeaseOwner; got != "holder" {
				t.Fatalf("a late heartbeat lost its lease to %q", got)
			}
			// The holder now stops beating (its tick loop wedged): it abandons the step on its own,
			// then the peer takes the deployment over at its next tick and runs the step.
			waitUntil(t, "the holder to abandon its step", func() bool { return holder.Busy() == 0 })
			deadline := time.Now().Add(time.Minute)
			for took := false; !took; {
				tick(peer)
				select {
				case who := <-b.entered:
					if who != "peer" {
						t.Fatalf("%s ran the step again", who)
					}
					took = true
				case <-time.After(100 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatal("the peer never took the deployment over")
				}
			}
			// The holder beats again: it learns it was taken over, and its step stays the peer's.
			tick(holder)
			close(b.release)
			peer.Wait()
			holder.Wait()
			if len(tr.overlaps) > 0 {
				t.Fatalf("a step ran twice at once: %v", tr.overlaps)
			}
			var done int64
			storetest.DB(s).Model(&store.StateEvent{}).Where("deployment_id = ? AND state = ? AND outcome = ?", d.ID, "boot_conf", store.OutcomeDone).Count(&done)
			if done != 1 {
				t.Fatalf("boot_conf ended %d times, want once", done)
			}
			hs, err := s.Heartbeats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hs {
				if h.StoppedAt != nil {
					t.Errorf("%s still marked stopped (%s) after it beat again", h.Owner, h.StopReason)
				}
			}
			if got := load(t, s, d.ID).State; got == process.StateName("boot_conf") {
				t.Fatalf("the peer's step did not end: %s", got)
			}
		})
	}
}

// TestRestartTakesOverAGoneProcessAtOnce: a pitasks of this machine died holding a lease
// (its PID is gone, its heartbeat is still fresh): a new one that starts frees the lease at
// once, instead of waiting for it to run out or for the heartbeat to go stale.
func TestRestartTakesOverAGoneProcessAtOnce(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			c := storetest.Seed(t, s, 2)
			ds := c.Deploy(t, s, 2)
			ctx := context.Background()
			now := time.Now().UTC()
			if machine() == "" {
				t.Skip("no /proc: a process cannot tell another one is gone")
			}
			// A process that exited: its PID is free (reaped), its heartbeat is a second old.
			gone := store.Heartbeat{Owner: "crashed", Machine: machine(), PID: exitedPID(t), TickMS: 2000, LastTick: now.Add(-time.Second)}
			alive := store.Heartbeat{Owner: "elsewhere", Machine: "another-host", PID: 1, TickMS: 2000, LastTick: now.Add(-time.Second)}
			for _, h := range []store.Heartbeat{gone, alive} {
				if err := s.Beat(ctx, &h); err != nil {
					t.Fatal(err)
				}
			}
			for i, owner := range []string{"crashed", "elsewhere"} {
				if err := storetest.DB(s).Model(&store.Deployment{}).Where("id = ?", ds[i].ID).
					Updates(map[string]any{"lease_owner": owner, "lease_until": now.Add(time.Minute)}).Error; err != nil {
					t.Fatal(err)
				}
			}
			e := newEngine(t, s, newFakeSteps(), nil, nil)
			if err := e.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if got := load(t, s, ds[0].ID).LeaseOwner; got != "" {
				t.Fatalf("the gone process's lease is still held by %q", got)
			}
			if got := load(t, s, ds[1].ID).LeaseOwner; got != "elsewhere" {
				t.Fatalf("a live process of another machine lost its lease to %q", got)
			}
			if err := e.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			e.Wait()
			if len(events(t, s, ds[0].ID)) == 0 || len(events(t, s, ds[1].ID)) != 0 {
				t.Fatal("the freed deployment was not worked on, or the other one was")
			}
		})
	}
}

// exitedPID is the PID of a process that ran and was reaped.
func exitedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// gatedBeats is the real store whose heartbeats wait while held (until gate is closed) and
// fail while failing is set.
type gatedBeats struct {
	*store.Store
	held, failing atomic.Bool
	gate          chan struct{}
}

func (g *gatedBeats) Beat(ctx context.Context, h *store.Heartbeat) error {
	if g.held.Load() {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if g.failing.Load() {
		return errDatabaseGone
	}
	return g.Store.Beat(ctx, h)
}

// TestATickDoesNotWaitForItsHeartbeat: a tick hands its heartbeat (a commit) to a goroutine of
// its own: a tick with nothing due does not wait for it; one that claimed work starts it once
// the heartbeat says the tick's time, and not when it cannot be written. A tick whose last
// heartbeat is late writes its own first, and claims nothing when it cannot.
func TestATickDoesNotWaitForItsHeartbeat(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			c := storetest.Seed(t, s, 1)
			d := c.Deploy(t, s, 1)[0]
			g := &gatedBeats{Store: s, gate: make(chan struct{})}
			f := newFakeSteps()
			clock := newClock()
			ctx := context.Background()
			lastTick := func() time.Time {
				t.Helper()
				hs, err := s.Heartbeats(ctx)
				if err != nil || len(hs) != 1 {
					t.Fatalf("heartbeats %v, %v", hs, err)
				}
				return hs[0].LastTick
			}
			says := func(got, want time.Time) bool { return got.Sub(want).Abs() < time.Millisecond } // MariaDB keeps ms
			var polls atomic.Int32
			var early atomic.Value // a poll that ran before its tick's heartbeat was written
			f.post = func(context.Context, *Task) (bool, error) {
				polls.Add(1)
				if got, now := lastTick(), clock.Now(); !says(got, now) {
					early.Store(fmt.Sprintf("the heartbeat says %s during the tick of %s", got, now))
				}
				return false, nil
			}
			// A poll an hour away: the deployment is due only when the clock says so.
			e := newEngine(t, s, f, clock, func(o *Options) {
				o.Store, o.Owner, o.TakeoverAfter, o.PollInterval = g, "ticker", time.Hour, time.Hour
			})
			tick := func(ctx context.Context, want int32) error {
				t.Helper()
				err := e.Tick(ctx)
				e.Wait()
				if got := polls.Load(); got != want {
					t.Fatalf("%d polls, want %d", got, want)
				}
				if v := early.Load(); v != nil {
					t.Fatal(v)
				}
				return err
			}
			check := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			first := clock.Now()
			check(tick(ctx, 1)) // the first tick writes its heartbeat itself
			if got := lastTick(); !says(got, first) {
				t.Fatalf("heartbeat of the first tick says %s, want %s", got, first)
			}

			// Nothing due: the tick returns while its heartbeat is held.
			g.held.Store(true)
			clock.Add(time.Second)
			second := clock.Now()
			// Bounded: a tick that waited for the held heartbeat would fail here.
			tctx, cancel := context.WithTimeout(ctx, time.Minute)
			check(tick(tctx, 1))
			cancel()
			if got := lastTick(); !says(got, first) {
				t.Fatalf("heartbeat written while held: %s", got)
			}

			// Work due: the tick claims it, and starts it only once its heartbeat is written; it
			// gives up when it cannot be, and the next tick gives the lease back and claims again.
			clock.Add(time.Hour)
			tctx, cancel = context.WithTimeout(ctx, 2*time.Second)
			if err := tick(tctx, 1); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("tick whose heartbeat is held = %v, want its deadline", err)
			}
			cancel()
			g.held.Store(false)
			close(g.gate)
			waitUntil(t, "the held heartbeat", func() bool { return says(lastTick(), second) || says(lastTick(), clock.Now()) })
			clock.Add(time.Second)
			check(tick(ctx, 2))

			// No heartbeat written for long: the next tick writes its own before claiming, and
			// claims nothing while it fails.
			clock.Add(time.Hour)
			e.mu.Lock()
			e.lastBeat = time.Now().Add(-e.fenceAfter())
			e.mu.Unlock()
			g.failing.Store(true)
			if err := tick(ctx, 2); !errors.Is(err, errDatabaseGone) {
				t.Fatalf("tick with a late heartbeat that fails = %v, want the heartbeat's error", err)
			}
			if got := load(t, s, d.ID).LeaseOwner; got != "" {
				t.Fatalf("a tick without its heartbeat claimed: lease %q", got)
			}
			g.failing.Store(false)
			check(tick(ctx, 3))
		})
	}
}
