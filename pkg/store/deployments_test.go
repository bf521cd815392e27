package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestSaveObservedBatch: one call saves many deployments, each writing only what the engine
// changed, under its own lease condition; a poll again moves nothing one sees (updated_at).
func TestSaveObservedBatch(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := storetest.Seed(t, s, 4)
		c.Deploy(t, s, 4)
		now := time.Now().UTC().Add(time.Second)
		ds, err := s.ClaimDue(ctx, "a", now, time.Minute, 10, nil, nil)
		check(t, err)
		if len(ds) != 4 {
			t.Fatalf("claimed %d, want 4", len(ds))
		}
		for _, d := range ds {
			if d.Node.ID != d.NodeID || d.Node.Name == "" || d.Node.Switch.Name != "sw1" || d.Environment.Name != "tiny" ||
				d.User.Email != "user@example.com" || d.LeaseOwner != "a" {
				t.Fatalf("claimed without what the steps need: node %d %q, switch %q, environment %q, user %q, lease %q",
					d.Node.ID, d.Node.Name, d.Node.Switch.Name, d.Environment.Name, d.User.Email, d.LeaseOwner)
			}
		}
		before := make([]*store.Deployment, len(ds))
		for i := range ds {
			before[i], err = s.Deployment(ctx, ds[i].ID)
			check(t, err)
		}
		// Written by others since the claim: a new request on ds[1], copy progress on ds[0].
		check(t, s.RequestProcess(ctx, ds[1].ID, process.Destroy))
		check(t, storetest.DB(s).Model(&store.Deployment{}).Where("id = ?", ds[0].ID).UpdateColumn("bytes_done", 42).Error)

		ds[0].NextCheckAt = now.Add(time.Second) // polled again
		ds[1].LastError = "too late"
		ds[2].Queued, ds[2].LastError = false, "visible"
		ev := &store.StateEvent{DeploymentID: ds[2].ID, NodeID: ds[2].NodeID, Process: ds[2].Process,
			State: ds[2].State, Outcome: store.OutcomeRetry, StartedAt: now, EndedAt: now}
		saves := []store.Save{{D: &ds[0], Release: true}, {D: &ds[1], Release: true},
			{D: &ds[2], Event: ev}, {D: &ds[3]}}
		check(t, s.SaveObserved(ctx, "a", saves))
		for i, want := range []error{nil, store.ErrLeaseLost, nil, nil} {
			if !errors.Is(saves[i].Err, want) {
				t.Fatalf("save %d: %v, want %v", i, saves[i].Err, want)
			}
		}
		after := make([]*store.Deployment, len(ds))
		for i := range ds {
			after[i], err = s.Deployment(ctx, ds[i].ID)
			check(t, err)
		}
		if a := after[0]; a.LeaseOwner != "" || ds[0].LeaseOwner != "" || a.NextCheckAt.Sub(ds[0].NextCheckAt).Abs() >= time.Millisecond ||
			a.BytesDone != 42 || !a.UpdatedAt.Equal(before[0].UpdatedAt) {
			t.Fatalf("polled again: lease %q (in memory %q), next check %s (want %s), bytes %d (want 42: not written), updated %s (want %s)",
				a.LeaseOwner, ds[0].LeaseOwner, a.NextCheckAt, ds[0].NextCheckAt, a.BytesDone, a.UpdatedAt, before[0].UpdatedAt)
		}
		if a := after[1]; a.LastError != "" || a.Process != process.Destroy || a.LeaseOwner != "a" {
			t.Fatalf("a save after a new request was written: %+v", a)
		}
		if a := after[2]; a.LastError != "visible" || a.Queued || a.LeaseOwner != "a" || !a.UpdatedAt.After(before[2].UpdatedAt) || ev.ID == 0 {
			t.Fatalf("a state's outcome: error %q, queued %v, lease %q, updated %s (before %s), event %d",
				a.LastError, a.Queued, a.LeaseOwner, a.UpdatedAt, before[2].UpdatedAt, ev.ID)
		}
		if a := after[3]; !a.UpdatedAt.Equal(before[3].UpdatedAt) {
			t.Fatalf("nothing changed, yet the row was written: updated %s, was %s", a.UpdatedAt, before[3].UpdatedAt)
		}

		// Once written, a value is not written again; a lease taken over fails the save.
		check(t, storetest.DB(s).Model(&store.Deployment{}).Where("id = ?", ds[2].ID).UpdateColumn("last_error", "by an admin").Error)
		saves = []store.Save{{D: &ds[2], Release: true}}
		check(t, s.SaveObserved(ctx, "a", saves))
		if a, _ := s.Deployment(ctx, ds[2].ID); saves[0].Err != nil || a.LastError != "by an admin" || a.LeaseOwner != "" {
			t.Fatalf("release only: %v, error %q, lease %q", saves[0].Err, a.LastError, a.LeaseOwner)
		}
		check(t, storetest.DB(s).Model(&store.Deployment{}).Where("id = ?", ds[3].ID).UpdateColumn("lease_owner", "b").Error)
		ds[3].Failures = 3
		saves = []store.Save{{D: &ds[3], Release: true}}
		check(t, s.SaveObserved(ctx, "a", saves))
		if a, _ := s.Deployment(ctx, ds[3].ID); !errors.Is(saves[0].Err, store.ErrLeaseLost) || a.Failures != 0 || a.LeaseOwner != "b" {
			t.Fatalf("lease taken over: %v, failures %d, lease %q", saves[0].Err, a.Failures, a.LeaseOwner)
		}
	})
}

// TestLeasesLeaveUpdatedAtAlone: claiming, renewing, releasing and taking over leases is
// nothing pifrontend shows: updated_at, and with it the change stamp, stay put.
func TestLeasesLeaveUpdatedAtAlone(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := storetest.Seed(t, s, 3)
		c.Deploy(t, s, 3)
		past := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
		check(t, storetest.DB(s).Model(&store.Deployment{}).Where("1 = 1").UpdateColumn("updated_at", past).Error)
		stamp, err := s.ChangeStamp(ctx)
		check(t, err)
		unchanged := func(what string) {
			t.Helper()
			var moved int64
			check(t, storetest.DB(s).Model(&store.Deployment{}).Where("updated_at <> ?", past).Count(&moved).Error)
			if got, err := s.ChangeStamp(ctx); err != nil || moved > 0 || got != stamp {
				t.Fatalf("%s: %d rows' updated_at moved; change stamp %q, was %q (%v)", what, moved, got, stamp, err)
			}
		}
		now := time.Now().UTC().Add(time.Second)
		ds, err := s.ClaimDue(ctx, "a", now, time.Minute, 10, nil, nil)
		check(t, err)
		if len(ds) != 3 {
			t.Fatalf("claimed %d, want 3", len(ds))
		}
		unchanged("claim")
		check(t, s.RenewLeases(ctx, "a", []uint{ds[0].ID, ds[1].ID, ds[2].ID}, now.Add(2*time.Minute)))
		unchanged("renewal")
		check(t, s.ReleaseLease(ctx, "a", ds[0].ID))
		unchanged("release")
		check(t, s.Beat(ctx, &store.Heartbeat{Owner: "a", TickMS: 1000, LastTick: now.Add(-time.Hour)}))
		taken, err := s.TakeOver(ctx, "b", now, now.Add(-time.Minute), nil, false)
		check(t, err)
		if taken.Deployments != 2 {
			t.Fatalf("took %d leases over, want 2", taken.Deployments)
		}
		unchanged("takeover")
		_, err = s.ClaimDue(ctx, "b", now, time.Minute, 10, nil, nil)
		check(t, err)
		check(t, s.ReleaseAll(ctx, "b"))
		unchanged("release of all")
	})
}
