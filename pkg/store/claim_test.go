package store_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"gorm.io/gorm/clause"

	"github.com/piseduce/piseduce/pkg/power/powerconf"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestClaimDueReadsWhatGormReads: ClaimDue's own scan of deployments and nodes, and its
// switches, environments and users read once each, give the same structs as gorm's read of
// each deployment (Store.Deployment), every column set to a value of its own (a column added
// to a model is covered too), for deployments that share a switch, environment and user and
// for those that do not.
func TestClaimDueReadsWhatGormReads(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		db := storetest.DB(s)
		c := storetest.Seed(t, s, 4)
		sw2 := store.Switch{Name: "sw2", IP: "127.0.0.2", SNMPVersion: "3", V3User: "u", OID: ".1.2", Driver: powerconf.DriverCommand,
			Power: powerconf.Settings{Command: powerconf.Command{On: []string{"on", "{port}"}, Off: []string{"off"}, Status: []string{"st"}}}}
		check(t, db.Create(&sw2).Error)
		env2 := store.Environment{Name: "env2", ImageName: "e2.img", SSHUser: "root", OSFamily: "cloud-init", SectorStart: 8192}
		check(t, db.Create(&env2).Error)
		user2 := store.User{Email: "two@example.com", PasswordHash: "y", SSHKey: "ssh-ed25519 AAAA"}
		check(t, db.Create(&user2).Error)

		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		var ids []uint
		for i := range 4 {
			var n store.Node
			fill(&n, i, base)
			n.ID, n.Name, n.SwitchID, n.Port = 0, fmt.Sprintf("full-%d", i), c.Switch.ID, 100+i
			if i%2 == 1 {
				n.SwitchID = sw2.ID
			}
			check(t, db.Omit(clause.Associations).Create(&n).Error)
			var d store.Deployment
			fill(&d, i, base)
			d.ID, d.ReservationID, d.NodeID, d.UserID, d.EnvironmentID = 0, c.Reservation.ID, n.ID, c.User.ID, c.Environment.ID
			if i%2 == 1 {
				d.UserID, d.EnvironmentID = user2.ID, env2.ID
			}
			p, _ := process.Get(process.Deploy)
			d.Process, d.State, d.Hold, d.LeaseOwner, d.LeaseUntil = process.Deploy, p.First(), "", "", time.Time{}
			check(t, db.Omit(clause.Associations).Create(&d).Error)
			ids = append(ids, d.ID)
		}
		ds, err := s.ClaimDue(ctx, "a", time.Now().UTC(), time.Minute, 10, nil, nil)
		check(t, err)
		if len(ds) != len(ids) {
			t.Fatalf("claimed %d, want %d", len(ds), len(ids))
		}
		for i := range ds {
			got := &ds[i]
			want, err := s.Deployment(ctx, got.ID)
			check(t, err)
			want.Reservation = store.Reservation{} // not read by ClaimDue: no step needs it
			if got.LeaseOwner != "a" || want.LeaseOwner != "a" {
				t.Fatalf("deployment %d: lease %q / %q, want a", got.ID, got.LeaseOwner, want.LeaseOwner)
			}
			sameFields(t, fmt.Sprintf("deployment %d", got.ID), reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem())
		}
		if ds[1].Node.Switch.Power.Command.On[1] != "{port}" || ds[0].Node.Switch.Name != "sw1" || ds[1].User.SSHKey != "ssh-ed25519 AAAA" {
			t.Fatalf("the shared rows are not those of the deployments: %+v", ds[1].Node.Switch)
		}
	})
}

// fill gives every plain exported field of the struct p points to a value of its own
// (sizes small enough for every column).
func fill(p any, seed int, base time.Time) {
	v := reflect.ValueOf(p).Elem()
	for i := 0; i < v.NumField(); i++ {
		f, sf := v.Field(i), v.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		n := seed*100 + i + 1
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(base.Add(time.Duration(n) * time.Second)))
		case f.Type() == reflect.TypeFor[*time.Time]():
			t := base.Add(time.Duration(-n) * time.Second)
			f.Set(reflect.ValueOf(&t))
		case f.Kind() == reflect.String:
			f.SetString(fmt.Sprintf("v%d", n))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.CanInt():
			f.SetInt(int64(n))
		case f.CanUint():
			f.SetUint(uint64(n))
		}
	}
}

// sameFields compares two structs' exported fields, times by instant.
func sameFields(t *testing.T, where string, got, want reflect.Value) {
	t.Helper()
	for i := 0; i < got.NumField(); i++ {
		sf := got.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		g, w, name := got.Field(i), want.Field(i), where+"."+sf.Name
		switch {
		case g.Type() == reflect.TypeFor[time.Time]():
			if !g.Interface().(time.Time).Equal(w.Interface().(time.Time)) {
				t.Errorf("%s: %v, want %v", name, g, w)
			}
		case g.Type() == reflect.TypeFor[*time.Time]():
			gt, wt := g.Interface().(*time.Time), w.Interface().(*time.Time)
			if (gt == nil) != (wt == nil) || gt != nil && !gt.Equal(*wt) {
				t.Errorf("%s: %v, want %v", name, gt, wt)
			}
		case g.Kind() == reflect.Struct && g.Type().PkgPath() == reflect.TypeFor[store.Node]().PkgPath():
			sameFields(t, name, g, w)
		default:
			if !reflect.DeepEqual(g.Interface(), w.Interface()) {
				t.Errorf("%s: %#v, want %#v", name, g.Interface(), w.Interface())
			}
		}
	}
}
