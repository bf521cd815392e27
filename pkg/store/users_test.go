package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

func TestUsers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 2, 0)
		if err := s.CreateUser(ctx, &store.User{Email: "ALICE@example.com ", PasswordHash: "x"}); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("duplicate e-mail: %v", err)
		}
		u, err := s.UserByEmail(ctx, "alice@EXAMPLE.com")
		check(t, err)
		if u.ID != c.alice.ID {
			t.Fatal("lookup by e-mail is not case-insensitive")
		}
		// The last admin stays one.
		check(t, s.SetUserAdmin(ctx, c.alice.ID, true))
		if err := s.SetUserAdmin(ctx, c.alice.ID, false); !errors.Is(err, store.ErrLastAdmin) {
			t.Fatalf("unadmin last admin: %v", err)
		}
		if err := s.SetUserAuthorized(ctx, c.alice.ID, false); !errors.Is(err, store.ErrLastAdmin) {
			t.Fatalf("revoke last admin: %v", err)
		}
		if _, err := s.DeleteUser(ctx, c.alice.ID, time.Now()); !errors.Is(err, store.ErrLastAdmin) {
			t.Fatalf("delete last admin: %v", err)
		}
		// Revoking ends sessions.
		check(t, s.CreateSession(ctx, &store.Session{Hash: "h1", UserID: c.bob.ID, ExpiresAt: time.Now().Add(time.Hour)}))
		check(t, s.SetUserAuthorized(ctx, c.bob.ID, false))
		if _, err := s.SessionByHash(ctx, "h1", time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("session of a revoked user: %v", err)
		}
	})
}

func TestDeleteUser(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 3, 0)
		now := time.Now().UTC()
		check(t, s.CreateAPIToken(ctx, &store.APIToken{UserID: c.bob.ID, Hash: "tokenhash", ExpiresAt: now.Add(time.Hour)}))
		r, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{c.nodes[0].ID, c.nodes[1].ID},
			StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)}, now.Add(-time.Minute))
		check(t, err)
		future, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{c.nodes[2].ID},
			StartsAt: now.Add(5 * time.Hour), EndsAt: now.Add(6 * time.Hour)}, now)
		check(t, err)
		ds, err := s.DeployReservation(ctx, r.ID, store.Deployment{EnvironmentID: c.env.ID}, now)
		check(t, err)

		deleted, err := s.DeleteUser(ctx, c.bob.ID, now)
		check(t, err)
		if deleted {
			t.Fatal("deleted while nodes still need destroying")
		}
		tomb, err := s.User(ctx, c.bob.ID)
		check(t, err)
		if !tomb.IsDeleted() || tomb.FirstName != "" || tomb.Authorized || tomb.DisplayName() != "deleted user" {
			t.Fatalf("tombstone: %+v", tomb)
		}
		if _, _, err := s.UserByAPIToken(ctx, "tokenhash", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token of a deleted user: %v", err)
		}
		if _, err := s.Reservation(ctx, future.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("future reservation kept: %v", err)
		}
		for _, d := range ds {
			got, err := s.Deployment(ctx, d.ID)
			check(t, err)
			if got.Process != process.Destroy {
				t.Fatalf("deployment %d not destroyed: %s", d.ID, got.Process)
			}
		}
		users, err := s.Users(ctx)
		check(t, err)
		if len(users) != 1 {
			t.Fatalf("tombstone listed: %d users", len(users))
		}
		if n, err := s.PurgeDeletedUsers(ctx); err != nil || n != 0 {
			t.Fatalf("purged too early: %d %v", n, err)
		}
		check(t, storetest.DB(s).Model(&store.Deployment{}).Where("user_id = ?", c.bob.ID).Update("state", "destroyed").Error)
		if n, err := s.PurgeDeletedUsers(ctx); err != nil || n != 1 {
			t.Fatalf("purge: %d %v", n, err)
		}
		if _, err := s.User(ctx, c.bob.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("user kept: %v", err)
		}
		var left int64
		storetest.DB(s).Model(&store.Deployment{}).Count(&left)
		if left != 0 {
			t.Fatalf("%d deployments left", left)
		}
		// A user with nothing deployed goes at once.
		deleted, err = s.DeleteUser(ctx, c.alice.ID, now)
		check(t, err)
		if !deleted {
			t.Fatal("alice not deleted")
		}
	})
}

func TestTokensAndSettings(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 0, 0)
		now := time.Now().UTC()
		check(t, s.CreateEmailToken(ctx, &store.EmailToken{Hash: "e1", UserID: c.bob.ID, Purpose: store.TokenConfirmEmail, ExpiresAt: now.Add(time.Hour)}))
		check(t, s.CreateEmailToken(ctx, &store.EmailToken{Hash: "e2", UserID: c.bob.ID, Purpose: store.TokenConfirmEmail, ExpiresAt: now.Add(-time.Second)}))
		check(t, storetest.DB(s).Model(&store.User{}).Where("id = ?", c.bob.ID).Updates(map[string]any{"email_confirmed": false, "authorized": false}).Error)
		u, err := s.ConfirmEmail(ctx, "e1", now, true)
		check(t, err)
		if !u.EmailConfirmed || !u.Authorized {
			t.Fatalf("confirm: %+v", u)
		}
		if _, err := s.ConfirmEmail(ctx, "e1", now, true); !errors.Is(err, store.ErrTokenInvalid) {
			t.Fatalf("second use: %v", err)
		}
		if _, err := s.ConfirmEmail(ctx, "e2", now, true); !errors.Is(err, store.ErrTokenInvalid) {
			t.Fatalf("expired: %v", err)
		}
		if _, err := s.ConfirmEmail(ctx, "nope", now, true); !errors.Is(err, store.ErrTokenInvalid) {
			t.Fatalf("unknown: %v", err)
		}

		tok := store.APIToken{UserID: c.bob.ID, Name: "ci", Hash: "abc", ExpiresAt: now.Add(time.Hour)}
		check(t, s.CreateAPIToken(ctx, &tok))
		if err := s.DeleteAPIToken(ctx, c.alice.ID, tok.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("alice revoked bob's token: %v", err)
		}
		got, gotTok, err := s.UserByAPIToken(ctx, "abc", now)
		check(t, err)
		if got.ID != c.bob.ID || gotTok.ID != tok.ID {
			t.Fatal("wrong token owner")
		}
		check(t, s.DeleteAPIToken(ctx, c.bob.ID, tok.ID))

		calls := 0
		gen := func() (string, error) { calls++; return "secret1", nil }
		v1, err := s.EnsureSetting(ctx, "session_secret", gen)
		check(t, err)
		v2, err := s.EnsureSetting(ctx, "session_secret", func() (string, error) { return "other", nil })
		check(t, err)
		if v1 != "secret1" || v2 != "secret1" || calls != 1 {
			t.Fatalf("ensure: %q %q %d", v1, v2, calls)
		}
		check(t, s.SetSettings(ctx, map[string]string{"a": "1", "b": "2"}))
		check(t, s.SetSettings(ctx, map[string]string{"a": "3"}))
		m, err := s.Settings(ctx)
		check(t, err)
		if m["a"] != "3" || m["b"] != "2" {
			t.Fatalf("settings: %v", m)
		}
	})
}

func TestClusterCRUD(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 2, 0)
		now := time.Now().UTC()
		if err := s.CreateNode(ctx, &store.Node{Name: "node-x", SwitchID: c.sw.ID, Port: 1}); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("two nodes on one port: %v", err)
		}
		if err := s.CreateNode(ctx, &store.Node{Name: "node-1", SwitchID: c.sw.ID, Port: 3}); !errors.Is(err, store.ErrDuplicate) {
			t.Fatalf("duplicate node name: %v", err)
		}
		if err := s.DeleteSwitch(ctx, c.sw.ID); !errors.Is(err, store.ErrInUse) {
			t.Fatalf("delete a switch with nodes: %v", err)
		}
		n := c.nodes[1]
		n.IP = "10.0.0.99"
		check(t, s.UpdateNode(ctx, &n))
		got, err := s.Node(ctx, n.ID)
		check(t, err)
		if got.IP != "10.0.0.99" || got.Switch.Name != "sw1" {
			t.Fatalf("update node: %+v", got)
		}
		r, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.alice.ID, NodeIDs: []uint{c.nodes[0].ID},
			StartsAt: now, EndsAt: now.Add(time.Hour)}, now)
		check(t, err)
		_, err = s.DeployReservation(ctx, r.ID, store.Deployment{EnvironmentID: c.env.ID}, now)
		check(t, err)
		if err := s.DeleteNode(ctx, c.nodes[0].ID); !errors.Is(err, store.ErrInUse) {
			t.Fatalf("delete a deployed node: %v", err)
		}
		if err := s.DeleteEnvironment(ctx, c.env.ID); !errors.Is(err, store.ErrInUse) {
			t.Fatalf("delete a used environment: %v", err)
		}
		check(t, s.PinHostKey(ctx, "system", c.nodes[1].ID, "ssh-ed25519 AAAAkey"))
		check(t, s.DeleteNode(ctx, c.nodes[1].ID))
		if _, found, err := s.HostKey(ctx, "system", c.nodes[1].ID); found || err != nil {
			t.Fatalf("a deleted node's host key is kept: %v %v", found, err)
		}
		env := c.env
		env.Description = "new"
		check(t, s.UpdateEnvironment(ctx, &env))
		sw := c.sw
		sw.Community = "secret"
		check(t, s.UpdateSwitch(ctx, &sw))
		gs, err := s.Switch(ctx, sw.ID)
		check(t, err)
		if gs.Community != "secret" {
			t.Fatal("switch not updated")
		}
		check(t, s.CreateEnvironment(ctx, &store.Environment{Name: "mine", Type: store.EnvUser, OwnerID: c.bob.ID, ImageName: "m.img"}))
		check(t, s.CreateEnvironment(ctx, &store.Environment{Name: "hidden", Type: store.EnvHidden, ImageName: "h.img"}))
		for _, tc := range []struct {
			user  uint
			admin bool
			want  int
		}{{c.alice.ID, false, 1}, {c.bob.ID, false, 2}, {c.alice.ID, true, 2}} {
			es, err := s.VisibleEnvironments(ctx, tc.user, tc.admin)
			check(t, err)
			if len(es) != tc.want {
				t.Errorf("user %d admin %v sees %d environments", tc.user, tc.admin, len(es))
			}
		}
	})
}

func TestDiscoveryRuns(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 1, 0)
		r, err := s.RequestDiscovery(ctx, c.sw.ID, []int{2, 3}, c.alice.ID)
		check(t, err)
		if _, err := s.RequestDiscovery(ctx, c.sw.ID, nil, c.alice.ID); !errors.Is(err, store.ErrInUse) {
			t.Fatalf("two runs on one switch: %v", err)
		}
		got, err := s.ClaimDiscovery(ctx, "pitasks-1", time.Now(), time.Minute)
		check(t, err)
		if got == nil || got.ID != r.ID || got.Switch.Name != "sw1" || len(got.PortList()) != 2 {
			t.Fatalf("claim: %+v", got)
		}
		if again, err := s.ClaimDiscovery(ctx, "pitasks-2", time.Now(), time.Minute); err != nil || again != nil {
			t.Fatalf("claimed twice: %+v %v", again, err)
		}
		check(t, s.AppendDiscoveryOutput(ctx, r.ID, "port 2: powering on"))
		check(t, s.AppendDiscoveryOutput(ctx, r.ID, "port 2: found b8:27:eb:00:00:01"))
		if err := s.FinishDiscovery(ctx, r.ID, "pitasks-2", nil, time.Now()); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("another pitasks ended the run: %v", err)
		}
		check(t, s.FinishDiscovery(ctx, r.ID, "pitasks-1", errors.New("port 3: no DHCP request"), time.Now()))
		got, err = s.DiscoveryRun(ctx, r.ID)
		check(t, err)
		if got.Output != "port 2: powering on\nport 2: found b8:27:eb:00:00:01\n" || got.State != store.DiscoveryFailed || got.Error == "" || got.EndedAt == nil {
			t.Fatalf("run: %+v", got)
		}
		if _, err := s.RequestDiscovery(ctx, c.sw.ID, nil, c.alice.ID); err != nil {
			t.Fatalf("a new run after the end: %v", err)
		}
	})
}

// TestAPITokenLifetime: a token works until it expires; a password change revokes every token of
// the user and ends their other sessions; revoking the user revokes their tokens (approving them
// again brings none back); a token without expiry is refused; expired tokens are purged a month
// after their end.
func TestAPITokenLifetime(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 0, 0)
		now := time.Now().UTC()
		tokens := func(user uint) int {
			ts, err := s.APITokens(ctx, user)
			check(t, err)
			return len(ts)
		}
		if err := s.CreateAPIToken(ctx, &store.APIToken{UserID: c.bob.ID, Name: "forever", Hash: "h0"}); err == nil {
			t.Fatal("a token without expiry was stored")
		}
		check(t, s.CreateAPIToken(ctx, &store.APIToken{UserID: c.bob.ID, Name: "ro", Hash: "h1", ReadOnly: true, ExpiresAt: now.Add(time.Hour)}))
		check(t, s.CreateAPIToken(ctx, &store.APIToken{UserID: c.bob.ID, Name: "rw", Hash: "h2", ExpiresAt: now.Add(2 * time.Hour)}))
		check(t, s.CreateAPIToken(ctx, &store.APIToken{UserID: c.alice.ID, Name: "alice", Hash: "h3", ExpiresAt: now.Add(time.Hour)}))
		if _, tok, err := s.UserByAPIToken(ctx, "h1", now); err != nil || !tok.ReadOnly {
			t.Fatalf("read-only token: %+v %v", tok, err)
		}
		if _, _, err := s.UserByAPIToken(ctx, "h1", now.Add(time.Hour)); !errors.Is(err, store.ErrTokenExpired) {
			t.Fatalf("token at its expiry: %v", err)
		}
		if _, _, err := s.UserByAPIToken(ctx, "h2", now.Add(time.Hour)); err != nil {
			t.Fatalf("token before its expiry: %v", err)
		}
		// Housekeeping keeps an expired token a month, for its owner to see.
		check(t, s.DeleteExpiredSessions(ctx, now.Add(2*time.Hour)))
		if tokens(c.bob.ID) != 2 {
			t.Fatal("an expired token vanished at once")
		}
		check(t, s.DeleteExpiredSessions(ctx, now.Add(31*24*time.Hour)))
		if tokens(c.bob.ID) != 0 || tokens(c.alice.ID) != 0 {
			t.Fatal("tokens expired a month ago are kept")
		}

		// A password change: every token of the user goes, and every session but the current one.
		check(t, s.CreateAPIToken(ctx, &store.APIToken{UserID: c.bob.ID, Name: "a", Hash: "h4", ExpiresAt: now.Add(time.Hour)}))
		check(t, s.CreateAPIToken(ctx, &store.APIToken{UserID: c.alice.ID, Name: "b", Hash: "h5", ExpiresAt: now.Add(time.Hour)}))
		for _, h := range []string{"s1", "s2"} {
			check(t, s.CreateSession(ctx, &store.Session{Hash: h, UserID: c.bob.ID, ExpiresAt: now.Add(time.Hour)}))
		}
		check(t, s.SetUserPassword(ctx, c.bob.ID, "newhash", "s1"))
		if _, _, err := s.UserByAPIToken(ctx, "h4", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token after a password change: %v", err)
		}
		if _, err := s.SessionByHash(ctx, "s1", now); err != nil {
			t.Fatalf("the session that changed the password ended: %v", err)
		}
		if _, err := s.SessionByHash(ctx, "s2", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another session survived a password change: %v", err)
		}
		if tokens(c.alice.ID) != 1 {
			t.Fatal("another user's token was revoked")
		}
		// Revoking the user revokes their tokens; approving them again brings none back.
		check(t, s.CreateAPIToken(ctx, &store.APIToken{UserID: c.bob.ID, Name: "c", Hash: "h6", ExpiresAt: now.Add(time.Hour)}))
		check(t, s.SetUserAuthorized(ctx, c.bob.ID, false))
		check(t, s.SetUserAuthorized(ctx, c.bob.ID, true))
		if _, _, err := s.UserByAPIToken(ctx, "h6", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token of a revoked then approved user: %v", err)
		}
	})
}

// TestAPITokensOfOlderVersions: tokens stored before tokens expired get the default lifetime
// when a daemon of this version opens the database.
func TestAPITokensOfOlderVersions(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			url := storetest.URL(t, d)
			s, err := store.Open(ctx, url)
			check(t, err)
			c := seedWeb(t, s, 0, 0)
			// The table as the previous version made it, with one of its tokens.
			check(t, storetest.DB(s).Exec("ALTER TABLE api_tokens DROP COLUMN expires_at").Error)
			check(t, storetest.DB(s).Exec("ALTER TABLE api_tokens DROP COLUMN read_only").Error)
			check(t, storetest.DB(s).Exec("INSERT INTO api_tokens (user_id, name, hash, created_at) VALUES (?, 'old', 'oldhash', ?)", c.bob.ID, time.Now().UTC()).Error)
			var since store.SchemaMigration
			check(t, storetest.DB(s).Where("name LIKE ?", "api_tokens.expires_at%").First(&since).Error)
			check(t, storetest.DB(s).Where("version >= ?", since.Version).Delete(&store.SchemaMigration{}).Error)
			check(t, s.Close())

			s, err = store.Open(ctx, url)
			check(t, err)
			defer s.Close()
			now := time.Now().UTC()
			_, tok, err := s.UserByAPIToken(ctx, "oldhash", now)
			check(t, err)
			if left := tok.ExpiresAt.Sub(now); tok.ReadOnly || left < store.APITokenTTL-time.Hour || left > store.APITokenTTL {
				t.Fatalf("old token: read-only %v, expires in %s", tok.ReadOnly, left)
			}
		})
	}
}

// A reset link works once, before it expires, for an approved user; using it (as a one-time
// password, or a password change) revokes every session, API token and other reset link.
func TestPasswordResetAndOneTimePassword(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 0, 0)
		now := time.Now().UTC()
		link := func(hash string, expires time.Time) {
			t.Helper()
			check(t, s.CreateEmailToken(ctx, &store.EmailToken{Hash: hash, UserID: c.bob.ID, Purpose: store.TokenResetPassword, ExpiresAt: expires}))
		}
		creds := func() {
			t.Helper()
			check(t, s.CreateSession(ctx, &store.Session{Hash: "s-" + t.Name(), UserID: c.bob.ID, ExpiresAt: now.Add(time.Hour)}))
			check(t, s.CreateAPIToken(ctx, &store.APIToken{UserID: c.bob.ID, Hash: "a-" + t.Name(), ExpiresAt: now.Add(time.Hour)}))
		}
		gone := func(what string) {
			t.Helper()
			if _, err := s.SessionByHash(ctx, "s-"+t.Name(), now); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s: the session survived: %v", what, err)
			}
			if _, _, err := s.UserByAPIToken(ctx, "a-"+t.Name(), now); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s: the API token survived: %v", what, err)
			}
		}

		link("expired", now.Add(-time.Second))
		if _, err := s.ResetPassword(ctx, "expired", "h-expired", now); !errors.Is(err, store.ErrTokenInvalid) {
			t.Fatalf("expired link: %v", err)
		}
		// A confirmation token is not a reset link.
		check(t, s.CreateEmailToken(ctx, &store.EmailToken{Hash: "confirm", UserID: c.bob.ID, Purpose: store.TokenConfirmEmail, ExpiresAt: now.Add(time.Hour)}))
		if _, err := s.ResetPassword(ctx, "confirm", "h-confirm", now); !errors.Is(err, store.ErrTokenInvalid) {
			t.Fatalf("a confirmation token reset the password: %v", err)
		}

		link("first", now.Add(time.Hour))
		link("second", now.Add(time.Hour))
		creds()
		u, err := s.ResetPassword(ctx, "first", "h-new", now)
		check(t, err)
		if u.ID != c.bob.ID {
			t.Fatalf("reset user %d, want %d", u.ID, c.bob.ID)
		}
		gone("reset")
		got, err := s.User(ctx, c.bob.ID)
		check(t, err)
		if got.PasswordHash != "h-new" || got.MustChangePassword {
			t.Fatalf("after reset: hash %q, must change %v", got.PasswordHash, got.MustChangePassword)
		}
		for _, h := range []string{"first", "second"} {
			if _, err := s.ResetPassword(ctx, h, "h-again", now); !errors.Is(err, store.ErrTokenInvalid) {
				t.Fatalf("link %q worked after a reset: %v", h, err)
			}
		}

		// A one-time password: must be changed, ends everything.
		creds()
		check(t, s.SetOneTimePassword(ctx, c.bob.ID, "h-otp"))
		gone("one-time password")
		got, err = s.User(ctx, c.bob.ID)
		check(t, err)
		if got.PasswordHash != "h-otp" || !got.MustChangePassword {
			t.Fatalf("after one-time password: hash %q, must change %v", got.PasswordHash, got.MustChangePassword)
		}
		check(t, s.SetUserPassword(ctx, c.bob.ID, "h-chosen", ""))
		if got, _ = s.User(ctx, c.bob.ID); got.MustChangePassword {
			t.Fatal("a chosen password is still to be changed")
		}
		if err := s.SetOneTimePassword(ctx, 9999, "h"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("one-time password of nobody: %v", err)
		}

		// A revoked user's link does nothing, and stays unused.
		link("revoked", now.Add(time.Hour))
		check(t, s.SetUserAuthorized(ctx, c.bob.ID, false))
		if _, err := s.ResetPassword(ctx, "revoked", "h-revoked", now); !errors.Is(err, store.ErrTokenInvalid) {
			t.Fatalf("a revoked user reset their password: %v", err)
		}
		if got, _ = s.User(ctx, c.bob.ID); got.PasswordHash != "h-chosen" {
			t.Fatalf("revoked user's hash is %q", got.PasswordHash)
		}
	})
}
