package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestChangeStamp: the stamp stays the same while nothing is written, and moves with each
// kind of write pifrontend's caches depend on: a request, a session created and ended.
func TestChangeStamp(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			ctx := context.Background()
			c := storetest.Seed(t, s, 2)
			deps := c.Deploy(t, s, 2)
			stamp := func() string {
				t.Helper()
				st, err := s.ChangeStamp(ctx)
				check(t, err)
				return st
			}
			last := stamp()
			if again := stamp(); again != last {
				t.Fatalf("the stamp moved with no write: %q then %q", last, again)
			}
			moved := func(what string) {
				t.Helper()
				now := stamp()
				if now == last {
					t.Errorf("%s: the stamp did not move (%q)", what, now)
				}
				last = now
			}
			time.Sleep(10 * time.Millisecond) // past the database's time resolution (updated_at)
			check(t, s.RequestProcess(ctx, deps[0].ID, process.Destroy))
			moved("a destroy request")
			check(t, s.CreateSession(ctx, &store.Session{Hash: "h1", UserID: c.User.ID, ExpiresAt: time.Now().Add(time.Hour)}))
			moved("a new session")
			check(t, s.DeleteSession(ctx, "h1"))
			moved("a session ended")
			time.Sleep(10 * time.Millisecond)
			check(t, s.SetUserAuthorized(ctx, c.User.ID, false))
			moved("a user's access revoked")
		})
	}
}
