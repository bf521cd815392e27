package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// webCluster writes a switch, nodes of two models, an environment and two users.
type webCluster struct {
	sw    store.Switch
	nodes []store.Node
	env   store.Environment
	alice store.User
	bob   store.User
}

func seedWeb(t testing.TB, s *store.Store, nPi4, nPi3 int) *webCluster {
	t.Helper()
	ctx := context.Background()
	c := &webCluster{
		sw:    store.Switch{Name: "sw1", IP: "127.0.0.1", Community: "private", PortCount: nPi4 + nPi3 + 1, OID: ".1.3.6.1.2.1.105.1.1.1.3.1"},
		env:   store.Environment{Name: "raspios", Type: store.EnvDefault, ImageName: "raspios.img.gz", SSHUser: "pi"},
		alice: store.User{Email: "Alice@Example.com", PasswordHash: "x", FirstName: "Alice", LastName: "A", Authorized: true, EmailConfirmed: true},
		bob:   store.User{Email: "bob@example.com", PasswordHash: "x", FirstName: "Bob", Authorized: true, EmailConfirmed: true},
	}
	check(t, s.CreateSwitch(ctx, &c.sw))
	check(t, s.CreateEnvironment(ctx, &c.env))
	check(t, s.CreateUser(ctx, &c.alice))
	check(t, s.CreateUser(ctx, &c.bob))
	for i := 0; i < nPi4+nPi3; i++ {
		model := "RPI4B"
		if i >= nPi4 {
			model = "RPI3Bplus"
		}
		n := store.Node{Name: fmt.Sprintf("node-%d", i+1), SwitchID: c.sw.ID, Port: i + 1, Model: model,
			IP: fmt.Sprintf("10.0.0.%d", i+10), Serial: fmt.Sprintf("%08x", i+1)}
		check(t, s.CreateNode(ctx, &n))
		c.nodes = append(c.nodes, n)
	}
	return c
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func forEachDialect(t *testing.T, f func(t *testing.T, s *store.Store)) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) { f(t, storetest.Open(t, d)) })
	}
}

func TestReservationOverlap(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 3, 2)
		now := time.Now().UTC()
		n1, n2 := c.nodes[0].ID, c.nodes[1].ID

		r, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.alice.ID, NodeIDs: []uint{n1, n2},
			StartsAt: now, EndsAt: now.Add(2 * time.Hour)}, now)
		check(t, err)
		if len(r.Nodes) != 2 {
			t.Fatalf("reserved %d nodes", len(r.Nodes))
		}
		// Overlapping by one node, at any time inside the first one: refused, and names the node.
		for _, tc := range []struct{ start, end time.Duration }{{0, time.Hour}, {time.Hour, 3 * time.Hour}, {-time.Hour, 5 * time.Hour}} {
			_, err = s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{n2, c.nodes[2].ID},
				StartsAt: now.Add(tc.start), EndsAt: now.Add(tc.end)}, now)
			var ce *store.ConflictError
			if !errors.As(err, &ce) || len(ce.Nodes) != 1 || ce.Nodes[0] != "node-2" {
				t.Fatalf("overlap %v: got %v", tc, err)
			}
		}
		// Right after it ends: allowed.
		_, err = s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{n2},
			StartsAt: now.Add(2 * time.Hour), EndsAt: now.Add(3 * time.Hour)}, now)
		check(t, err)
		// Extending into bob's reservation is refused; extension elsewhere works.
		if err := s.ExtendReservation(ctx, r.ID, now.Add(150*time.Minute), now); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("extend over bob: %v", err)
		}
		// N nodes of a model: the two RPI3Bplus.
		r3, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, Model: "RPI3Bplus", Count: 2,
			StartsAt: now, EndsAt: now.Add(time.Hour)}, now)
		check(t, err)
		if len(r3.Nodes) != 2 || r3.Nodes[0].Model != "RPI3Bplus" {
			t.Fatalf("model reservation: %+v", r3.Nodes)
		}
		if _, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, Model: "RPI3Bplus", Count: 1,
			StartsAt: now, EndsAt: now.Add(time.Hour)}, now); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("no RPI3Bplus left: %v", err)
		}
		check(t, s.ExtendReservation(ctx, r3.ID, now.Add(5*time.Hour), now))

		// Resources view: node-1 held by Alice (a name, never an e-mail) until the end.
		sts, err := s.NodeStatuses(ctx, now.Add(time.Minute))
		check(t, err)
		if !sts[0].Held || sts[0].Holder != "Alice A" || !sts[0].Until.Equal(r.EndsAt) || sts[2].Held || !sts[2].Free() {
			t.Fatalf("statuses: %+v", sts[:3])
		}

		// Deploy, then the node is not free for an immediate reservation until destroyed.
		ds, err := s.DeployReservation(ctx, r.ID, store.Deployment{Name: "exp", EnvironmentID: c.env.ID, SystemPassword: "pw"}, now.Add(time.Second))
		check(t, err)
		if len(ds) != 2 || ds[0].State != "boot_conf" || ds[0].UserID != c.alice.ID {
			t.Fatalf("deployments: %+v", ds)
		}
		if _, err := s.DeployReservation(ctx, r.ID, store.Deployment{EnvironmentID: c.env.ID}, now); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second deploy: %v", err)
		}
		check(t, s.EndReservation(ctx, r.ID, now.Add(time.Minute)))
		d, err := s.Deployment(ctx, ds[0].ID)
		check(t, err)
		if d.Process != process.Destroy {
			t.Fatalf("ending the reservation did not destroy: %s/%s", d.Process, d.State)
		}
		later := now.Add(2 * time.Minute)
		if _, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{n1},
			StartsAt: later, EndsAt: later.Add(time.Hour)}, later); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("node not destroyed yet but reserved: %v", err)
		}
		check(t, storetest.DB(s).Model(&store.Deployment{}).Where("reservation_id = ?", r.ID).Update("state", "destroyed").Error)
		_, err = s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{n1},
			StartsAt: later, EndsAt: later.Add(time.Hour)}, later)
		check(t, err)
	})
}

// TestReservationRace: many users ask for the same nodes at once; each node ends up in at most
// one reservation for any time.
func TestReservationRace(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 6, 0)
		users := []store.User{c.alice, c.bob}
		for i := 0; i < 10; i++ {
			u := store.User{Email: fmt.Sprintf("u%d@example.com", i), PasswordHash: "x"}
			check(t, s.CreateUser(ctx, &u))
			users = append(users, u)
		}
		now := time.Now().UTC()
		var wg sync.WaitGroup
		var mu sync.Mutex
		won, conflicts := 0, 0
		for i, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := store.ReservationRequest{UserID: u.ID, StartsAt: now.Add(time.Duration(i) * time.Minute), EndsAt: now.Add(2 * time.Hour)}
				if i%2 == 0 {
					req.NodeIDs = []uint{c.nodes[i%3].ID, c.nodes[(i+1)%3].ID}
				} else {
					req.Model, req.Count = "RPI4B", 2
				}
				_, err := s.CreateReservation(ctx, req, now)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case errors.Is(err, store.ErrConflict):
					conflicts++
				default:
					t.Errorf("user %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if won == 0 || won > 3 || won+conflicts != len(users) {
			t.Fatalf("won %d, conflicts %d", won, conflicts)
		}
		// No node in two reservations that overlap.
		rs, err := s.UserReservations(ctx, 0, now.Add(-time.Hour))
		check(t, err)
		holders := map[uint]int{}
		for _, r := range rs {
			for _, n := range r.Nodes {
				holders[n.ID]++
			}
		}
		for id, k := range holders {
			if k > 1 {
				t.Errorf("node %d is in %d overlapping reservations", id, k)
			}
		}
		if len(holders) != 2*won {
			t.Errorf("%d nodes held by %d reservations", len(holders), won)
		}
	})
}
