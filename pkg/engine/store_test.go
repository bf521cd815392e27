package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// flakyStore is the real store whose ClaimDue fails while failing is set, and whose next
// releases fail while failReleases is above 0: the database gone for a moment, as the engine
// meets it through its Store interface.
type flakyStore struct {
	*store.Store
	failing      atomic.Bool
	failReleases atomic.Int32
}

func (f *flakyStore) ReleaseLease(ctx context.Context, owner string, id uint) error {
	if f.failReleases.Add(-1) >= 0 {
		return errDatabaseGone
	}
	return f.Store.ReleaseLease(ctx, owner, id)
}

var errDatabaseGone = errors.New("database gone")

func (f *flakyStore) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int, exclude []uint) ([]store.Deployment, error) {
	if f.failing.Load() {
		return nil, errDatabaseGone
	}
	return f.Store.ClaimDue(ctx, owner, now, lease, limit, exclude)
}

// TestATickWhoseClaimFailsLeavesNothingHalfDone: a tick that cannot claim says so and runs no
// step; the next tick, the database back, deploys as if nothing happened.
func TestATickWhoseClaimFailsLeavesNothingHalfDone(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	fs := &flakyStore{Store: s}
	fs.failing.Store(true)
	f := newFakeSteps()
	clock := newClock()
	e := newEngine(t, s, f, clock, func(o *Options) { o.Store = fs })
	if err := e.Tick(context.Background()); !errors.Is(err, errDatabaseGone) {
		t.Fatalf("tick = %v, want the claim's error", err)
	}
	e.Wait()
	if got := f.execsOf(d.ID); len(got) != 0 {
		t.Fatalf("steps run without a claim: %v", got)
	}
	if got := load(t, s, d.ID); got.LeaseOwner != "" || got.State != d.State || !got.Queued || len(events(t, s, d.ID)) != 0 {
		t.Fatalf("deployment touched by a failed tick: state %s (was %s), queued %v, lease %q", got.State, d.State, got.Queued, got.LeaseOwner)
	}
	fs.failing.Store(false)
	clock.Add(time.Second)
	tickUntil(t, e, clock, time.Second, 3, func() bool { return load(t, s, d.ID).State == "deployed" })
}

// TestALeaseWhoseReleaseFailedIsReleasedAtTheNextTick: a turn whose lease could not be given
// back (the database down as it ended) does not leave the deployment waiting for its own
// lease to run out: the next tick gives it back, and the deployment goes on.
func TestALeaseWhoseReleaseFailedIsReleasedAtTheNextTick(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	fs := &flakyStore{Store: s}
	fs.failReleases.Store(2) // the turn's release, then the next tick's first try
	f := newFakeSteps()
	var waited atomic.Bool
	f.post = func(_ context.Context, t *Task) (bool, error) {
		// turn_on is not done at the first look: the turn ends, its lease to be given back.
		return t.D.State != process.TurnOn || waited.Swap(true), nil
	}
	clock := newClock()
	e := newEngine(t, s, f, clock, func(o *Options) { o.Store = fs })
	if err := e.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.Wait()
	if got := load(t, s, d.ID); got.State != process.TurnOn || got.LeaseOwner != e.Owner() {
		t.Fatalf("after a turn whose release failed: %s, lease %q", got.State, got.LeaseOwner)
	}
	clock.Add(time.Second)
	if err := e.Tick(context.Background()); !errors.Is(err, errDatabaseGone) {
		t.Fatalf("tick = %v, want the release's error", err)
	}
	// The lease runs for a minute: a second is enough now.
	tickUntil(t, e, clock, time.Second, 3, func() bool { return load(t, s, d.ID).State == process.Deployed })
}
