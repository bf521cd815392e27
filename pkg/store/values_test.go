package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// trickyValues are strings the driver must escape when it puts values into the statement's
// text itself (MariaDB's interpolateParams): quotes, backslashes, a NUL, SQL's wildcards and
// placeholder, non-ASCII of one to four bytes.
var trickyValues = []string{
	`O'Brien`, `"quoted"`, `back\slash`, `ends with a backslash\`, `\'`, `\\'; DROP TABLE users; --`,
	"nul\x00byte", "tab\tnewline\ncr\r\x1a", `100% _wild_ ? ?? $1`, "Zoë Ångström", "日本語のテキスト", "emoji 🙂🚀",
}

// longTricky goes into the text columns only.
var longTricky = strings.Repeat(`'\`, 2000) + "é"

// TestValuesRoundTrip: what the programs write comes back the same, through the store's
// inserts, its engine's batched UPDATE (CASE … WHEN ? THEN ?) and its lookups by value.
func TestValuesRoundTrip(t *testing.T) {
	if _, dsn, err := store.ParseURL("mysql://u:p@h/db"); err != nil || !strings.Contains(dsn, "interpolateParams=true") {
		t.Fatalf("MariaDB DSN %q (%v): want the values interpolated, one round trip a statement", dsn, err)
	}
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		for i, v := range trickyValues {
			email := "o'brien+" + string(rune('a'+i)) + "@example.com"
			u := &store.User{Email: email, PasswordHash: "x", FirstName: v, LastName: v, SSHKey: v + longTricky}
			check(t, s.CreateUser(ctx, u))
			got, err := s.UserByEmail(ctx, email)
			check(t, err)
			if got.ID != u.ID || got.FirstName != v || got.LastName != v || got.SSHKey != v+longTricky {
				t.Errorf("user %d: wrote %q, read %q / %q / %q", u.ID, v, got.FirstName, got.LastName, got.SSHKey)
			}
			var n int64
			check(t, storetest.DB(s).Model(&store.User{}).Where("first_name = ? AND last_name LIKE ?", v, "%").Count(&n).Error)
			if n != 1 {
				t.Errorf("%d users whose first name is %q, want 1", n, v)
			}
		}

		c := storetest.Seed(t, s, len(trickyValues))
		c.Deploy(t, s, len(trickyValues))
		now := time.Now().UTC().Add(time.Second)
		ds, err := s.ClaimDue(ctx, "owner'\\", now, time.Minute, len(trickyValues), nil, nil)
		check(t, err)
		if len(ds) != len(trickyValues) {
			t.Fatalf("claimed %d deployments, want %d", len(ds), len(trickyValues))
		}
		saves := make([]store.Save, len(ds))
		want := map[uint]string{}
		for i := range ds {
			v := trickyValues[i]
			ds[i].LastError, ds[i].ScriptOutput, ds[i].StepData = v, v+longTricky, v
			saves[i] = store.Save{D: &ds[i], Event: &store.StateEvent{DeploymentID: ds[i].ID, Message: v, StartedAt: now, EndedAt: now}}
			want[ds[i].ID] = v
		}
		check(t, s.SaveObserved(ctx, "owner'\\", saves))
		for _, sv := range saves {
			check(t, sv.Err)
		}
		for id, v := range want {
			d, err := s.Deployment(ctx, id)
			check(t, err)
			if d.LastError != v || d.ScriptOutput != v+longTricky || d.StepData != v || d.LeaseOwner != "owner'\\" {
				t.Errorf("deployment %d: wrote %q, read %q / %q / %q, lease %q", id, v, d.LastError, d.ScriptOutput, d.StepData, d.LeaseOwner)
			}
			var msg string
			check(t, storetest.DB(s).Model(&store.StateEvent{}).Select("message").Where("deployment_id = ? AND message = ?", id, v).Row().Scan(&msg))
			if msg != v {
				t.Errorf("event of deployment %d: wrote %q, read %q", id, v, msg)
			}
		}
	})
}
