package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// seen records the deployment each poll was given, by id, tick after tick.
type seen struct {
	mu sync.Mutex
	by map[uint]*store.Deployment
}

func (s *seen) note(t *Task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.by[t.D.ID] = t.D
}

func (s *seen) take() map[uint]*store.Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	by := s.by
	s.by = map[uint]*store.Deployment{}
	return by
}

// TestClaimsReuseTheArrayOfAClaimDone: once every worker of a claim is done, the next claim
// fills the same deployments again (a busy tick allocates no new ones), each with its own row.
func TestClaimsReuseTheArrayOfAClaimDone(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 3)
	c.Deploy(t, s, 3)
	f := newFakeSteps()
	polls := &seen{by: map[uint]*store.Deployment{}}
	f.post = func(_ context.Context, t *Task) (bool, error) { polls.note(t); return false, nil }
	clock := newClock()
	e := newEngine(t, s, f, clock, nil)
	tick := func() map[uint]*store.Deployment {
		if err := e.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.Wait()
		clock.Add(time.Second)
		return polls.take()
	}
	first, second := tick(), tick()
	if len(first) != 3 || len(second) != 3 {
		t.Fatalf("polled %d then %d deployments, want 3 each tick", len(first), len(second))
	}
	reused := map[*store.Deployment]bool{}
	for _, d := range first {
		reused[d] = true
	}
	for id, d := range second {
		if !reused[d] {
			t.Errorf("deployment %d: a new struct, want one of the last claim's", id)
		}
		if d.ID != id || d.Node.ID != d.NodeID || d.Node.Name != load(t, s, id).Node.Name || d.LeaseOwner != "" {
			t.Errorf("deployment %d read as %d, node %d/%d %q, lease %q", id, d.ID, d.Node.ID, d.NodeID, d.Node.Name, d.LeaseOwner)
		}
	}
}

// TestAbandonedStepsClaimIsNotReused: a step abandoned past its deadline may still hold its
// deployment, so the array of its claim is never filled again.
func TestAbandonedStepsClaimIsNotReused(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 3)
	ds := c.Deploy(t, s, 3)
	hung := ds[0].ID
	f := newFakeSteps()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	polls := &seen{by: map[uint]*store.Deployment{}}
	f.post = func(_ context.Context, t *Task) (bool, error) {
		polls.note(t)
		if t.D.ID == hung {
			<-release // ignores its context, holding t.D
		}
		return false, nil
	}
	clock := newClock()
	e := newEngine(t, s, f, clock, func(o *Options) { o.StepDeadline = 100 * time.Millisecond })
	tick := func() map[uint]*store.Deployment {
		if err := e.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.Wait()
		clock.Add(time.Second)
		return polls.take()
	}
	first := tick()
	if len(first) != 3 || e.abandons.Load() != 1 {
		t.Fatalf("polled %d deployments, %d steps abandoned; want 3 and 1", len(first), e.abandons.Load())
	}
	held := map[*store.Deployment]bool{}
	for _, d := range first {
		held[d] = true
	}
	second := tick()
	if len(second) < 2 {
		t.Fatalf("polled %d deployments after the abandon, want the 2 others at least", len(second))
	}
	for id, d := range second {
		if held[d] {
			t.Errorf("deployment %d given the struct of the claim of an abandoned step", id)
		}
	}
}
