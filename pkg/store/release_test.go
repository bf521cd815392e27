package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

// deployAll reserves nodes for user from now for two hours and deploys them all.
func deployAll(t *testing.T, s *store.Store, c *webCluster, user uint, nodes ...uint) (*store.Reservation, []store.Deployment) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	r, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: user, NodeIDs: nodes, StartsAt: now, EndsAt: now.Add(2 * time.Hour)}, now)
	check(t, err)
	ds, err := s.DeployReservation(ctx, r.ID, store.Deployment{EnvironmentID: c.env.ID}, now)
	check(t, err)
	return r, ds
}

// TestReleaseNode: a released node leaves the reservation at once (reservable later by others,
// and by anyone for now once its deployment is destroyed), its deployment is destroyed and can
// be nothing else, and the rest of the reservation stays.
func TestReleaseNode(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 3, 0)
		n1, n2 := c.nodes[0].ID, c.nodes[1].ID
		r, ds := deployAll(t, s, c, c.alice.ID, n1, n2)
		now := time.Now().UTC()

		if err := s.ReleaseNode(ctx, r.ID, c.nodes[2].ID, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("releasing a node the reservation does not hold: %v, want not found", err)
		}
		check(t, s.ReleaseNode(ctx, r.ID, n1, now))
		got, err := s.Reservation(ctx, r.ID)
		check(t, err)
		if len(got.Nodes) != 1 || got.Nodes[0].ID != n2 || !got.EndsAt.Equal(r.EndsAt) {
			t.Fatalf("after the release the reservation holds %v until %v", got.Nodes, got.EndsAt)
		}
		var d1 *store.Deployment
		for i := range ds {
			d, err := s.Deployment(ctx, ds[i].ID)
			check(t, err)
			switch d.NodeID {
			case n1:
				d1 = d
				if d.Process != process.Destroy || !d.Released {
					t.Fatalf("released node's deployment: %s/%s released=%v", d.Process, d.State, d.Released)
				}
			case n2:
				if d.Process != process.Deploy || d.Released {
					t.Fatalf("the other node's deployment changed: %s/%s released=%v", d.Process, d.State, d.Released)
				}
			}
		}
		if err := s.RequestProcess(ctx, d1.ID, process.Deploy); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("deploying a released node again: %v, want a conflict", err)
		}
		// Held by nobody: bob reserves it for later at once; for now only once it is destroyed.
		_, err = s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{n1}, StartsAt: now.Add(time.Hour), EndsAt: now.Add(3 * time.Hour)}, now)
		check(t, err)
		_, err = s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{n1}, StartsAt: now, EndsAt: now.Add(30 * time.Minute)}, now)
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("reserving the node while it is destroyed: %v, want a conflict", err)
		}
		check(t, s.ForceState(ctx, d1.ID, process.Destroy, process.Destroyed, "pitasks destroyed it"))
		_, err = s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{n1}, StartsAt: now, EndsAt: now.Add(30 * time.Minute)}, now)
		check(t, err)
		// Destroyed, its deployment leaves alice's current list; the other node's stays.
		cur, err := s.Deployments(ctx, store.DeploymentFilter{UserID: c.alice.ID, Current: now})
		check(t, err)
		if len(cur) != 1 || cur[0].NodeID != n2 {
			t.Fatalf("alice's current deployments after the release: %d", len(cur))
		}
		// The last node is not released: the reservation is ended instead.
		if err := s.ReleaseNode(ctx, r.ID, n2, now); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "last node") {
			t.Fatalf("releasing the last node: %v", err)
		}
	})
}

// TestAdminEndReservation: an admin's end needs a reason; a running reservation's nodes are
// destroyed, a future one's freed at once; the holder's pages find the reason; with mail, one
// e-mail is queued for the holder.
func TestAdminEndReservation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 3, 0)
		admin := store.User{Email: "root@example.com", PasswordHash: "x", Admin: true, Authorized: true}
		check(t, s.CreateUser(ctx, &admin))
		r, ds := deployAll(t, s, c, c.alice.ID, c.nodes[0].ID, c.nodes[1].ID)
		now := time.Now().UTC()
		future, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.alice.ID, NodeIDs: []uint{c.nodes[2].ID},
			StartsAt: now.Add(5 * time.Hour), EndsAt: now.Add(6 * time.Hour)}, now)
		check(t, err)

		if err := s.AdminEndReservation(ctx, r.ID, admin.ID, "  ", now, true); !errors.Is(err, store.ErrNoReason) {
			t.Fatalf("no reason: %v", err)
		}
		check(t, s.AdminEndReservation(ctx, r.ID, admin.ID, "the lab closes for maintenance", now, true))
		if err := s.AdminEndReservation(ctx, r.ID, admin.ID, "again", now.Add(time.Second), true); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("ending an ended reservation: %v", err)
		}
		for _, d := range ds {
			got, err := s.Deployment(ctx, d.ID)
			check(t, err)
			if got.Process != process.Destroy {
				t.Fatalf("deployment %d of the ended reservation: %s", d.ID, got.Process)
			}
		}
		check(t, s.AdminEndReservation(ctx, future.ID, admin.ID, "reserved for a course", now, false))
		// The future reservation's node is free at once.
		_, err = s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{c.nodes[2].ID},
			StartsAt: now.Add(5 * time.Hour), EndsAt: now.Add(6 * time.Hour)}, now)
		check(t, err)

		ended, err := s.EndedByAdmin(ctx, c.alice.ID, now.Add(-time.Hour))
		check(t, err)
		if len(ended) != 2 || ended[0].EndReason == "" || ended[0].EndedBy != admin.ID {
			t.Fatalf("ended by an admin: %+v", ended)
		}
		ns, err := s.Notifications(ctx, c.alice.ID)
		check(t, err)
		if len(ns) != 1 || ns[0].To != c.alice.Email || !strings.Contains(ns[0].Body, "the lab closes for maintenance") ||
			!strings.Contains(ns[0].Body, "node-1, node-2") {
			t.Fatalf("queued for alice: %+v", ns)
		}
	})
}

// TestQueueNotifications: only users who opted in, only events since they did, each event
// once; a new run of the same deployment is a new event.
func TestQueueNotifications(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 3, 0)
		now := time.Now().UTC()
		_, ds := deployAll(t, s, c, c.alice.ID, c.nodes[0].ID)
		_, bobDs := deployAll(t, s, c, c.bob.ID, c.nodes[1].ID)
		check(t, s.SetNotify(ctx, c.alice.ID, true, now.Add(-time.Minute)))

		check(t, s.ForceState(ctx, ds[0].ID, process.Deploy, process.Deployed, "test"))
		check(t, s.ForceState(ctx, bobDs[0].ID, process.Deploy, process.Deployed, "test"))
		for range 2 {
			_, err := s.QueueNotifications(ctx, time.Now())
			check(t, err)
		}
		ns, err := s.Notifications(ctx, 0)
		check(t, err)
		if len(ns) != 1 || ns[0].UserID != c.alice.ID || !strings.Contains(ns[0].Subject, "deployed") {
			t.Fatalf("after deployed: %+v", ns)
		}
		check(t, s.ForceState(ctx, ds[0].ID, process.Deploy, process.Failed, "test"))
		// The reservation ends within the hour (alice's own extension later is a new event).
		_, err = s.QueueNotifications(ctx, time.Now().Add(90*time.Minute))
		check(t, err)
		ns, err = s.Notifications(ctx, 0)
		check(t, err)
		var subjects []string
		for _, n := range ns {
			subjects = append(subjects, n.Subject)
		}
		if len(ns) != 3 || !strings.Contains(subjects[1]+subjects[2], "failed") || !strings.Contains(subjects[1]+subjects[2], "ends within the hour") {
			t.Fatalf("queued: %q", subjects)
		}
		check(t, s.SetNotify(ctx, c.alice.ID, false, now))
		check(t, s.ForceState(ctx, ds[0].ID, process.Deploy, process.Deployed, "test"))
		n, err := s.QueueNotifications(ctx, time.Now())
		check(t, err)
		if n != 0 {
			t.Fatalf("%d notifications queued after opting out", n)
		}

		// Claims: one owner wins a message; a failure is retried from its time; sent is final.
		later := time.Now().Add(2 * time.Hour) // the reminder was queued at +90 min
		a, err := s.ClaimNotifications(ctx, "a", later, time.Minute, 10)
		check(t, err)
		b, err := s.ClaimNotifications(ctx, "b", later, time.Minute, 10)
		check(t, err)
		if len(a) != 3 || len(b) != 0 {
			t.Fatalf("claimed %d and %d of 3", len(a), len(b))
		}
		check(t, s.NotificationSent(ctx, a[0].ID, "a", later))
		check(t, s.NotificationFailed(ctx, a[1].ID, "a", errors.New("421 try later"), later.Add(10*time.Minute)))
		check(t, s.NotificationFailed(ctx, a[2].ID, "a", errors.New("421 try later"), later))
		b, err = s.ClaimNotifications(ctx, "b", later.Add(time.Second), time.Minute, 10)
		check(t, err)
		if len(b) != 1 || b[0].ID != a[2].ID || b[0].Attempts != 1 {
			t.Fatalf("claimed after one sent and two failed: %+v", b)
		}
	})
}
