package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestPublishedNodes: only deployed nodes with a public port and an address are published,
// with their environment's web flag; a node on its way (deploying, destroying), held, or whose
// reservation has ended is not.
func TestPublishedNodes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := storetest.Seed(t, s, 4)
		for i := range c.Nodes {
			n, err := s.Node(ctx, c.Nodes[i].ID)
			check(t, err)
			n.IP = "10.0.0." + string(rune('1'+i))
			if i != 3 { // node-4 has no public port
				n.PublicPort = 22001 + i
			}
			check(t, s.UpdateNode(ctx, n))
		}
		web := c.Environment
		web.ID, web.Name, web.Web = 0, "web", true
		check(t, s.CreateEnvironment(ctx, &web))
		ds := make([]store.Deployment, 4)
		for i := range ds {
			ds[i] = store.Deployment{ReservationID: c.Reservation.ID, NodeID: c.Nodes[i].ID, UserID: c.User.ID,
				EnvironmentID: c.Environment.ID, Name: "test"}
		}
		ds[1].EnvironmentID = web.ID
		check(t, s.CreateDeployments(ctx, ds))
		now := time.Now().UTC()
		if got, err := s.PublishedNodes(ctx, now); err != nil || len(got) != 0 {
			t.Fatalf("nodes being deployed are published: %v %v", got, err)
		}
		// node-1 deployed; node-2 deployed with the web environment; node-3 destroying;
		// node-4 deployed without a public port.
		for i, st := range []struct {
			proc  string
			state process.StateName
		}{{process.Deploy, process.Deployed}, {process.Deploy, process.Deployed}, {process.Destroy, process.Destroying},
			{process.Deploy, process.Deployed}} {
			check(t, s.ForceState(ctx, ds[i].ID, st.proc, st.state, "test"))
		}
		want := []store.PublishedNode{{Name: "node-1", IP: "10.0.0.1", PublicPort: 22001},
			{Name: "node-2", IP: "10.0.0.2", PublicPort: 22002, Web: true}}
		got, err := s.PublishedNodes(ctx, now)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("published %+v, %v; want %+v", got, err, want)
		}
		if got, _ := s.PublishedNodes(ctx, c.Reservation.EndsAt.Add(time.Second)); len(got) != 0 {
			t.Errorf("published after the reservation ended: %+v", got)
		}
	})
}
