package origdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/clusterdesc"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/origdb/origdbtest"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/web"
)

// ourSite is our database after import-cluster of the original's cluster_desc/.
func ourSite(t *testing.T, dialect string) *store.Store {
	t.Helper()
	st := storetest.Open(t, dialect)
	dir, imgDir := origdbtest.ClusterDesc(t)
	d, err := clusterdesc.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clusterdesc.Import(context.Background(), st, d, imgDir); err != nil {
		t.Fatal(err)
	}
	return st
}

// counts is the number of rows of the tables an import writes.
func counts(t *testing.T, st *store.Store) string {
	t.Helper()
	var out []string
	for _, m := range []any{&store.User{}, &store.Reservation{}, &store.Deployment{}} {
		var n int64
		if err := storetest.DB(st).Model(m).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(n))
	}
	var owned int64
	if err := storetest.DB(st).Model(&store.Environment{}).Where("owner_id <> 0").Count(&owned).Error; err != nil {
		t.Fatal(err)
	}
	return strings.Join(append(out, fmt.Sprint(owned)), "/")
}

func deploymentOf(t *testing.T, st *store.Store, node string) store.Deployment {
	t.Helper()
	var d store.Deployment
	err := storetest.DB(st).Preload("Reservation").Preload("User").Preload("Environment").
		Joins("JOIN nodes ON nodes.id = deployments.node_id").Where("nodes.name = ?", node).
		Order("deployments.id DESC").First(&d).Error
	if err != nil {
		t.Fatalf("deployment of %s: %v", node, err)
	}
	return d
}

func TestImportOriginalSite(t *testing.T) {
	ctx := context.Background()
	origURL, odb := origdbtest.Database(t)
	before := checksum(t, odb)
	snap, err := Read(ctx, origURL, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if after := checksum(t, odb); after != before {
		t.Fatalf("reading changed the original's tables: %s, then %s", before, after)
	}
	if len(snap.Users) != 5 || len(snap.Deployments) != 8 {
		t.Fatalf("read %d users and %d current deployments, want 5 and 8 (the destroyed one left out)", len(snap.Users), len(snap.Deployments))
	}
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			st := ourSite(t, dialect)
			now := time.Now().UTC()

			// A dry run reports everything and writes nothing.
			empty := counts(t, st)
			rep, err := Import(ctx, st, snap, Options{DryRun: true, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if got := counts(t, st); got != empty {
				t.Fatalf("dry run wrote rows: %s, then %s", empty, got)
			}
			// 5 users, 6 reservations (exp1 holds two nodes), 7 deployments; bob_env's owner.
			if rep.Created != 18 || rep.Updated != 1 || rep.Unchanged != 0 {
				t.Fatalf("dry run: %s\n%s", rep, strings.Join(rep.Lines, "\n"))
			}
			text := strings.Join(append(rep.Lines, rep.Notes...), "\n")
			for _, want := range []string{
				"user 3 bob@example.org: new user (authorized)",
				"user 4 carol@example.org: new user (e-mail confirmed, waiting for an admin's approval)",
				"deployment 8 node-7: skipped",
				"deployment 3 node-3: bob@example.org's \"bobs\", raspbian_buster save_env/img_copy, held",
				"deployment 6 node-6: dave@example.org's \"old\", raspbian_buster deploy/deployed, as it is; reservation which ended",
				"environment bob_env: owned by bob@example.org",
				"environment old_env: a user environment, but the original's database does not say whose",
				"user 3 bob@example.org: authorized but never confirmed",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("report lacks %q:\n%s", want, text)
				}
			}
			for _, secret := range []string{"alice pw:1", "Xy12Zt34", "$2b$12$"} {
				if strings.Contains(text, secret) {
					t.Errorf("the report shows a secret (%s)", secret)
				}
			}

			// Conflicts with what is here: reported with the original's table and id, nothing imported.
			local := store.User{Email: "alice@example.org", PasswordHash: "x", Authorized: true, EmailConfirmed: true}
			if err := st.CreateUser(ctx, &local); err != nil {
				t.Fatal(err)
			}
			res, err := st.CreateReservation(ctx, store.ReservationRequest{UserID: local.ID, NodeIDs: []uint{nodeID(t, st, "node-4")},
				StartsAt: now.Add(time.Hour), EndsAt: now.Add(3 * time.Hour)}, now)
			if err != nil {
				t.Fatal(err)
			}
			withLocal := counts(t, st)
			_, err = Import(ctx, st, snap, Options{Now: now})
			var pe *ProblemsError
			if !errors.As(err, &pe) {
				t.Fatalf("import over conflicts: %v", err)
			}
			wantProblems(t, pe, "user 2: e-mail alice@example.org already has an account here",
				"deployment 4: node node-4 is reserved or still in use here")
			if got := counts(t, st); got != withLocal {
				t.Fatalf("a failed import wrote rows: %s, then %s", withLocal, got)
			}
			if err := st.EndReservation(ctx, res.ID, now); err != nil {
				t.Fatal(err)
			}
			if _, err := st.DeleteUser(ctx, local.ID, now); err != nil {
				t.Fatal(err)
			}

			rep, err = Import(ctx, st, snap, Options{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Created != 18 || rep.Updated != 1 {
				t.Fatalf("import: %s", rep)
			}
			checkImported(t, st, now)

			// Again: nothing changes.
			imported := counts(t, st)
			rep, err = Import(ctx, st, snap, Options{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Created != 0 || rep.Updated != 0 || rep.Unchanged != 12 || counts(t, st) != imported {
				t.Fatalf("second import: %s; rows %s, then %s", rep, imported, counts(t, st))
			}

			if dialect == "sqlite" {
				checkLogins(t, st, now)
			}
			checkEngineLeavesHeldAlone(t, st, now)
		})
	}
}

func nodeID(t *testing.T, st *store.Store, name string) uint {
	t.Helper()
	var n store.Node
	if err := storetest.DB(st).Where("name = ?", name).First(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n.ID
}

func wantProblems(t *testing.T, pe *ProblemsError, want ...string) {
	t.Helper()
	msg := pe.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("problems lack %q:\n%s", w, msg)
		}
	}
	if len(pe.Problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(pe.Problems), len(want), msg)
	}
}

// checksum is MariaDB's checksum of the original's two tables.
func checksum(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query("CHECKSUM TABLE `user`, deployment")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		var sum sql.NullInt64
		if err := rows.Scan(&name, &sum); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s=%d", name, sum.Int64))
	}
	return strings.Join(out, " ")
}

func checkImported(t *testing.T, st *store.Store, now time.Time) {
	t.Helper()
	ctx := context.Background()
	bob, err := st.UserByEmail(ctx, "bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if bob.PasswordHash != "$2b$04$MIGwmazJwqjGvSX8kr18qu8kE0rPOafLDYE7N9E0hRNmHy.CJFkOq" || !bob.Authorized || !bob.EmailConfirmed || bob.Admin {
		t.Errorf("bob: hash %q, authorized %t, confirmed %t, admin %t", bob.PasswordHash, bob.Authorized, bob.EmailConfirmed, bob.Admin)
	}
	dave, err := st.UserByEmail(ctx, "dave@example.org")
	if err != nil || dave.FirstName != "Dävé" || dave.LastName != "Noël" {
		t.Errorf("dave (latin1 names): %+v %v", dave, err)
	}
	admin, err := st.UserByEmail(ctx, "admin@piseduce.fr")
	if err != nil || !admin.Admin {
		t.Errorf("admin: %+v %v", admin, err)
	}
	alice, err := st.UserByEmail(ctx, "alice@example.org")
	if err != nil || !strings.HasSuffix(alice.SSHKey, "alice@laptop") {
		t.Errorf("alice: %+v %v", alice, err)
	}

	// exp1: one reservation of node-1 and node-2 for 3 hours from an hour ago, deployed as it is.
	d1, d2 := deploymentOf(t, st, "node-1"), deploymentOf(t, st, "node-2")
	if d1.ReservationID != d2.ReservationID || d1.Process != process.Deploy || d1.State != "deployed" || d1.Hold != "" ||
		d1.Active() || d1.SystemPassword != "alice pw:1" || d1.SystemSize != 0 || d1.Name != "exp1" ||
		!strings.HasSuffix(d1.PublicKey, "bob@lab") || d1.InitScript != "echo hello > /tmp/hello" || d1.Environment.Name != "raspbian_buster" {
		t.Errorf("node-1: %+v", d1)
	}
	if span := d1.Reservation.EndsAt.Sub(d1.Reservation.StartsAt); span != 3*time.Hour || d1.Reservation.StartsAt.After(now.Add(-59*time.Minute)) {
		t.Errorf("exp1's reservation: %s to %s", d1.Reservation.StartsAt, d1.Reservation.EndsAt)
	}
	// bob's save_env in img_copy: held as what it is; bob owns bob_env; 1024 MB more than the image.
	d3 := deploymentOf(t, st, "node-3")
	wantRoot := int64((origdbtest.ImageSize-origdbtest.SectorStart*512+(1<<20)-1)/(1<<20)) + 1024
	if d3.Process != process.SaveEnv || d3.State != "img_copy" || !strings.Contains(d3.Hold, "save_env/img_copy") ||
		d3.Active() || d3.SystemSize != wantRoot || !d3.OSUpdate {
		t.Errorf("node-3: %s/%s hold %q size %d (want %d)", d3.Process, d3.State, d3.Hold, d3.SystemSize, wantRoot)
	}
	env, err := st.EnvironmentByName(ctx, "bob_env")
	if err != nil || env.OwnerID != bob.ID {
		t.Errorf("bob_env: %+v %v", env, err)
	}
	// Lost in ssh_system: held, shown where it was lost.
	if d4 := deploymentOf(t, st, "node-4"); d4.State != process.Lost || !strings.Contains(d4.Hold, "deploy/lost (in ssh_system)") {
		t.Errorf("node-4: %s/%s hold %q", d4.Process, d4.State, d4.Hold)
	}
	if d5 := deploymentOf(t, st, "node-5"); d5.State != "delete_partition" || d5.Hold == "" {
		t.Errorf("node-5: %s/%s hold %q", d5.Process, d5.State, d5.Hold)
	}
	if d6 := deploymentOf(t, st, "node-6"); d6.Reservation.EndsAt.After(now) || d6.Hold != "" {
		t.Errorf("node-6: ends %s, hold %q", d6.Reservation.EndsAt, d6.Hold)
	}
	if d9 := deploymentOf(t, st, "node-8"); d9.Process != process.Reboot || d9.State != "coming_back" || d9.Hold == "" {
		t.Errorf("node-8: %s/%s hold %q", d9.Process, d9.State, d9.Hold)
	}
	var onNode7 int64
	storetest.DB(st).Model(&store.Deployment{}).Where("node_id = ?", nodeID(t, st, "node-7")).Count(&onNode7)
	if onNode7 != 0 {
		t.Errorf("node-7's initialized row came over")
	}
}

// stepRecorder is every step of every process, recording which deployment it ran for.
type stepRecorder struct {
	mu  sync.Mutex
	ran map[uint][]process.StateName
}

type recordedStep struct {
	r     *stepRecorder
	state process.StateName
}

func (s recordedStep) Exec(_ context.Context, t *engine.Task) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.ran[t.D.ID] = append(s.r.ran[t.D.ID], s.state)
	return nil
}

func (s recordedStep) Post(context.Context, *engine.Task) (bool, error) { return true, nil }

func (r *stepRecorder) HardReboot(_ context.Context, d *store.Deployment) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ran[d.ID] = append(r.ran[d.ID], "hard reboot")
	return nil
}

type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fixedClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// checkEngineLeavesHeldAlone runs pitasks' engine over the import: it starts (resuming lost
// nodes), ticks, and touches nothing but node-6, whose reservation has ended; once every
// reservation has ended, it destroys the held ones too.
func checkEngineLeavesHeldAlone(t *testing.T, st *store.Store, now time.Time) {
	t.Helper()
	ctx := context.Background()
	rec := &stepRecorder{ran: map[uint][]process.StateName{}}
	steps := map[process.StateName]engine.Step{}
	for _, p := range process.All() {
		for _, s := range p.States {
			steps[s.Name] = recordedStep{r: rec, state: s.Name}
		}
	}
	clock := &fixedClock{t: now}
	eng, err := engine.New(engine.Options{Store: st, Steps: steps, Rebooter: rec, Clock: clock, Workers: 8,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Stop(ctx)
	var before []store.Deployment
	if err := storetest.DB(st).Order("id").Find(&before).Error; err != nil {
		t.Fatal(err)
	}
	// A held node cannot be rebooted back into a state of the original's.
	if err := st.RequestProcess(ctx, deploymentOf(t, st, "node-4").ID, process.Reboot); err == nil ||
		!strings.Contains(err.Error(), "nothing to reboot back to") {
		t.Errorf("reboot of the held node-4: %v", err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d6 := deploymentOf(t, st, "node-6").ID
	for i := 0; i < 5; i++ {
		if err := eng.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		eng.Wait()
	}
	for _, b := range before {
		var a store.Deployment
		if err := storetest.DB(st).First(&a, b.ID).Error; err != nil {
			t.Fatal(err)
		}
		if b.ID == d6 {
			if a.Process != process.Destroy {
				t.Errorf("node-6's reservation has ended, and its deployment is in %s/%s", a.Process, a.State)
			}
			continue
		}
		if a.Process != b.Process || a.State != b.State || a.Hold != b.Hold || a.Generation != b.Generation || len(rec.ran[b.ID]) > 0 {
			t.Errorf("deployment %d was acted on: %s/%s hold %q, then %s/%s hold %q; steps %v",
				b.ID, b.Process, b.State, b.Hold, a.Process, a.State, a.Hold, rec.ran[b.ID])
		}
	}
	clock.set(now.Add(100 * time.Hour))
	if err := eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	eng.Wait()
	var left []store.Deployment
	if err := storetest.DB(st).Where("process <> ? OR hold <> ''", process.Destroy).Find(&left).Error; err != nil {
		t.Fatal(err)
	}
	for _, d := range left {
		t.Errorf("deployment %d not destroyed at the end of its reservation: %s/%s hold %q", d.ID, d.Process, d.State, d.Hold)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// checkLogins logs in through pifrontend's login page with the passwords the original's
// users had.
func checkLogins(t *testing.T, st *store.Store, now time.Time) {
	t.Helper()
	cfg := config.Default()
	cfg.Frontend.SessionSecret = "origdb-test-session-secret"
	s, err := web.New(context.Background(), web.Options{Store: st, Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	login := func(email, password string) (*http.Client, int) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := c.Get(srv.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		m := csrfRE.FindSubmatch(body)
		if m == nil {
			t.Fatalf("no CSRF token on the login page")
		}
		res, err = c.PostForm(srv.URL+"/login", url.Values{"email": {email}, "password": {password}, "csrf_token": {string(m[1])}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return c, res.StatusCode
	}
	var bob *http.Client
	for _, tc := range []struct {
		email, password string
		want            int
	}{
		{"alice@example.org", origdbtest.AlicePassword, http.StatusSeeOther},
		{"carol@example.org", origdbtest.BobPassword, http.StatusUnauthorized},
		{"carol@example.org", origdbtest.CarolPassword, http.StatusForbidden}, // waiting for approval, as in the original
		{"Bob@Example.org", origdbtest.BobPassword, http.StatusSeeOther},
	} {
		c, code := login(tc.email, tc.password)
		if code != tc.want {
			t.Errorf("login %s: %d, want %d", tc.email, code, tc.want)
		}
		bob = c
	}
	// Bob sees his held node as what it is. Its OS password is kept, but like every node's it is
	// shown once the node is deployed again, not while a process of the original holds it.
	d3 := deploymentOf(t, st, "node-3")
	if d3.SystemPassword != "Xy12Zt34" {
		t.Errorf("bob's OS password was not kept")
	}
	res, err := bob.Get(fmt.Sprintf("%s/deployments/%d", srv.URL, d3.ID))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := "Imported from the original PiSeduce in save_env/img_copy"; res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		t.Errorf("bob's deployment page (%d) lacks %q", res.StatusCode, want)
	}
	if strings.Contains(string(body), "Xy12Zt34") {
		t.Errorf("bob's held deployment page shows the OS password")
	}
}

func TestImportRefusesBadRows(t *testing.T) {
	ctx := context.Background()
	const row = "INSERT INTO deployment(process, state, node_name, user_id, name, environment, duration, system_size, " +
		"system_pwd, start_date, end_date) VALUES('deploy', 'deployed', '%s', %d, 'bad', '%s', '%s', '8', '%s', " +
		"UTC_TIMESTAMP() - INTERVAL 1 HOUR, %s)"
	origURL, _ := origdbtest.Database(t, "SET FOREIGN_KEY_CHECKS = 0",
		// users 6 and 7
		"INSERT INTO user(email, _password, firstname, lastname, email_confirmed, user_authorized, is_admin) VALUES('not-an-email', '$2b$04$XLouaLpqlrU0OsgVaT1WSupdg2739fpg8PNZgGE1gJqWlegXGZ.XK', 'N', 'E', 0, 1, 0)",
		"INSERT INTO user(email, _password, firstname, lastname, email_confirmed, user_authorized, is_admin) VALUES('eve@example.org', 'clear text', 'Eve', 'E', 0, 1, 0)",
		// deployments 10 to 16
		fmt.Sprintf(row, "node-99", 2, "raspbian_buster", "2", "pw123456", "NULL"),
		fmt.Sprintf(row, "node-9", 99, "raspbian_buster", "2", "pw123456", "NULL"),
		fmt.Sprintf(row, "node-10", 2, "raspbian_buster", "2", "pw123456", "UTC_TIMESTAMP() - INTERVAL 2 HOUR"),
		fmt.Sprintf(row, "node-11", 2, "nope", "2", "pw123456", "NULL"),
		fmt.Sprintf(row, "node-1", 3, "raspbian_buster", "2", "pw123456", "NULL"),
		fmt.Sprintf(row, "node-12", 2, "raspbian_buster", "abc", "pw123456", "NULL"),
		fmt.Sprintf(row, "node-7", 2, "raspbian_buster", "2", `pw\nroot:x`, "NULL"),
	)
	snap, err := Read(ctx, origURL, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	st := ourSite(t, "sqlite")
	empty := counts(t, st)
	for _, dry := range []bool{true, false} {
		_, err = Import(ctx, st, snap, Options{DryRun: dry})
		var pe *ProblemsError
		if !errors.As(err, &pe) {
			t.Fatalf("dry run %t: %v", dry, err)
		}
		wantProblems(t, pe,
			`user 6: e-mail "not-an-email"`,
			"user 7: _password is not a bcrypt hash",
			`deployment 10: node "node-99" is not in this database: import the original's cluster_desc/ first`,
			"deployment 11: user_id 99 is not in the original's user table",
			"deployment 12: end date",
			`deployment 13: environment "nope" is not in this database`,
			`deployment 14: node "node-1" is held by deployment 1 too`,
			`deployment 15: no end_date, and duration "abc" is not a number of hours`,
			"deployment 16: system_pwd holds a control character")
		if strings.Contains(err.Error(), "root:x") || strings.Contains(err.Error(), "clear text") {
			t.Errorf("the problems show a secret:\n%v", err)
		}
		if got := counts(t, st); got != empty {
			t.Fatalf("nothing may be imported, yet rows went from %s to %s", empty, got)
		}
	}
}

// TestReadWithSelectOnly reads the original's database as a user that may only SELECT, and
// reads its local times in the zone given.
func TestReadWithSelectOnly(t *testing.T) {
	ctx := context.Background()
	origURL, db := origdbtest.Database(t)
	u, err := url.Parse(origURL)
	if err != nil {
		t.Fatal(err)
	}
	name := "ro_" + strings.TrimPrefix(u.Path, "/piseduce_test_")
	for _, q := range []string{"CREATE USER '" + name + "'@'%' IDENTIFIED BY 'read-only pw'", "GRANT SELECT ON `" + u.Path[1:] + "`.* TO '" + name + "'@'%'"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { _, _ = db.Exec("DROP USER IF EXISTS '" + name + "'@'%'") })
	u.User = url.UserPassword(name, "read-only pw")
	inUTC, err := Read(ctx, origURL, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	paris := time.FixedZone("CEST", 2*3600)
	inParis, err := Read(ctx, u.String(), paris)
	if err != nil {
		t.Fatalf("read with SELECT only: %v", err)
	}
	a, b := inUTC.Deployments[0].StartDate, inParis.Deployments[0].StartDate
	if a == nil || b == nil || a.Sub(*b) != 2*time.Hour {
		t.Fatalf("start of deployment 1 read in UTC %v, in UTC+2 %v: want 2 hours apart", a, b)
	}
	if _, err := Read(ctx, "sqlite:///tmp/x.db", time.UTC); err == nil || !strings.Contains(err.Error(), "MariaDB") {
		t.Errorf("a sqlite URL: %v", err)
	}
}
