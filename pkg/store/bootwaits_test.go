package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestBootWaitsAndMakeDue: a node seen booting (by its MAC or its address) names the
// deployments waiting in the given states, and MakeDue brings a later check forward to now,
// never a sooner one back, without moving what one sees (updated_at).
func TestBootWaitsAndMakeDue(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := storetest.Seed(t, s, 3)
		db := storetest.DB(s)
		for i, n := range c.Nodes {
			check(t, db.Model(&n).Updates(map[string]any{"ip": []string{"10.1.0.1", "10.1.0.2", "10.1.0.3"}[i],
				"mac": []string{"b8:27:eb:00:00:01", "b8:27:eb:00:00:02", "b8:27:eb:00:00:03"}[i]}).Error)
		}
		ds := c.Deploy(t, s, 3)
		later := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
		for i, st := range []process.StateName{process.SSHNFS, process.SSHSystem, process.EnvCopy} {
			check(t, db.Model(&store.Deployment{}).Where("id = ?", ds[i].ID).
				Updates(map[string]any{"state": st, "next_check_at": later}).Error)
		}
		waits := []process.StateName{process.SSHNFS, process.SSHSystem}
		for _, c := range []struct {
			mac, ip string
			want    []uint
		}{
			{"B8:27:EB:00:00:01", "", []uint{ds[0].ID}},
			{"", "10.1.0.2", []uint{ds[1].ID}},
			{"b8:27:eb:00:00:01", "10.1.0.2", []uint{ds[0].ID, ds[1].ID}},
			{"b8:27:eb:00:00:03", "10.1.0.3", nil}, // env_copy waits for no boot
			{"", "", nil},
		} {
			got, err := s.BootWaits(ctx, c.mac, c.ip, waits)
			check(t, err)
			if !slices.Equal(got, c.want) {
				t.Errorf("BootWaits(%q, %q) = %v, want %v", c.mac, c.ip, got, c.want)
			}
		}
		before, err := s.Deployment(ctx, ds[0].ID)
		check(t, err)
		now := time.Now().UTC().Truncate(time.Second)
		for i, want := range []bool{true, false} {
			changed, err := s.MakeDue(ctx, ds[0].ID, now.Add(time.Duration(i)*time.Minute))
			check(t, err)
			if changed != want {
				t.Errorf("MakeDue #%d changed %v, want %v (a sooner check is kept)", i+1, changed, want)
			}
		}
		after, err := s.Deployment(ctx, ds[0].ID)
		check(t, err)
		if !after.NextCheckAt.Equal(now) || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("next check %s (want %s), updated_at %s -> %s (want unmoved)", after.NextCheckAt, now, before.UpdatedAt, after.UpdatedAt)
		}
	})
}
