package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

func init() { auth.SetFastHashingForTests() }

// Passwords and secrets of the fixture; no page may show the secrets to anyone.
const (
	testPassword   = "correct horse battery"
	testCommunity  = "community-SECRET-rw"
	testSMTPPass   = "smtp-SECRET-pass"
	testSessionKey = "session-SECRET-key"
	aliceOSPass    = "aliceOSpass1"
	bobOSPass      = "bobOSpass22"
)

// fixture is a small cluster with four kinds of visitors: anonymous, alice (the user who owns
// the objects the routes touch), bob (another user) and an admin.
type fixture struct {
	t    testing.TB
	s    *Server
	st   *store.Store
	cfg  *config.Config
	mail *auth.MailRecorder
	now  time.Time
	log  *strings.Builder

	admin, dave, alice, bob, carol store.User
	sw, sw2                        store.Switch
	nodes                          []store.Node
	env, env2                      store.Environment
	r1, r2, r3                     store.Reservation  // alice deployed, bob deployed, alice not deployed
	d1, d2, d3                     store.Deployment   // alice node-1, alice node-2, bob node-3
	tokens                         map[string]string  // role → API token
	aliceToken2                    store.APIToken     // a token of alice to revoke
	discovery                      store.DiscoveryRun // a finished discovery on sw2
	portRead                       store.PortRequest  // pitasks' reading of sw's ports
}

type fixtureOpt func(*config.Config)

func newFixture(t testing.TB, opts ...fixtureOpt) *fixture {
	t.Helper()
	st := storetest.Open(t, "sqlite")
	return newFixtureOn(t, st, opts...)
}

func newFixtureOn(t testing.TB, st *store.Store, opts ...fixtureOpt) *fixture {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.Frontend.PublicAddress = "http://piseduce.test"
	cfg.Frontend.SessionSecret = testSessionKey
	for _, o := range opts {
		o(cfg)
	}
	f := &fixture{t: t, st: st, cfg: cfg, mail: &auth.MailRecorder{},
		now: time.Now().UTC(), log: &strings.Builder{}, tokens: map[string]string{}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	hash, err := auth.HashPassword(testPassword)
	must(err)
	mk := func(u *store.User) {
		u.PasswordHash = hash
		must(st.CreateUser(ctx, u))
	}
	f.admin = store.User{Email: "root@admin.example", FirstName: "Ada", LastName: "Admin", EmailConfirmed: true, Authorized: true, Admin: true}
	f.dave = store.User{Email: "dave@admin.example", FirstName: "Dave", LastName: "Deputy", EmailConfirmed: true, Authorized: true, Admin: true}
	f.alice = store.User{Email: "alice@example.com", FirstName: "Alice", LastName: "Liddell", EmailConfirmed: true, Authorized: true}
	f.bob = store.User{Email: "bob@example.com", FirstName: "Bob", LastName: "Builder", EmailConfirmed: true, Authorized: true}
	f.carol = store.User{Email: "carol@example.com", FirstName: "Carol", EmailConfirmed: true}
	for _, u := range []*store.User{&f.admin, &f.dave, &f.alice, &f.bob, &f.carol} {
		mk(u)
	}
	f.sw = store.Switch{Name: "sw1", IP: "192.0.2.10", SNMPVersion: "2c", Community: testCommunity, PortCount: 8, MasterPort: 8,
		OID: ".1.3.6.1.2.1.105.1.1.1.3.1"}
	f.sw2 = store.Switch{Name: "sw2", IP: "192.0.2.11", SNMPVersion: "2c", Community: testCommunity, PortCount: 4, OID: ".1.3.6.1.2.1.105.1.1.1.3.1"}
	must(st.CreateSwitch(ctx, &f.sw))
	must(st.CreateSwitch(ctx, &f.sw2))
	for i := 1; i <= 6; i++ {
		model := "RPI4B"
		if i == 6 {
			model = "RPI3Bplus"
		}
		n := store.Node{Name: fmt.Sprintf("node-%d", i), SwitchID: f.sw.ID, Port: i, IP: fmt.Sprintf("10.10.0.%d", i),
			Serial: fmt.Sprintf("%08x", 0xabc0+i), Model: model}
		must(st.CreateNode(ctx, &n))
		f.nodes = append(f.nodes, n)
	}
	f.env = store.Environment{Name: "raspios-lite", Type: store.EnvDefault, Description: "Raspberry Pi OS Lite", ImageName: "raspios.img.gz",
		ImageSize: 1 << 30, SSHUser: "pi", Shell: "bash"}
	f.env2 = store.Environment{Name: "unused", Type: store.EnvDefault, ImageName: "unused.img", SSHUser: "root", Shell: "sh"}
	must(st.CreateEnvironment(ctx, &f.env))
	must(st.CreateEnvironment(ctx, &f.env2))

	start := f.now.Add(-time.Hour)
	reserve := func(u store.User, nodes ...int) store.Reservation {
		var ids []uint
		for _, n := range nodes {
			ids = append(ids, f.nodes[n-1].ID)
		}
		r, err := st.CreateReservation(ctx, store.ReservationRequest{UserID: u.ID, NodeIDs: ids, StartsAt: start, EndsAt: f.now.Add(2 * time.Hour)}, start)
		must(err)
		return *r
	}
	f.r1 = reserve(f.alice, 1, 2)
	f.r2 = reserve(f.bob, 3)
	f.r3 = reserve(f.alice, 4)
	deploy := func(r store.Reservation, pw string) []store.Deployment {
		ds, err := st.DeployReservation(ctx, r.ID, store.Deployment{Name: "exp", EnvironmentID: f.env.ID, SystemPassword: pw}, f.now)
		must(err)
		for _, d := range ds {
			must(storetest.DB(st).Model(&store.Deployment{}).Where("id = ?", d.ID).Updates(map[string]any{"state": "deployed", "queued": false}).Error)
		}
		return ds
	}
	ds := deploy(f.r1, aliceOSPass)
	f.d1, f.d2 = ds[0], ds[1]
	f.d3 = deploy(f.r2, bobOSPass)[0]
	for role, u := range map[string]store.User{"user": f.alice, "other": f.bob, "admin": f.admin} {
		tok := auth.NewToken("psd_")
		must(st.CreateAPIToken(ctx, &store.APIToken{UserID: u.ID, Name: role, Hash: auth.HashToken(tok), ExpiresAt: f.now.Add(store.APITokenTTL)}))
		f.tokens[role] = tok
	}
	f.aliceToken2 = store.APIToken{UserID: f.alice.ID, Name: "old", Hash: auth.HashToken(auth.NewToken("psd_")), ExpiresAt: f.now.Add(store.APITokenTTL)}
	must(st.CreateAPIToken(ctx, &f.aliceToken2))
	must(st.SetSettings(ctx, map[string]string{settingSMTPPassword: testSMTPPass}))
	run, err := st.RequestDiscovery(ctx, f.sw2.ID, []int{1}, f.admin.ID)
	must(err)
	_, err = st.ClaimDiscovery(ctx, "pitasks-test", f.now, time.Minute)
	must(err)
	must(st.AppendDiscoveryOutput(ctx, run.ID, "port 1: no Raspberry Pi answered"))
	must(st.FinishDiscovery(ctx, run.ID, "pitasks-test", nil, f.now))
	f.discovery = *run
	f.portRead = f.pitasksRead(&f.sw, map[int]store.PortState{1: {On: true, Detail: "delivering power"}, 2: {}}, nil)

	logger := slog.New(slog.NewTextHandler(lockedWriter{b: f.log}, nil))
	f.s, err = New(ctx, Options{Store: st, Config: cfg, Logger: logger, Mailer: f.mail,
		Now: func() time.Time { return f.now }})
	must(err)
	return f
}

// pitasksRead records states (or runErr) as pitasks reading sw's ports would: through the
// store methods pkg/requests calls. TestPortRequestPages runs the real pkg/requests.
func (f *fixture) pitasksRead(sw *store.Switch, states map[int]store.PortState, runErr error) store.PortRequest {
	f.t.Helper()
	ctx := context.Background()
	r, err := f.st.RequestPort(ctx, sw.ID, 0, store.PortStatus, f.admin.ID)
	if err == nil {
		var c *store.PortRequest
		if c, err = f.st.ClaimPortRequest(ctx, "pitasks-test", time.Now(), time.Minute); err == nil && (c == nil || c.ID != r.ID) {
			err = fmt.Errorf("claimed %+v, want request %d", c, r.ID)
		}
	}
	if err == nil {
		err = f.st.FinishPortRequest(ctx, r.ID, "pitasks-test", states, runErr, time.Now())
	}
	if err == nil {
		r, err = f.st.PortRequest(ctx, r.ID)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return *r
}

type lockedWriter struct{ b *strings.Builder }

var logMu sync.Mutex

func (w lockedWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return w.b.Write(p)
}

// user returns the fixture user of a role.
func (f *fixture) user(role string) *store.User {
	switch role {
	case "user":
		return &f.alice
	case "other":
		return &f.bob
	case "admin":
		return &f.admin
	}
	return nil
}

// browser is a client with a cookie jar that goes straight to the handler.
type browser struct {
	f       *fixture
	cookies map[string]string
	csrf    string
}

func (f *fixture) browser() *browser { return &browser{f: f, cookies: map[string]string{}} }

// as returns a browser logged in as the role's user ("anon": not logged in, but with the
// anonymous CSRF cookie a visit to the login page gives).
func (f *fixture) as(role string) *browser {
	b := f.browser()
	b.get("/login")
	if u := f.user(role); u != nil {
		res := b.post("/login", url.Values{"email": {u.Email}, "password": {testPassword}})
		if res.Code != http.StatusSeeOther {
			f.t.Fatalf("login as %s: %d %s", role, res.Code, res.Body.String())
		}
		b.get("/account") // a CSRF token of the session
	}
	return b
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (b *browser) do(req *http.Request) *httptest.ResponseRecorder {
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	req.RemoteAddr = "198.51.100.7:5555"
	rec := b.f.serve(req)
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	if m := csrfRE.FindStringSubmatch(rec.Body.String()); m != nil {
		b.csrf = m[1]
	}
	return rec
}

func (b *browser) get(path string) *httptest.ResponseRecorder {
	return b.do(httptest.NewRequest(http.MethodGet, path, nil))
}

// post sends a form with the browser's CSRF token.
func (b *browser) post(path string, form url.Values) *httptest.ResponseRecorder {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf_token"]; !ok {
		form.Set("csrf_token", b.csrf)
	}
	return b.postRaw(path, form)
}

// postRaw sends a form as is.
func (b *browser) postRaw(path string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// api calls the JSON API with the role's token ("anon": none); the answer must match openapi.json.
func (f *fixture) api(role, method, path string, body any) *httptest.ResponseRecorder {
	var r io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		r = strings.NewReader(string(j))
	}
	req := httptest.NewRequest(method, path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := f.tokens[role]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return f.serve(req)
}

// serve answers req into a recorder and checks an API answer against openapi.json. An event
// stream does not end by itself: this viewer reads it for 100 ms after its first event, then
// leaves.
func (f *fixture) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	var w http.ResponseWriter = rec
	if strings.HasSuffix(req.URL.Path, "/events") {
		ctx, cancel := context.WithCancel(req.Context())
		defer cancel()
		req = req.WithContext(ctx)
		w = &leavingViewer{ResponseRecorder: rec, leave: cancel}
	}
	f.s.ServeHTTP(w, req)
	checkAPIAnswer(f.t, req, rec)
	return rec
}

// leavingViewer leaves (cancels its request) 100 ms after the first flush of the stream.
type leavingViewer struct {
	*httptest.ResponseRecorder
	leave context.CancelFunc
	once  sync.Once
}

func (v *leavingViewer) Flush() {
	v.ResponseRecorder.Flush()
	v.once.Do(func() { time.AfterFunc(100*time.Millisecond, v.leave) })
}

// fingerprint is the content of every table but the sessions (logins and logouts create and
// delete them) and the tokens' last-use time: equal fingerprints mean a request changed nothing.
func (f *fixture) fingerprint() string {
	tables := []string{"users", "switches", "nodes", "environments", "reservations", "reservation_nodes",
		"deployments", "state_events", "api_tokens", "settings", "email_tokens", "discovery_runs", "port_requests"}
	var b strings.Builder
	for _, tname := range tables {
		rows, err := storetest.DB(f.st).Raw("SELECT * FROM " + tname).Rows()
		if err != nil {
			f.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				f.t.Fatal(err)
			}
			var parts []string
			for i, c := range cols {
				if c == "last_used_at" {
					continue
				}
				parts = append(parts, fmt.Sprintf("%s=%v", c, vals[i]))
			}
			lines = append(lines, strings.Join(parts, ","))
		}
		rows.Close()
		sort.Strings(lines)
		fmt.Fprintf(&b, "%s:\n%s\n", tname, strings.Join(lines, "\n"))
	}
	return b.String()
}

func newEmptyStore(t testing.TB) *store.Store { return storetest.Open(t, "sqlite") }

// upload sends a multipart form with files and the browser's CSRF token.
func (b *browser) upload(path string, form url.Values, files map[string]string) *httptest.ResponseRecorder {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, vs := range form {
		for _, v := range vs {
			w.WriteField(k, v)
		}
	}
	if form.Get("csrf_token") == "" {
		w.WriteField("csrf_token", b.csrf)
	}
	for name, content := range files {
		fw, _ := w.CreateFormFile("files", name)
		fw.Write([]byte(content))
	}
	w.Close()
	req := httptest.NewRequest(http.MethodPost, path, &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	return b.do(req)
}

func newFixtureConfig() *config.Config {
	cfg := config.Default()
	cfg.Frontend.PublicAddress = "http://piseduce.test"
	cfg.Frontend.SessionSecret = testSessionKey
	return cfg
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
