package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

func TestInspectNodes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := storetest.Seed(t, s, 3)
		sw, err := s.SwitchByName(ctx, "sw1")
		check(t, err)
		if sw.ID != c.Switch.ID {
			t.Fatalf("SwitchByName: got switch %d, want %d", sw.ID, c.Switch.ID)
		}
		if _, err := s.SwitchByName(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown switch: %v", err)
		}

		// Two deployments on node-1 (the latest counts), one on node-2, none on node-3.
		first := c.Deploy(t, s, 2)
		check(t, storetest.DB(s).Model(&store.Deployment{}).Where("id = ?", first[0].ID).
			Updates(map[string]any{"process": "destroy", "state": "destroyed"}).Error)
		again := store.Deployment{ReservationID: c.Reservation.ID, NodeID: c.Nodes[0].ID, UserID: c.User.ID,
			EnvironmentID: c.Environment.ID, Name: "again"}
		check(t, s.CreateDeployments(ctx, []store.Deployment{again}))
		latest, err := s.Deployments(ctx, store.DeploymentFilter{ReservationID: c.Reservation.ID})
		check(t, err)
		var node1Latest uint
		for _, d := range latest {
			if d.NodeID == c.Nodes[0].ID && d.ID > node1Latest {
				node1Latest = d.ID
			}
		}
		check(t, storetest.DB(s).Model(&store.Deployment{}).Where("id = ?", node1Latest).
			Updates(map[string]any{"state": "env_copy", "bytes_done": 50, "bytes_total": 200,
				"last_error": "boom", "lease_owner": "host:1"}).Error)
		t0 := time.Now().UTC().Add(-time.Minute)
		for i := range 7 {
			check(t, storetest.DB(s).Create(&store.StateEvent{DeploymentID: node1Latest, NodeID: c.Nodes[0].ID, Process: "deploy",
				State: process.StateName(fmt.Sprintf("s%d", i)), Outcome: store.OutcomeDone, StartedAt: t0, EndedAt: t0.Add(time.Second)}).Error)
		}

		all, err := s.InspectNodes(ctx, "", 5)
		check(t, err)
		if len(all) != 3 {
			t.Fatalf("InspectNodes(all): %d nodes, want 3", len(all))
		}
		n1 := all[0]
		if n1.Node.Name != "node-1" || n1.Node.Switch.Name != "sw1" || n1.Deployment == nil || n1.Deployment.ID != node1Latest {
			t.Fatalf("node-1: %+v", n1)
		}
		if n1.Deployment.State != "env_copy" || n1.Deployment.LastError != "boom" || n1.Deployment.LeaseOwner != "host:1" ||
			n1.Deployment.Environment.Name != "tiny" {
			t.Fatalf("node-1 deployment: %+v", n1.Deployment)
		}
		if len(n1.Events) != 5 || n1.Events[0].State != "s2" || n1.Events[4].State != "s6" {
			t.Fatalf("node-1 events: want s2..s6 oldest first, got %+v", n1.Events)
		}
		if all[1].Deployment == nil || all[1].Deployment.NodeID != c.Nodes[1].ID || len(all[1].Events) != 0 {
			t.Fatalf("node-2: %+v", all[1])
		}
		if all[2].Deployment != nil {
			t.Fatalf("node-3 never deployed, got %+v", all[2].Deployment)
		}

		one, err := s.InspectNodes(ctx, "node-3", 5)
		check(t, err)
		if len(one) != 1 || one[0].Node.Name != "node-3" || one[0].Node.Switch.Name != "sw1" {
			t.Fatalf("InspectNodes(node-3): %+v", one)
		}
		if _, err := s.InspectNodes(ctx, "node-9", 5); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown node: %v", err)
		}
	})
}
