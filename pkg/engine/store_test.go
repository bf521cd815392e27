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

// SaveObserved fails as a release does: a turn's last save gives its lease back.
func (f *flakyStore) SaveObserved(ctx context.Context, owner string, saves []store.Save) error {
	for _, sv := range saves {
		if sv.Release && f.failReleases.Add(-1) >= 0 {
			for i := range saves {
				saves[i].Err = errDatabaseGone
			}
			return errDatabaseGone
		}
	}
	return f.Store.SaveObserved(ctx, owner, saves)
}

var errDatabaseGone = errors.New("database gone")

func (f *flakyStore) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int, exclude []uint, into []store.Deployment) ([]store.Deployment, error) {
	if f.failing.Load() {
		return nil, errDatabaseGone
	}
	return f.Store.ClaimDue(ctx, owner, now, lease, limit, exclude, into)
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
	fs.failReleases.Store(3) // the turn's last save and release, then the next tick's first try
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

// batchFailStore is the real store whose SaveObserved fails every batch of more than one save
// (a deadlock, say) without writing anything.
type batchFailStore struct {
	*store.Store
	failed atomic.Int64
}

func (b *batchFailStore) SaveObserved(ctx context.Context, owner string, saves []store.Save) error {
	if len(saves) > 1 {
		b.failed.Add(1)
		for i := range saves {
			saves[i].Err = errDatabaseGone
		}
		return errDatabaseGone
	}
	return b.Store.SaveObserved(ctx, owner, saves)
}

// TestABatchThatFailsIsSavedOneByOne: the workers' saves go together, and a batch that fails
// as a whole costs no one's turn: each save is written alone, every step runs once.
func TestABatchThatFailsIsSavedOneByOne(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 8)
	ds := c.Deploy(t, s, 8)
	bs := &batchFailStore{Store: s}
	f := newFakeSteps()
	started := make(chan struct{})
	var waiting atomic.Int64
	f.post = func(context.Context, *Task) (bool, error) {
		// The 8 turns end together, so that their saves meet in the queue.
		if waiting.Add(1) == 8 {
			close(started)
		}
		<-started
		return true, nil
	}
	clock := newClock()
	e := newEngine(t, s, f, clock, func(o *Options) { o.Store = bs })
	tickUntil(t, e, clock, time.Second, 2, func() bool {
		for _, d := range ds {
			if load(t, s, d.ID).State != "deployed" {
				return false
			}
		}
		return true
	})
	if bs.failed.Load() == 0 {
		t.Fatal("no batch of saves was written: the saves did not go together")
	}
	for _, d := range ds {
		if got := f.execsOf(d.ID); len(got) != len(nonTerminal(deployProcess)) {
			t.Fatalf("deployment %d ran %d steps, want %d: %v", d.ID, len(got), len(nonTerminal(deployProcess)), got)
		}
		if got := load(t, s, d.ID); got.LeaseOwner != "" {
			t.Fatalf("deployment %d still leased by %q", d.ID, got.LeaseOwner)
		}
	}
}
