package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
)

func quotaErr(t *testing.T, err error, limit string) *store.QuotaError {
	t.Helper()
	var qe *store.QuotaError
	if !errors.As(err, &qe) || qe.Limit != limit {
		t.Fatalf("want the %s quota refused, got %v", limit, err)
	}
	return qe
}

// TestQuotas: the most nodes at once and node-hours in any 7 days, for reservations and their
// extensions; a refusal says which limit and a time from which the same request fits (and it
// does); admins are exempt.
func TestQuotas(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 6, 0)
		now := time.Now().UTC().Truncate(time.Second)
		n := func(i ...int) []uint {
			var ids []uint
			for _, k := range i {
				ids = append(ids, c.nodes[k].ID)
			}
			return ids
		}
		reserve := func(u store.User, nodes []uint, start, d time.Duration) (*store.Reservation, error) {
			return s.CreateReservation(ctx, store.ReservationRequest{UserID: u.ID, NodeIDs: nodes,
				StartsAt: now.Add(start), EndsAt: now.Add(start + d)}, now)
		}
		check(t, s.SetQuota(ctx, store.Quota{Nodes: 3, NodeHours: 20}))
		q, err := s.ReadQuota(ctx)
		check(t, err)
		if q != (store.Quota{Nodes: 3, NodeHours: 20}) {
			t.Fatalf("quota read back %+v", q)
		}

		_, err = reserve(c.bob, n(0, 1), 0, 2*time.Hour) // 2 nodes, 4 node-hours
		check(t, err)
		_, err = reserve(c.bob, n(2, 3), time.Hour, 2*time.Hour) // 4 at once from +1h
		qe := quotaErr(t, err, store.QuotaLimitNodes)
		if qe.Max != 3 || !qe.FitsAt.Equal(now.Add(2*time.Hour)) {
			t.Fatalf("nodes refusal: %+v (want it to fit when the first reservation ends, %s)", qe, now.Add(2*time.Hour))
		}
		// By model too, and it fits where it said.
		_, err = s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, Model: "RPI4B", Count: 2,
			StartsAt: now.Add(time.Hour), EndsAt: now.Add(3 * time.Hour)}, now)
		quotaErr(t, err, store.QuotaLimitNodes)
		_, err = reserve(c.bob, n(2), time.Hour, 2*time.Hour) // 3 at once: allowed; 6 node-hours
		check(t, err)
		big, err := reserve(c.bob, n(3, 4), 24*time.Hour, 7*time.Hour) // 20 node-hours in all
		check(t, err)
		_, err = reserve(c.bob, n(5), 48*time.Hour, time.Hour) // 21
		qe = quotaErr(t, err, store.QuotaLimitNodeHours)
		if qe.Max != 20 || !qe.FitsAt.After(now.Add(48*time.Hour)) {
			t.Fatalf("node-hours refusal: %+v", qe)
		}
		_, err = s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: n(5), StartsAt: qe.FitsAt, EndsAt: qe.FitsAt.Add(time.Hour)}, now)
		check(t, err)
		// An extension counts too.
		err = s.ExtendReservation(ctx, big.ID, big.EndsAt.Add(time.Hour), now)
		quotaErr(t, err, store.QuotaLimitNodeHours)
		// A request larger than the quota never fits.
		_, err = reserve(c.bob, n(0, 1, 2, 3), 30*24*time.Hour, time.Hour)
		if qe = quotaErr(t, err, store.QuotaLimitNodes); !qe.FitsAt.IsZero() {
			t.Fatalf("a request over the quota alone fits at %s", qe.FitsAt)
		}
		_, err = reserve(c.bob, n(0), 30*24*time.Hour, 21*time.Hour)
		if qe = quotaErr(t, err, store.QuotaLimitNodeHours); !qe.FitsAt.IsZero() {
			t.Fatalf("21 node-hours alone fit at %s", qe.FitsAt)
		}

		use, err := s.UserQuotaUse(ctx, &c.bob, now.Add(30*time.Minute))
		check(t, err)
		if use.NodesNow != 2 || use.Exempt || use.Quota.Nodes != 3 || fmt.Sprintf("%.1f", use.NodeHoursPast) != "1.0" ||
			fmt.Sprintf("%.1f", use.NodeHoursAhead) != "20.0" {
			t.Fatalf("use: %+v", use)
		}

		// Admins are exempt; no quota (0) is no limit.
		check(t, s.SetUserAdmin(ctx, c.alice.ID, true))
		_, err = reserve(c.alice, n(0, 1, 2, 3, 4, 5), 60*24*time.Hour, 24*time.Hour)
		check(t, err)
		check(t, s.SetQuota(ctx, store.Quota{}))
		_, err = reserve(c.bob, n(0, 1, 2, 3, 4), 90*24*time.Hour, 24*time.Hour)
		check(t, err)
		if err := s.SetQuota(ctx, store.Quota{Nodes: -1}); err == nil {
			t.Fatal("a negative quota was saved")
		}
	})
}

// TestQuotaRace: one user's requests racing for different nodes never exceed the quotas.
func TestQuotaRace(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 12, 0)
		check(t, s.SetQuota(ctx, store.Quota{Nodes: 3, NodeHours: 10}))
		now := time.Now().UTC()
		race := func(start time.Duration, hours int, want int) {
			t.Helper()
			var wg sync.WaitGroup
			var mu sync.Mutex
			won := 0
			for i := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					node := c.nodes[i+int(start/time.Hour)%2*6].ID
					_, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{node},
						StartsAt: now.Add(start), EndsAt: now.Add(start + time.Duration(hours)*time.Hour)}, now)
					var qe *store.QuotaError
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						won++
					case !errors.As(err, &qe):
						t.Errorf("request %d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			if won != want {
				t.Fatalf("%d requests won, the quota allows %d", won, want)
			}
		}
		race(0, 1, 3)                      // 3 nodes at once (3 node-hours)
		race(24*time.Hour+time.Hour, 3, 2) // 3 node-hours each: 2 more fit in 10
	})
}
