package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestHeldReservations: of an ended, a running (2 nodes), an empty running, a later and an
// ended-early reservation, only the running ones count, with their nodes.
func TestHeldReservations(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			ctx := context.Background()
			c := storetest.Seed(t, s, 4) // its reservation runs now, without nodes
			now := time.Now().UTC()
			reserve := func(nodes []store.Node, from, to time.Time) *store.Reservation {
				ids := make([]uint, len(nodes))
				for i, n := range nodes {
					ids[i] = n.ID
				}
				r, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.User.ID, NodeIDs: ids, StartsAt: from, EndsAt: to}, from)
				check(t, err)
				return r
			}
			reserve(c.Nodes[:2], now.Add(-time.Hour), now.Add(time.Hour))
			reserve(c.Nodes[2:3], now.Add(2*time.Hour), now.Add(3*time.Hour))
			early := reserve(c.Nodes[3:], now.Add(-time.Hour), now.Add(time.Hour))
			check(t, s.EndReservation(ctx, early.ID, now.Add(-time.Minute)))
			reserve(c.Nodes[3:], now.Add(-3*time.Hour), now.Add(-2*time.Hour))

			got, err := s.HeldReservations(ctx, now)
			check(t, err)
			if want := (store.ReservationCounts{Reservations: 2, Nodes: 2}); got != want {
				t.Errorf("HeldReservations = %+v, want %+v", got, want)
			}
			if got, err := s.HeldReservations(ctx, now.Add(150*time.Minute)); err != nil || got != (store.ReservationCounts{Reservations: 1, Nodes: 1}) {
				t.Errorf("HeldReservations in 2h30 = %+v, %v", got, err)
			}
		})
	}
}
