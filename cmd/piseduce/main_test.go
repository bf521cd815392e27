package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/cli"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/web"
)

func init() { auth.SetFastHashingForTests() }

const testPassword = "correct horse battery"

// site is a real pifrontend on SQLite with three Pi 4 nodes, an environment, a user and an
// admin (whose API token the tests use to play pitasks' part where a state must change).
type site struct {
	st         *store.Store
	url        string
	adminToken string
	user       store.User
	nodes      []store.Node
	env        store.Environment

	mu sync.Mutex
	// asked counts the requests by method and path.
	asked map[string]int
	// proxy, when set, stands between the site and its visitors (a proxy that buffers).
	proxy func(w http.ResponseWriter, r *http.Request, site http.Handler)
}

// requests is how many requests of method and path the site was asked.
func (s *site) requests(method, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[method+" "+path]
}

func newSite(t *testing.T) *site {
	t.Helper()
	ctx := context.Background()
	s := &site{st: storetest.Open(t, "sqlite")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	hash, err := auth.HashPassword(testPassword)
	must(err)
	s.user = store.User{Email: "eve@example.com", FirstName: "Eve", PasswordHash: hash, EmailConfirmed: true, Authorized: true}
	must(s.st.CreateUser(ctx, &s.user))
	admin := store.User{Email: "root@example.com", FirstName: "Root", PasswordHash: hash, EmailConfirmed: true, Authorized: true, Admin: true}
	must(s.st.CreateUser(ctx, &admin))
	s.adminToken = auth.NewToken("psd_")
	must(s.st.CreateAPIToken(ctx, &store.APIToken{UserID: admin.ID, Name: "test", Hash: auth.HashToken(s.adminToken), ExpiresAt: time.Now().Add(time.Hour)}))
	sw := store.Switch{Name: "sw1", IP: "192.0.2.10", SNMPVersion: "2c", Community: "private", PortCount: 8, MasterPort: 8,
		OID: ".1.3.6.1.2.1.105.1.1.1.3.1"}
	must(s.st.CreateSwitch(ctx, &sw))
	for i := 1; i <= 3; i++ {
		n := store.Node{Name: fmt.Sprintf("node-%d", i), SwitchID: sw.ID, Port: i, IP: fmt.Sprintf("192.0.2.%d", 100+i),
			Serial: fmt.Sprintf("%08x", 0xabc0+i), Model: "RPI4B"}
		must(s.st.CreateNode(ctx, &n))
		s.nodes = append(s.nodes, n)
	}
	s.env = store.Environment{Name: "raspios-lite", Type: store.EnvDefault, Description: "Raspberry Pi OS Lite",
		ImageName: "raspios.img.gz", ImageSize: 3 << 29, SSHUser: "pi", Shell: "bash"}
	must(s.st.CreateEnvironment(ctx, &s.env))
	srv, err := web.New(ctx, web.Options{Store: s.st, Config: config.Default(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	must(err)
	s.asked = map[string]int{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.asked[r.Method+" "+r.URL.Path]++
		proxy := s.proxy
		s.mu.Unlock()
		if proxy != nil {
			proxy(w, r, srv)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	s.url = hs.URL
	return s
}

// user is a person at a terminal-less shell: their config folder, what they type.
type user struct {
	t      *testing.T
	config string
	ssh    [][]string // what piseduce ssh ran
	// pollEvery and eventsWait are the app's.
	pollEvery, eventsWait time.Duration
}

func newUser(t *testing.T) *user {
	return &user{t: t, config: t.TempDir(), pollEvery: 10 * time.Millisecond, eventsWait: time.Minute}
}

// run runs piseduce args with stdin; its exit status, stdout and stderr.
func (u *user) run(stdin string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	a := &app{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, pollEvery: u.pollEvery,
		eventsWait: u.eventsWait, getenv: func(k string) string {
			if k == "XDG_CONFIG_HOME" {
				return u.config
			}
			return ""
		},
		execSSH: func(argv []string) error { u.ssh = append(u.ssh, argv); return nil }}
	code := cli.Exit("piseduce", a.run(args), &out, &errOut)
	return code, out.String(), errOut.String()
}

// ok runs piseduce and fails the test unless it exits 0; its stdout.
func (u *user) ok(stdin string, args ...string) string {
	u.t.Helper()
	code, out, errOut := u.run(stdin, args...)
	if code != 0 {
		u.t.Fatalf("piseduce %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs piseduce and fails the test unless it exits code with want in stderr.
func (u *user) fails(code int, want, stdin string, args ...string) {
	u.t.Helper()
	c, out, errOut := u.run(stdin, args...)
	if c != code || !strings.Contains(errOut, want) {
		u.t.Errorf("piseduce %s: exit %d, stderr %q (stdout %q); want %d and %q", strings.Join(args, " "), c, errOut, out, code, want)
	}
}

func (u *user) login(s *site) {
	u.t.Helper()
	u.ok(testPassword+"\n", "login", "--url", s.url+"/", "--email", s.user.Email)
}

func TestLoginKeepsTheTokenPrivate(t *testing.T) {
	s := newSite(t)
	u := newUser(t)
	u.fails(1, "not logged in", "", "nodes")
	u.fails(2, "give the site with --url", testPassword+"\n", "login", "--email", s.user.Email)
	u.fails(2, "is not a site address", testPassword+"\n", "login", "--url", "pimaster:9000", "--email", s.user.Email)
	u.fails(2, "give --email when stdin is not a terminal", testPassword+"\n", "login", "--url", s.url)
	u.fails(1, "Wrong e-mail or password.", "wrong\n", "login", "--url", s.url, "--email", s.user.Email)
	if _, err := os.Stat(filepath.Join(u.config, "piseduce", loginFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed login kept something: %v", err)
	}
	out := u.ok(testPassword+"\n", "login", "--url", s.url, "--email", s.user.Email)
	if !strings.Contains(out, "Logged in to "+s.url+" as eve@example.com until ") || strings.Contains(out, "psd_") {
		t.Errorf("login said %q", out)
	}
	dir := filepath.Join(u.config, "piseduce")
	for path, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, loginFile): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v %v, want mode %v", path, fi.Mode(), err, mode)
		}
	}
	u.ok("", "nodes")
	// Without --url: the site logged in to before.
	u.ok(testPassword+"\n", "login", "--email", s.user.Email)

	if err := os.Chmod(filepath.Join(dir, loginFile), 0o644); err != nil {
		t.Fatal(err)
	}
	u.fails(1, "is readable or writable by others (mode 0644)", "", "nodes")
	if err := os.Chmod(filepath.Join(dir, loginFile), 0o600); err != nil {
		t.Fatal(err)
	}

	l, _, err := (&app{getenv: func(string) string { return u.config }}).loadLogin()
	if err != nil {
		t.Fatal(err)
	}
	out = u.ok("", "logout")
	if !strings.Contains(out, "Logged out of "+s.url) {
		t.Errorf("logout said %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, loginFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("logout left the token: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/api/v1/nodes", nil)
	req.Header.Set("Authorization", "Bearer "+l.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("the token still opens the API after logout: %d", res.StatusCode)
	}
}

// TestAUserSession: reserve, list, extend, deploy, ssh, destroy and release, as a user would.
func TestAUserSession(t *testing.T) {
	s := newSite(t)
	u := newUser(t)
	u.login(s)
	if out := u.ok("", "nodes"); !strings.Contains(out, "node-1  RPI4B  free") {
		t.Errorf("nodes:\n%s", out)
	}
	if out := u.ok("", "envs"); !strings.Contains(out, "raspios-lite  pi        1.5 GiB  Raspberry Pi OS Lite") {
		t.Errorf("envs:\n%s", out)
	}
	out := u.ok("", "reserve", "-n", "2", "--model", "RPI4B", "--for", "2h")
	var id uint
	if _, err := fmt.Sscanf(out, "Reservation %d made: ", &id); err != nil || !strings.Contains(out, "node-1, node-2 from ") {
		t.Fatalf("reserve said %q (%v)", out, err)
	}
	u.fails(1, "no node named \"node-9\"", "", "reserve", "--nodes", "node-9", "--for", "1h")
	u.ok("", "reserve", "--nodes", "node-3", "--for", "1h", "--start", time.Now().Add(48*time.Hour).Format(time.RFC3339))
	if out := u.ok("", "reservations", "--json"); strings.Count(out, `"id":`) != 2 {
		t.Errorf("reservations --json:\n%s", out)
	}
	if out := u.ok("", "extend", fmt.Sprint(id), "--by", "1h"); !strings.Contains(out, fmt.Sprintf("Reservation %d extended", id)) {
		t.Errorf("extend said %q", out)
	}
	u.fails(1, "reservation 1 also holds node-2", "", "deploy", "--nodes", "node-1", "--env", "raspios-lite")
	u.fails(1, `no environment named "ubuntu"`, "", "deploy", fmt.Sprint(id), "--env", "ubuntu")
	keyFile := filepath.Join(t.TempDir(), "id.pub")
	if err := os.WriteFile(keyFile, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGp2k8a5Zs3Zb0QjOQdMuS6c6yUNU4pGf3Du0PFqxFvB eve@laptop\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := u.ok("secretOS1\n", "deploy", "--nodes", "node-2,node-1", "--env", "raspios-lite", "--ssh-key", keyFile, "--password-from-stdin"); out != "Deploying raspios-lite on node-1, node-2.\n" {
		t.Errorf("deploy said %q", out)
	}

	// ssh: not before the node is deployed and its key pinned; then the system's ssh with it.
	u.fails(1, "node-1 is not deployed", "", "ssh", "node-1")
	ds, err := s.st.Deployments(context.Background(), store.DeploymentFilter{UserID: s.user.ID})
	if err != nil || len(ds) != 2 {
		t.Fatalf("%d deployments, %v", len(ds), err)
	}
	for _, d := range ds {
		s.adminPost(t, fmt.Sprintf("/api/v1/admin/deployments/%d/state", d.ID), `{"process": "deploy", "state": "deployed", "reason": "test"}`)
	}
	u.fails(1, "the site has no host key for node-1's system", "", "ssh", "node-1")
	const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx0ZKk3bSi1AEbWvnJ0n6TQnlaBBJe8ugv4zAuVYpjH"
	if err := s.st.PinHostKey(context.Background(), remote.RoleSystem, s.nodes[0].ID, hostKey); err != nil {
		t.Fatal(err)
	}
	u.ok("", "ssh", "node-1", "-i", "/k/id", "-o", "ConnectTimeout=5", "--", "ls", "-l", "; rm -rf /")
	known := filepath.Join(u.config, "piseduce", "known_hosts", "node-1")
	want := []string{"ssh", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + known, "-o", "GlobalKnownHostsFile=/dev/null",
		"-p", "22", "-l", "pi", "-i", "/k/id", "-o", "ConnectTimeout=5", "--", "192.0.2.101", "ls", "-l", "; rm -rf /"}
	if len(u.ssh) != 1 || strings.Join(u.ssh[0], "\x00") != strings.Join(want, "\x00") {
		t.Errorf("ssh ran %q, want %q", u.ssh, want)
	}
	if b, err := os.ReadFile(known); err != nil || string(b) != "192.0.2.101 "+hostKey+"\n" {
		t.Errorf("known_hosts: %q %v", b, err)
	}

	u.fails(1, "node-3 has no deployment of yours", "", "destroy", "node-3")
	if out := u.ok("", "destroy", "--all"); out != "node-1: being destroyed.\nnode-2: being destroyed.\n" {
		t.Errorf("destroy --all said %q", out)
	}
	u.fails(1, "node-1 is in reservation 1 with node-1, node-2: the site releases whole reservations", "", "release", "node-1")
	u.fails(1, "node-3 is not reserved by you now", "", "release", "node-3")
	if out := u.ok("", "release", "node-1", "node-2"); !strings.Contains(out, "Released node-1, node-2 (reservation 1)") {
		t.Errorf("release said %q", out)
	}
	// Held by nobody, being destroyed (pitasks will free them), the future reservation kept.
	if out := u.ok("", "nodes"); strings.Count(out, "destroy: destroying") != 2 || strings.Contains(out, "Eve") {
		t.Errorf("after release:\n%s", out)
	}
	if out := u.ok("", "reservations"); !strings.HasPrefix(out, "ID  FROM") || strings.Count(out, "\n") != 2 || !strings.Contains(out, "  node-3\n") {
		t.Errorf("reservations after release:\n%s", out)
	}
}

// adminPost plays pitasks' part through the admin API.
func (s *site) adminPost(t *testing.T, path, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.adminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("POST %s: %d %s", path, res.StatusCode, b)
	}
}

// deployAndWait runs deploy --wait on two nodes while playing pitasks' part: one node
// deployed, the other failed; it must exit 1 naming the node given up, within a minute.
func deployAndWait(t *testing.T, s *site, u *user) {
	t.Helper()
	u.login(s)
	u.ok("", "reserve", "--nodes", "node-1,node-2", "--for", "1h")
	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := u.run("", "deploy", "--nodes", "node-1,node-2", "--env", "raspios-lite", "--wait")
		done <- result{code, out, errOut}
	}()
	var ds []store.Deployment
	for deadline := time.Now().Add(2 * time.Minute); len(ds) < 2; time.Sleep(10 * time.Millisecond) {
		var err error
		if ds, err = s.st.Deployments(context.Background(), store.DeploymentFilter{UserID: s.user.ID}); err != nil || time.Now().After(deadline) {
			t.Fatalf("no deployments: %v", err)
		}
	}
	for i, state := range []string{"deployed", "failed"} {
		s.adminPost(t, fmt.Sprintf("/api/v1/admin/deployments/%d/state", ds[i].ID), `{"process": "deploy", "state": "`+state+`", "reason": "test"}`)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatal("a minute after the last change, deploy --wait has not seen it")
	}
	if r.code != 1 || !strings.Contains(r.errOut, "not deployed: "+ds[1].Node.Name+" failed") {
		t.Errorf("exit %d, stderr %q, want 1 naming the failed node", r.code, r.errOut)
	}
	if !strings.Contains(r.out, "\n"+ds[0].Node.Name+": deployed\n") {
		t.Errorf("no line saying %s is deployed:\n%s", ds[0].Node.Name, r.out)
	}
}

// TestDeployWaitFollowsTheSite: deploy --wait follows the site's event stream: it reads the
// deployments once, then the news comes pushed (it would poll once an hour here).
func TestDeployWaitFollowsTheSite(t *testing.T) {
	s := newSite(t)
	u := newUser(t)
	u.pollEvery = time.Hour
	deployAndWait(t, s, u)
	if n, m := s.requests("GET", "/api/v1/events"), s.requests("GET", "/api/v1/deployments"); n != 1 || m != 1 {
		t.Errorf("%d event streams and %d reads of the deployments; want 1 and 1", n, m)
	}
}

// TestDeployWaitPollsWithoutEvents: without the event stream (a site without one, a proxy
// that buffers answers), deploy --wait polls the site instead.
func TestDeployWaitPollsWithoutEvents(t *testing.T) {
	for name, proxy := range map[string]func(w http.ResponseWriter, r *http.Request, site http.Handler){
		"404": func(w http.ResponseWriter, r *http.Request, site http.Handler) {
			if r.URL.Path == "/api/v1/events" {
				http.NotFound(w, r)
				return
			}
			site.ServeHTTP(w, r)
		},
		"a proxy that buffers": func(w http.ResponseWriter, r *http.Request, site http.Handler) {
			if r.URL.Path == "/api/v1/events" {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				<-r.Context().Done() // the site's events are held until the answer ends
				return
			}
			site.ServeHTTP(w, r)
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := newSite(t)
			s.proxy = proxy
			u := newUser(t)
			u.eventsWait = 300 * time.Millisecond
			deployAndWait(t, s, u)
			if n, m := s.requests("GET", "/api/v1/events"), s.requests("GET", "/api/v1/deployments"); n != 1 || m < 2 {
				t.Errorf("%d event streams and %d reads of the deployments; want 1 and polling", n, m)
			}
		})
	}
}
