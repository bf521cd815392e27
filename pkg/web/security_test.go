package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// unsafePageRoutes are the POST routes of the pages, with their concrete paths and forms.
func (f *fixture) unsafePageRoutes() map[string]routeCase {
	out := map[string]routeCase{}
	for k, tc := range f.routeCases() {
		if strings.HasPrefix(k, "POST /") && !strings.HasPrefix(k, "POST /api/") {
			out[k] = tc
		}
	}
	return out
}

// TestCSRF: every page POST without the token, with another visitor's token, or from another
// site is refused with 403 and changes nothing.
func TestCSRF(t *testing.T) {
	for key, tc := range newFixture(t).unsafePageRoutes() {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			role := "user"
			if strings.Contains(key, "/admin/") {
				role = "admin"
			}
			b := f.as(role)
			other := f.as("other")
			before := f.fingerprint()
			form := func(tok string) url.Values {
				v := url.Values{}
				for k, x := range tc.form {
					v[k] = x
				}
				if tok != "" {
					v.Set("csrf_token", tok)
				}
				return v
			}
			for name, res := range map[string]int{
				"no token":             b.postRaw(tc.path, form("")).Code,
				"another's token":      b.postRaw(tc.path, form(other.csrf)).Code,
				"a made-up token":      b.postRaw(tc.path, form("AAAA"+b.csrf[4:])).Code,
				"an anonymous token":   b.postRaw(tc.path, form(newFixtureAnonToken(f))).Code,
				"from another website": b.postOrigin(tc.path, form(b.csrf), "https://evil.example").StatusCode,
			} {
				if res != http.StatusForbidden {
					t.Errorf("%s: status %d, want 403", name, res)
				}
			}
			if f.fingerprint() != before {
				t.Error("a request without a valid CSRF token changed something")
			}
		})
	}
}

func newFixtureAnonToken(f *fixture) string {
	b := f.browser()
	b.get("/login")
	return b.csrf
}

func (b *browser) postOrigin(path string, form url.Values, origin string) *http.Response {
	req, _ := http.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	return b.do(req).Result()
}

// TestNoLeaks: no page shows a secret, another user's e-mail or password, or a stack trace.
func TestNoLeaks(t *testing.T) {
	f := newFixture(t)
	secrets := []string{testCommunity, testSMTPPass, testSessionKey, bobOSPass, "goroutine ", ".go:"}
	pages := []string{}
	for k, tc := range f.routeCases() {
		if strings.HasPrefix(k, "GET /") && !strings.HasPrefix(k, "GET /api/") {
			pages = append(pages, tc.path)
		}
	}
	pages = append(pages, "/nodes/"+fmt.Sprint(f.nodes[2].ID), "/deployments/"+fmt.Sprint(f.d1.ID))
	alice := f.as("user")
	for _, p := range pages {
		body := alice.get(p).Body.String()
		for _, s := range append(secrets, f.bob.Email, f.admin.Email, f.carol.Email, f.dave.Email) {
			if strings.Contains(body, s) {
				t.Errorf("%s shows %q to alice", p, s)
			}
		}
	}
	admin := f.as("admin")
	for _, p := range append(pages, "/admin/users", "/admin/settings", "/admin/switches/new") {
		body := admin.get(p).Body.String()
		for _, s := range append(secrets, aliceOSPass) {
			if strings.Contains(body, s) {
				t.Errorf("%s shows %q to an admin", p, s)
			}
		}
	}
	// API answers: the OS password only to its owner.
	for role, wantPw := range map[string]bool{"user": true, "admin": false} {
		body := f.api(role, "GET", "/api/v1/deployments/"+fmt.Sprint(f.d1.ID), nil).Body.String()
		if strings.Contains(body, aliceOSPass) != wantPw {
			t.Errorf("API as %s: password shown = %v", role, !wantPw)
		}
	}
	for _, p := range []string{"/api/v1/admin/switches", "/api/v1/admin/switches/" + fmt.Sprint(f.sw.ID), "/api/v1/admin/deployments", "/api/v1/admin/users"} {
		body := f.api("admin", "GET", p, nil).Body.String()
		for _, s := range append(secrets, aliceOSPass, "password_hash", "PasswordHash") {
			if strings.Contains(body, s) {
				t.Errorf("API %s shows %q", p, s)
			}
		}
	}
	for _, p := range []string{"/api/v1/nodes", "/api/v1/reservations", "/api/v1/deployments"} {
		body := f.api("other", "GET", p, nil).Body.String()
		for _, s := range []string{testCommunity, testSMTPPass, testSessionKey, aliceOSPass, f.alice.Email} {
			if strings.Contains(body, s) {
				t.Errorf("API %s shows %q to bob", p, s)
			}
		}
	}
	// The resources page names holders, never their e-mails.
	if body := f.as("other").get("/resources").Body.String(); !strings.Contains(body, "Alice Liddell") || strings.Contains(body, f.alice.Email) {
		t.Error("resources page: holder name missing or e-mail shown")
	}
	// The deployment page shows alice her password.
	if !strings.Contains(alice.get("/deployments/"+fmt.Sprint(f.d1.ID)).Body.String(), aliceOSPass) {
		t.Error("the owner does not see the OS password")
	}
}

// TestInternalError: a failing database gives a 500 with a reference, never the error's text.
func TestInternalError(t *testing.T) {
	f := newFixture(t)
	b := f.as("user")
	storetest.DB(f.st).Exec("DROP TABLE reservation_nodes")
	for _, p := range []string{"/resources", "/deployments"} {
		res := b.get(p)
		body := res.Body.String()
		if res.Code != 500 || !regexp.MustCompile(`reference [0-9a-f]{8}`).MatchString(body) {
			t.Fatalf("%s: %d %s", p, res.Code, body)
		}
		for _, s := range []string{"reservation_nodes", "SQL", "sqlite", "no such table"} {
			if strings.Contains(body, s) {
				t.Errorf("the 500 page shows %q", s)
			}
		}
	}
	res := f.api("user", "GET", "/api/v1/nodes", nil)
	if res.Code != 500 || strings.Contains(res.Body.String(), "reservation_nodes") || !strings.Contains(res.Body.String(), `"error"`) {
		t.Errorf("API 500: %s", res.Body.String())
	}
	if !strings.Contains(f.log.String(), "no such table") {
		t.Error("the error is not in the log")
	}
}

// TestEscaping: what users type comes back escaped in every page that shows it.
func TestEscaping(t *testing.T) {
	f := newFixture(t)
	const evil = `x"><script>alert(1)</script>`
	b := f.as("user")
	res := b.post("/reservations/"+fmt.Sprint(f.r3.ID)+"/deploy", url.Values{"name": {evil}, "environment": {fmt.Sprint(f.env.ID)},
		"system_size": {"0"}, "init_script": {"echo '</pre><script>alert(2)</script>'"}})
	if res.Code != http.StatusSeeOther {
		t.Fatalf("deploy: %d %s", res.Code, res.Body.String())
	}
	ds, _ := f.st.Deployments(context.Background(), store.DeploymentFilter{ReservationID: f.r3.ID})
	if len(ds) != 1 || ds[0].Name != evil {
		t.Fatalf("the name did not round-trip: %+v", ds)
	}
	for _, p := range []string{"/deployments", "/deployments/" + fmt.Sprint(ds[0].ID)} {
		body := b.get(p).Body.String()
		if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)") {
			t.Errorf("%s: not escaped", p)
		}
	}
	// A form shown again after an error keeps the input, escaped.
	body := b.post("/reservations/"+fmt.Sprint(f.r3.ID)+"/deploy", url.Values{"name": {evil}, "environment": {"999"}}).Body.String()
	if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;") {
		t.Error("the deploy form shown again is not escaped")
	}
	// Sign-up names are shown to admins and other users.
	anon := f.browser()
	anon.get("/signup")
	anon.post("/signup", url.Values{"email": {"eve@example.org"}, "first_name": {evil}, "password": {testPassword}, "password_confirm": {testPassword}})
	if body := f.as("admin").get("/admin/users").Body.String(); strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;") {
		t.Error("admin users page not escaped")
	}
}

// liveServer serves f's database on a real loopback socket and returns its base URL. The
// server's clock is now (f.now when nil: then the test must not change f.now meanwhile).
// Its API answers are checked against openapi.json, and its event streams last 100 ms (a test
// reading one to its end would wait minutes).
func liveServer(t *testing.T, f *fixture, now func() time.Time) string {
	t.Helper()
	if now == nil {
		now = func() time.Time { return f.now }
	}
	s, err := New(context.Background(), Options{Store: f.st, Config: f.cfg, Logger: quietLogger(), Mailer: f.mail, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	s.eventsMaxAge = 100 * time.Millisecond
	return checkedServer(t, s).URL
}

// netClient is a browser at a chosen loopback address (127.0.0.x) talking to a live server
// over TCP: the server sees that address as the client's.
type netClient struct {
	t    testing.TB
	base string
	hc   *http.Client
	csrf string
	// header is added to every request.
	header http.Header
}

func newNetClient(t testing.TB, base, ip string) *netClient {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &netClient{t: t, base: base, hc: &http.Client{Jar: jar, Transport: tr, Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends req and returns the answer with its body read; the CSRF token of a form in it is kept.
func (c *netClient) do(req *http.Request) (*http.Response, string) {
	for k, v := range c.header {
		req.Header[k] = v
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Errorf("%s %s: %v", req.Method, req.URL.Path, err)
		return &http.Response{Header: http.Header{}}, ""
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Errorf("%s %s: reading the answer: %v", req.Method, req.URL.Path, err)
	}
	if m := csrfRE.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return res, string(b)
}

func (c *netClient) get(path string) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	return c.do(req)
}

func (c *netClient) post(path string, form url.Values) (*http.Response, string) {
	if form.Get("csrf_token") == "" {
		form.Set("csrf_token", c.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// login posts the login form (fetching the page first for its CSRF token).
func (c *netClient) login(email, password string) (*http.Response, string) {
	if c.csrf == "" {
		c.get("/login")
	}
	return c.post("/login", url.Values{"email": {email}, "password": {password}})
}

// TestLoginThrottle, on a live server with clients at several loopback addresses: wrong
// passwords slow down the account at the address they come from, with growing delays and no
// lockout; the owner at another address gets in at once; many e-mails from one address slow
// that address down; a concurrent flood cannot get more checks than the allowance.
func TestLoginThrottle(t *testing.T) {
	f := newFixture(t)
	var later atomic.Int64 // how far the server's clock is ahead of f.now
	base := liveServer(t, f, func() time.Time { return f.now.Add(time.Duration(later.Load())) })
	alice := f.alice.Email
	codes := func(c *netClient, n int, email func(i int) string) map[int]int {
		out := map[int]int{}
		for i := 0; i < n; i++ {
			res, _ := c.login(email(i), "not the password")
			out[res.StatusCode]++
		}
		return out
	}

	// 20 wrong passwords for alice from one address: 5 free, the 6th starts the delays.
	stranger := newNetClient(t, base, "127.0.0.2")
	if got := codes(stranger, 20, func(int) string { return alice }); got[401] != 6 || got[429] != 14 {
		t.Fatalf("20 wrong passwords from one address: %v, want 6×401 then 14×429", got)
	}
	owner := newNetClient(t, base, "127.0.0.3")
	if res, body := owner.login(alice, testPassword); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the owner at another address: %d %.200s", res.StatusCode, body)
	}
	// At the stranger's address the right password waits as well, for the delay only; each new
	// failure doubles it.
	res, body := stranger.login(alice, testPassword)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "1" || !strings.Contains(body, "Try again in 1.0s") {
		t.Fatalf("right password during the delay: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	later.Add(int64(time.Second))
	if res, _ := stranger.login(alice, "still not it"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after the delay: %d", res.StatusCode)
	}
	if res, _ := stranger.login(alice, testPassword); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "2" {
		t.Fatalf("the next delay: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	later.Add(int64(2 * time.Second))
	if res, _ := stranger.login(alice, testPassword); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the right password once the delay is over: %d", res.StatusCode)
	}

	// Distinct e-mails from one address: 20 free failures, then the address waits, whatever
	// the account; another address does not.
	sprayer := newNetClient(t, base, "127.0.0.4")
	if got := codes(sprayer, 25, func(i int) string { return fmt.Sprintf("nobody%d@example.org", i) }); got[401] != 21 || got[429] != 4 {
		t.Fatalf("25 e-mails from one address: %v, want 21×401 then 4×429", got)
	}
	if res, _ := sprayer.login(f.bob.Email, testPassword); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("bob at the sprayer's address: %d", res.StatusCode)
	}
	if res, _ := newNetClient(t, base, "127.0.0.5").login(f.bob.Email, testPassword); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob at another address: %d", res.StatusCode)
	}

	// A concurrent flood from one address: exactly the free failures are checked, however the
	// requests interleave; the others wait (429) or find the address's queue full (503).
	var mu sync.Mutex
	flood := map[int]int{}
	throttled := false
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		c := newNetClient(t, base, "127.0.0.6")
		c.get("/login")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				mu.Lock()
				stop := throttled
				mu.Unlock()
				if stop {
					return
				}
				res, _ := c.post("/login", url.Values{"email": {fmt.Sprintf("flood%d-%d@example.org", w, i)}, "password": {"x"}})
				mu.Lock()
				flood[res.StatusCode]++
				throttled = throttled || res.StatusCode == http.StatusTooManyRequests
				mu.Unlock()
				if res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
			}
		}()
	}
	wg.Wait()
	if flood[401] != 21 || flood[429] == 0 || flood[401]+flood[429]+flood[503] != sumCounts(flood) {
		t.Fatalf("concurrent flood: %v, want exactly 21×401, then 429 (or 503)", flood)
	}
}

// TestTrustedProxies: behind a proxy of [frontend] trusted_proxies, clients are told apart by
// the address the proxy forwards, so one client's failures do not slow the others down; a
// client that is not a trusted proxy cannot choose its address with X-Forwarded-For.
func TestTrustedProxies(t *testing.T) {
	f := newFixture(t, func(c *config.Config) {
		c.Frontend.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	base := liveServer(t, f, nil)
	behind := func(client string) *netClient {
		c := newNetClient(t, base, "127.0.0.1")
		c.header = http.Header{"X-Forwarded-For": {client}}
		return c
	}
	attacker := behind("198.51.100.1")
	for i := 0; i < 6; i++ {
		attacker.login(f.alice.Email, "wrong")
	}
	if res, _ := attacker.login(f.alice.Email, testPassword); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the client behind the proxy is not slowed: %d", res.StatusCode)
	}
	if res, _ := behind("203.0.113.5, 198.51.100.2").login(f.alice.Email, testPassword); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("another client behind the same proxy: %d", res.StatusCode)
	}
	var ips []string
	storetest.DB(f.st).Model(&store.Session{}).Where("user_id = ?", f.alice.ID).Order("id DESC").Limit(1).Pluck("ip", &ips)
	if len(ips) != 1 || ips[0] != "198.51.100.2" {
		t.Errorf("the session's address: %v, want the one the proxy forwarded", ips)
	}
	// Not a trusted proxy: a new X-Forwarded-For each time changes nothing.
	direct := newNetClient(t, base, "127.0.0.2")
	for i := 0; i < 6; i++ {
		direct.header = http.Header{"X-Forwarded-For": {fmt.Sprintf("192.0.2.%d", i)}}
		direct.login(f.alice.Email, "wrong")
	}
	if res, _ := direct.login(f.alice.Email, testPassword); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a direct client escaped its delay with X-Forwarded-For: %d", res.StatusCode)
	}
}

func sumCounts(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestOwnerGetsInDuringAFlood: while wrong passwords for an account pour in from several
// addresses at once, its owner at another address is let in (the hashing gate serves
// addresses without failures first), /healthz answers, and the flood is slowed down.
func TestOwnerGetsInDuringAFlood(t *testing.T) {
	f := newFixture(t)
	base := liveServer(t, f, nil)
	ctx, stop := context.WithCancel(context.Background())
	var wg, started sync.WaitGroup
	var throttled atomic.Int64
	for a := 10; a < 16; a++ {
		for range 3 {
			c := newNetClient(t, base, fmt.Sprintf("127.0.0.%d", a))
			c.get("/login")
			wg.Add(1)
			started.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/login", strings.NewReader(url.Values{
						"email": {f.alice.Email}, "password": {fmt.Sprint("guess ", i)}, "csrf_token": {c.csrf}}.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					res, err := c.hc.Do(req)
					if i == 2 {
						started.Done() // three requests: this connection's flood is on
					}
					if err != nil {
						continue
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode == http.StatusTooManyRequests {
						throttled.Add(1)
					}
				}
			}()
		}
	}
	defer func() { stop(); wg.Wait() }()
	started.Wait()
	owner := newNetClient(t, base, "127.0.0.3")
	if res, body := owner.login(f.alice.Email, testPassword); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the owner during the flood: %d %.300s", res.StatusCode, body)
	}
	if res, _ := owner.get("/healthz"); res.StatusCode != http.StatusOK {
		t.Fatalf("healthz during the flood: %d", res.StatusCode)
	}
	if res, _ := owner.get("/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("the owner's session: %d", res.StatusCode)
	}
	if throttled.Load() == 0 {
		t.Fatal("the flood was never slowed down")
	}
}

// TestSessionCookie: HttpOnly, SameSite=Lax, Secure and __Host- behind TLS; logout ends it.
func TestSessionCookie(t *testing.T) {
	for _, secure := range []bool{false, true} {
		f := newFixture(t, func(c *config.Config) { c.Frontend.SecureCookies = secure })
		b := f.browser()
		b.get("/login")
		req, _ := http.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"email": {f.alice.Email}, "password": {testPassword}, "csrf_token": {b.csrf}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res := b.do(req).Result()
		var sess *http.Cookie
		for _, c := range res.Cookies() {
			if strings.HasSuffix(c.Name, sessionCookie) {
				sess = c
			}
		}
		if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Secure != secure ||
			strings.HasPrefix(sess.Name, "__Host-") != secure || res.Header.Get("Strict-Transport-Security") != "" && !secure {
			t.Fatalf("secure=%v: cookie %+v", secure, sess)
		}
		if b.get("/resources").Code != http.StatusOK {
			t.Fatal("session does not work")
		}
		b.post("/logout", nil)
		if b.get("/resources").Code != http.StatusSeeOther {
			t.Fatal("still logged in after logout")
		}
		// The old cookie is dead on the server side too.
		b.cookies[sess.Name] = sess.Value
		if b.get("/resources").Code != http.StatusSeeOther {
			t.Fatal("the logged-out session cookie still works")
		}
	}
}

// TestRevokedUsersAndPasswordChange: a password change ends the other sessions and revokes
// every API token of the user; wrong current passwords slow the change down; a revoked user's
// sessions and tokens stop at once, and approving them again brings no token back.
func TestRevokedUsersAndPasswordChange(t *testing.T) {
	f := newFixture(t)
	alice1, alice2 := f.as("user"), f.as("user")
	if res := f.api("user", "GET", "/api/v1/nodes", nil); res.Code != http.StatusOK {
		t.Fatalf("alice's token before: %d", res.Code)
	}
	change := func(old string) *httptest.ResponseRecorder {
		return alice1.post("/account/password", url.Values{"old_password": {old}, "new_password": {"a new long password"}, "new_password_confirm": {"a new long password"}})
	}
	if res := change("wrong"); res.Code != http.StatusBadRequest {
		t.Fatalf("wrong old password: %d", res.Code)
	}
	res := change(testPassword)
	if res.Code != http.StatusSeeOther {
		t.Fatalf("change: %d", res.Code)
	}
	if page := alice1.get("/account"); page.Code != http.StatusOK || alice2.get("/account").Code != http.StatusSeeOther {
		t.Fatal("the other session survived the password change, or this one did not")
	} else if !strings.Contains(page.Body.String(), "API tokens revoked") {
		t.Error("the password change does not say the tokens are revoked")
	}
	if res := f.api("user", "GET", "/api/v1/nodes", nil); res.Code != http.StatusUnauthorized {
		t.Fatalf("a token survived its owner's password change: %d", res.Code)
	}
	if toks, _ := f.st.APITokens(context.Background(), f.alice.ID); len(toks) != 0 {
		t.Fatalf("%d tokens left after the password change", len(toks))
	}
	for i := 0; i < 6; i++ {
		change("still wrong")
	}
	if res := change("a new long password"); res.Code != http.StatusTooManyRequests {
		t.Fatalf("the right password after 6 wrong ones: %d, want 429", res.Code)
	}

	admin := f.as("admin")
	bob := f.as("other")
	for _, action := range []string{"revoke", "approve"} {
		if res := admin.post("/admin/users/"+fmt.Sprint(f.bob.ID)+"/"+action, nil); res.Code != http.StatusSeeOther {
			t.Fatalf("%s: %d", action, res.Code)
		}
		if action == "revoke" && bob.get("/account").Code != http.StatusSeeOther {
			t.Fatal("a revoked user is still logged in")
		}
		if res := f.api("other", "GET", "/api/v1/nodes", nil); res.Code != http.StatusUnauthorized {
			t.Fatalf("after %s, the user's token works: %d", action, res.Code)
		}
	}
	// Admins cannot lock themselves out.
	if res := admin.post("/admin/users/"+fmt.Sprint(f.admin.ID)+"/revoke", nil); res.Code != http.StatusSeeOther ||
		admin.get("/admin/users").Code != http.StatusOK {
		t.Fatal("an admin revoked themselves")
	}
}

// TestAPITokenLifetimeAndScope: a token made on the Account page lasts the days chosen (90
// preselected) and is refused once expired, with a message saying so; a read-only token reads
// and gets 403 on every other method, changing nothing.
func TestAPITokenLifetimeAndScope(t *testing.T) {
	f := newFixture(t)
	alice := f.as("user")
	page := alice.get("/account").Body.String()
	if !strings.Contains(page, `<option value="90" selected>`) {
		t.Fatal("the Account page does not preselect 90 days")
	}
	tokRE := regexp.MustCompile(`id="new-token">(psd_[A-Za-z0-9_-]+)<`)
	create := func(form url.Values) (string, *httptest.ResponseRecorder) {
		res := alice.post("/account/tokens", form)
		m := tokRE.FindStringSubmatch(res.Body.String())
		if m == nil {
			return "", res
		}
		return m[1], res
	}
	for _, days := range []string{"", "0", "1000", "-7", "ninety"} {
		if tok, res := create(url.Values{"name": {"bad"}, "days": {days}}); tok != "" || res.Code != http.StatusBadRequest {
			t.Errorf("lifetime %q: %d", days, res.Code)
		}
	}
	ro, res := create(url.Values{"name": {"reader"}, "days": {"7"}, "read_only": {"true"}})
	if ro == "" {
		t.Fatalf("read-only token: %d", res.Code)
	}
	rw, _ := create(url.Values{"name": {"writer"}, "days": {"30"}})
	page = res.Body.String()
	week := f.now.Add(7 * 24 * time.Hour).UTC().Format("2006-01-02 15:04 UTC")
	if !strings.Contains(page, "read-only") || !strings.Contains(page, week) {
		t.Fatalf("the Account page does not show the token's scope and expiry (%s)", week)
	}
	call := func(tok, method, path string, body any) *httptest.ResponseRecorder {
		f.tokens["probe"] = tok
		return f.api("probe", method, path, body)
	}
	before := f.fingerprint()
	if res := call(ro, "GET", "/api/v1/reservations", nil); res.Code != http.StatusOK {
		t.Fatalf("read-only GET: %d", res.Code)
	}
	for _, m := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/v1/reservations", map[string]any{"node_ids": []uint{f.nodes[4].ID}, "hours": 1}},
		{"POST", "/api/v1/deployments/" + fmt.Sprint(f.d1.ID) + "/destroy", nil},
		{"POST", "/api/v1/reservations/" + fmt.Sprint(f.r1.ID) + "/end", nil},
		{"PUT", "/api/v1/admin/nodes/" + fmt.Sprint(f.nodes[0].ID), map[string]any{"name": "x"}},
		{"DELETE", "/api/v1/admin/users/" + fmt.Sprint(f.bob.ID), nil},
		{"PATCH", "/api/v1/reservations", nil},
	} {
		res := call(ro, m.method, m.path, m.body)
		if m.method == "PATCH" { // no such route: refused before the token matters
			if res.Code != http.StatusNotFound && res.Code != http.StatusMethodNotAllowed {
				t.Errorf("PATCH: %d", res.Code)
			}
			continue
		}
		if res.Code != http.StatusForbidden || !strings.Contains(res.Body.String(), "read-only") {
			t.Errorf("read-only %s %s: %d %s", m.method, m.path, res.Code, res.Body.String())
		}
	}
	if f.fingerprint() != before {
		t.Fatal("a read-only token changed something")
	}
	if res := call(rw, "POST", "/api/v1/reservations", map[string]any{"node_ids": []uint{f.nodes[4].ID}, "hours": 1}); res.Code != http.StatusCreated {
		t.Fatalf("read-write POST: %d %s", res.Code, res.Body.String())
	}
	// A week later the read-only token is over; the other one lasts its 30 days.
	f.now = f.now.Add(7 * 24 * time.Hour)
	if res := call(ro, "GET", "/api/v1/nodes", nil); res.Code != http.StatusUnauthorized || !strings.Contains(res.Body.String(), "expired") {
		t.Fatalf("expired token: %d %s", res.Code, res.Body.String())
	}
	if res := call(rw, "GET", "/api/v1/nodes", nil); res.Code != http.StatusOK {
		t.Fatalf("a 30-day token after a week: %d", res.Code)
	}
	if !strings.Contains(f.as("user").get("/account").Body.String(), ">expired<") { // (the session of a week ago is over too)
		t.Fatal("the Account page does not mark the expired token")
	}
}

// TestSignupAndConfirmation: domain filter matched as domains, e-mail confirmation with a
// single-use expiring link through the fake mailer, then approval.
func TestSignupAndConfirmation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.st.SetSettings(ctx, map[string]string{settingSignupDomains: "example.org", settingSMTPAddress: "smtp.example.org", settingSMTPPort: "587"}); err != nil {
		t.Fatal(err)
	}
	signup := func(email string) (int, string) {
		b := f.browser()
		b.get("/signup")
		res := b.post("/signup", url.Values{"email": {email}, "first_name": {"Nina"}, "password": {testPassword}, "password_confirm": {testPassword}})
		return res.Code, res.Body.String()
	}
	for _, e := range []string{"nina@evil-example.org", "nina@example.org.evil.com", "nina@example.com", "Nina <nina@example.org>"} {
		if code, _ := signup(e); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want refused", e, code)
		}
	}
	if code, body := signup("nina@lab.example.org"); code != http.StatusSeeOther {
		t.Fatalf("subdomain refused: %d %s", code, body)
	}
	sent := f.mail.Sent()
	if len(sent) != 1 || sent[0].To != "nina@lab.example.org" {
		t.Fatalf("mail: %+v", sent)
	}
	link := regexp.MustCompile(`http://piseduce.test(/confirm/\S+)`).FindStringSubmatch(sent[0].Body)
	if link == nil {
		t.Fatalf("no link in %q", sent[0].Body)
	}
	b := f.browser()
	b.get("/login")
	if b.post("/login", url.Values{"email": {"nina@lab.example.org"}, "password": {testPassword}}).Code != http.StatusForbidden {
		t.Fatal("logged in before confirming")
	}
	// The link's page changes nothing; its form does.
	page := b.get(link[1])
	u, _ := f.st.UserByEmail(ctx, "nina@lab.example.org")
	if page.Code != 200 || u.EmailConfirmed {
		t.Fatal("GET of the link confirmed the address")
	}
	tok := strings.TrimPrefix(link[1], "/confirm/")
	if res := b.post("/confirm", url.Values{"token": {tok}}); res.Code != http.StatusSeeOther {
		t.Fatalf("confirm: %d", res.Code)
	}
	if res := b.post("/confirm", url.Values{"token": {tok}}); res.Code != http.StatusBadRequest {
		t.Fatalf("second use: %d", res.Code)
	}
	if res := b.post("/login", url.Values{"email": {"nina@lab.example.org"}, "password": {testPassword}}); res.Code != http.StatusForbidden ||
		!strings.Contains(res.Body.String(), "approval") {
		t.Fatalf("logged in before approval: %d", res.Code)
	}
	// A signup with an e-mail already registered looks the same and sends nothing new.
	if code, _ := signup("nina@lab.example.org"); code != http.StatusSeeOther || len(f.mail.Sent()) != 1 {
		t.Fatal("duplicate sign-up told apart")
	}
	// Expired links do not work.
	if code, _ := signup("otto@example.org"); code != http.StatusSeeOther {
		t.Fatal("otto")
	}
	tok2 := regexp.MustCompile(`/confirm/(\S+)`).FindStringSubmatch(f.mail.Sent()[1].Body)[1]
	f.now = f.now.Add(25 * time.Hour)
	if res := b.post("/confirm", url.Values{"token": {tok2}}); res.Code != http.StatusBadRequest {
		t.Fatalf("expired link: %d", res.Code)
	}
	// With automatic approval and no SMTP, a new user can log in at once.
	if err := f.st.SetSettings(ctx, map[string]string{settingSMTPAddress: "", settingAutoApprove: "true"}); err != nil {
		t.Fatal(err)
	}
	if code, _ := signup("pia@example.org"); code != http.StatusSeeOther {
		t.Fatal("pia")
	}
	b = f.browser()
	b.get("/login")
	if res := b.post("/login", url.Values{"email": {"pia@example.org"}, "password": {testPassword}}); res.Code != http.StatusSeeOther {
		t.Fatalf("auto-approved user cannot log in: %d", res.Code)
	}
	// With SMTP but confirmation turned off, no mail is sent.
	if err := f.st.SetSettings(ctx, map[string]string{settingSMTPAddress: "smtp.example.org", settingEmailSignup: "false"}); err != nil {
		t.Fatal(err)
	}
	mails := len(f.mail.Sent())
	if code, _ := signup("rae@example.org"); code != http.StatusSeeOther || len(f.mail.Sent()) != mails {
		t.Fatal("confirmation mail sent although turned off")
	}
	if u, err := f.st.UserByEmail(ctx, "rae@example.org"); err != nil || !u.EmailConfirmed || !u.Authorized {
		t.Fatalf("rae: %+v %v", u, err)
	}
	if err := f.st.SetSettings(ctx, map[string]string{settingEmailSignup: "true"}); err != nil {
		t.Fatal(err)
	}
	// A failing mail server undoes the sign-up.
	if err := f.st.SetSettings(ctx, map[string]string{settingSMTPAddress: "smtp.example.org"}); err != nil {
		t.Fatal(err)
	}
	f.mail.Err = fmt.Errorf("connection refused")
	if code, _ := signup("quinn@example.org"); code != http.StatusServiceUnavailable {
		t.Fatalf("mail failure: %d", code)
	}
	if _, err := f.st.UserByEmail(ctx, "quinn@example.org"); err == nil {
		t.Fatal("account kept although its confirmation mail failed")
	}
}

// TestDeployForm: validation, a random password when none is given, every node gets it.
func TestDeployForm(t *testing.T) {
	f := newFixture(t)
	b := f.as("user")
	path := "/reservations/" + fmt.Sprint(f.r3.ID) + "/deploy"
	b.get(path)
	env := fmt.Sprint(f.env.ID)
	for name, form := range map[string]url.Values{
		"bad key":        {"name": {"x"}, "environment": {env}, "system_size": {"0"}, "public_key": {"ssh-rsa notakey"}},
		"key options":    {"name": {"x"}, "environment": {env}, "system_size": {"0"}, "public_key": {`command="rm -rf /" ` + sshKey}},
		"two keys":       {"name": {"x"}, "environment": {env}, "system_size": {"0"}, "public_key": {sshKey + "\n" + sshKey}},
		"bad size":       {"name": {"x"}, "environment": {env}, "system_size": {"123"}},
		"short password": {"name": {"x"}, "environment": {env}, "system_size": {"0"}, "os_password": {"abc"}},
		"colon password": {"name": {"x"}, "environment": {env}, "system_size": {"0"}, "os_password": {"abc:defgh"}},
		"big script":     {"name": {"x"}, "environment": {env}, "system_size": {"0"}, "init_script": {strings.Repeat("a", 65<<10)}},
		"no name":        {"name": {" "}, "environment": {env}, "system_size": {"0"}},
		"hidden env":     {"name": {"x"}, "environment": {"999"}, "system_size": {"0"}},
		"multiline name": {"name": {"a\nb"}, "environment": {env}, "system_size": {"0"}},
	} {
		if res := b.post(path, form); res.Code != http.StatusBadRequest {
			t.Errorf("%s: %d", name, res.Code)
		}
	}
	res := b.post(path, url.Values{"name": {"good"}, "environment": {env}, "system_size": {"1024"}, "os_update": {"true"}, "public_key": {sshKey}})
	if res.Code != http.StatusSeeOther {
		t.Fatalf("deploy: %d %s", res.Code, res.Body.String())
	}
	ds, _ := f.st.Deployments(context.Background(), store.DeploymentFilter{ReservationID: f.r3.ID})
	if len(ds) != 1 {
		t.Fatalf("%d deployments", len(ds))
	}
	d := ds[0]
	if len(d.SystemPassword) != 16 || d.SystemSize != 1024 || !d.OSUpdate || d.PublicKey != sshKey || d.Process != process.Deploy || d.State != "boot_conf" {
		t.Fatalf("deployment: %+v", d)
	}
	// Deploying twice is refused.
	if res := b.post(path, url.Values{"name": {"again"}, "environment": {env}, "system_size": {"0"}}); res.Code != http.StatusConflict {
		t.Fatalf("second deploy: %d", res.Code)
	}
}

// TestDeleteUserDestroysNodes: deleting a user sends their nodes to destroy and keeps the rows
// consistent; the account is gone for good once pitasks destroyed them.
func TestDeleteUserDestroysNodes(t *testing.T) {
	f := newFixture(t)
	admin := f.as("admin")
	admin.get("/admin/users")
	res := admin.post("/admin/users/"+fmt.Sprint(f.alice.ID)+"/delete", nil)
	if res.Code != http.StatusSeeOther {
		t.Fatalf("delete: %d", res.Code)
	}
	for _, id := range []uint{f.d1.ID, f.d2.ID} {
		d, err := f.st.Deployment(context.Background(), id)
		if err != nil || d.Process != process.Destroy {
			t.Fatalf("deployment %d: %v %+v", id, err, d)
		}
	}
	admin.get("/admin/users") // the flash names the user once
	if body := admin.get("/admin/users").Body.String(); strings.Contains(body, f.alice.Email) || strings.Contains(body, "Liddell") {
		t.Error("the deleted user is still listed")
	}
	if res := f.api("user", "GET", "/api/v1/nodes", nil); res.Code != http.StatusUnauthorized {
		t.Error("the deleted user's token works")
	}
	storetest.DB(f.st).Model(&store.Deployment{}).Where("user_id = ?", f.alice.ID).Update("state", "destroyed")
	admin.get("/admin/users")
	if _, err := f.st.User(context.Background(), f.alice.ID); err != store.ErrNotFound {
		t.Fatalf("tombstone not purged: %v", err)
	}
}

// TestPowerPorts: the grid shows what pitasks read; the pimaster's port, or one the switch
// does not have, is never requested.
func TestPowerPorts(t *testing.T) {
	f := newFixture(t)
	admin := f.as("admin")
	sw := fmt.Sprint(f.sw.ID)
	page := admin.get("/admin/switches/" + sw).Body.String()
	if !strings.Contains(page, "node-1") || !strings.Contains(page, "pimaster") || !strings.Contains(page, "delivering power") {
		t.Fatal("port grid lacks nodes or pitasks' reading")
	}
	before := f.fingerprint()
	res := admin.post("/admin/switches/"+sw+"/ports/8", url.Values{"action": {"off"}})
	if res.Code != http.StatusSeeOther || res.Header().Get("Location") != "/admin/switches/"+sw {
		t.Fatalf("master port: %d %s", res.Code, res.Header().Get("Location"))
	}
	if res := f.api("admin", "POST", "/api/v1/admin/switches/"+sw+"/ports/8/cycle", nil); res.Code != http.StatusBadRequest || !strings.Contains(res.Body.String(), "pimaster") {
		t.Fatalf("API master port: %d %s", res.Code, res.Body.String())
	}
	if res := f.api("admin", "POST", "/api/v1/admin/switches/"+sw+"/ports/9/on", nil); res.Code != http.StatusBadRequest {
		t.Fatalf("port out of range: %d", res.Code)
	}
	if res := admin.post("/admin/switches/"+sw+"/ports/3", url.Values{"action": {"status"}}); res.Header().Get("Location") != "/admin/switches/"+sw {
		t.Fatalf("status of one port: %d %s", res.Code, res.Header().Get("Location"))
	}
	if f.fingerprint() != before {
		t.Fatal("a refused port request was written")
	}
	var out switchJSON
	json.Unmarshal(f.api("admin", "GET", "/api/v1/admin/switches/"+sw, nil).Body.Bytes(), &out)
	if len(out.Ports) != 8 || !out.Ports[0].On || out.Ports[0].Node != "node-1" || !out.Ports[1].Known || out.Ports[1].On ||
		out.Ports[2].Known || !out.Ports[7].Master || !out.HasCommunity || out.Checked == nil || out.StatusError != "" {
		t.Fatalf("API ports: %+v", out)
	}
	f.pitasksRead(&f.sw, nil, fmt.Errorf("no answer from switch"))
	if page := admin.get("/admin/switches/" + sw).Body.String(); !strings.Contains(page, "pitasks could not read the switch: no answer from switch") {
		t.Fatal("status error not shown")
	}
}

// TestLiveStatus: the JSON feed computes percent, MiB/s and ETA, for the owner's rows only.
func TestLiveStatus(t *testing.T) {
	f := newFixture(t)
	storetest.DB(f.st).Model(&store.Deployment{}).Where("id = ?", f.d1.ID).Updates(map[string]any{"state": "env_copy",
		"bytes_done": 250_000_000, "bytes_total": 1_000_000_000, "throughput": 10_000_000})
	b := f.as("user")
	var out struct{ Deployments []apijson.Deployment }
	res := b.get(fmt.Sprintf("/deployments/status.json?ids=%d,%d", f.d1.ID, f.d3.ID))
	if err := json.Unmarshal(res.Body.Bytes(), &out); err != nil {
		t.Fatal(err, res.Body.String())
	}
	if len(out.Deployments) != 1 {
		t.Fatalf("bob's deployment in alice's feed: %+v", out.Deployments)
	}
	d := out.Deployments[0]
	if !d.Copying || d.Percent != 25 || d.MiBps != 9.5 || d.Speed != "9.5 MiB/s" || d.ETASeconds != 75 || d.OSPassword != "" {
		t.Fatalf("progress: %+v", d)
	}
	if res := b.get("/deployments/status.json?ids=1,x"); res.Code != http.StatusBadRequest || !strings.Contains(res.Body.String(), `"error"`) {
		t.Fatalf("bad ids: %d %s", res.Code, res.Body.String())
	}
	page := b.get("/deployments").Body.String()
	if !strings.Contains(page, `data-dep="`+fmt.Sprint(f.d1.ID)+`"`) || !strings.Contains(page, `value="25"`) {
		t.Fatal("the deployments page has no live row or progress bar")
	}
}

// TestAPIErrors: JSON errors with fitting codes.
func TestAPIErrors(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path string
		body         any
		code         int
	}{
		{"GET", "/api/v1/nope", nil, 404},
		{"GET", "/api/v1/deployments/abc", nil, 404},
		{"GET", "/api/v1/deployments/99999", nil, 404},
		{"POST", "/api/v1/reservations", map[string]any{"hours": 2, "bogus": 1}, 400},
		{"POST", "/api/v1/reservations", map[string]any{"node_ids": []uint{f.nodes[0].ID}, "hours": 2}, 409},
		{"POST", "/api/v1/reservations", map[string]any{"node_ids": []uint{f.nodes[4].ID}, "hours": 73}, 400},
		{"POST", "/api/v1/reservations", map[string]any{"model": "RPI3Bplus", "count": 2, "hours": 1}, 409},
		{"POST", "/api/v1/reservations/" + fmt.Sprint(f.r1.ID) + "/extend", map[string]any{"hours": 80}, 400},
		{"POST", "/api/v1/deployments", map[string]any{"reservation_id": f.r1.ID, "name": "x", "environment_id": f.env.ID}, 409},
	} {
		res := f.api("user", tc.method, tc.path, tc.body)
		var e struct{ Error string }
		if res.Code != tc.code || json.Unmarshal(res.Body.Bytes(), &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, res.Code, res.Body.String())
		}
	}
	req, _ := http.NewRequest("GET", "/api/v1/nodes", nil)
	req.Header.Set("Authorization", "Bearer psd_forged")
	b := f.browser()
	if res := b.do(req); res.Code != http.StatusUnauthorized || res.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("forged token: %d", res.Code)
	}
	// A session cookie does not open the API (no CSRF protection there).
	alice := f.as("user")
	if res := alice.get("/api/v1/nodes"); res.Code != http.StatusUnauthorized {
		t.Errorf("cookie on the API: %d", res.Code)
	}
}

// TestReserveAndExtendLimits: durations within the admin's limit, extensions keep the time
// left within it.
func TestReserveAndExtendLimits(t *testing.T) {
	f := newFixture(t)
	if err := f.st.SetSettings(context.Background(), map[string]string{settingMaxHours: "4"}); err != nil {
		t.Fatal(err)
	}
	b := f.as("user")
	b.get("/reserve")
	if res := b.post("/reserve", url.Values{"nodes": {fmt.Sprint(f.nodes[4].ID)}, "hours": {"5"}}); res.Code != http.StatusBadRequest {
		t.Fatalf("5 h with a 4 h limit: %d", res.Code)
	}
	if res := b.post("/reserve", url.Values{"model": {"RPI3Bplus"}, "count": {"1"}, "hours": {"4"}}); res.Code != http.StatusSeeOther {
		t.Fatalf("model reservation: %d %s", res.Code, res.Body.String())
	}
	if res := b.post("/reserve", url.Values{"nodes": {fmt.Sprint(f.nodes[5].ID)}, "hours": {"1"}}); res.Code != http.StatusConflict ||
		!strings.Contains(res.Body.String(), "node-6") {
		t.Fatalf("taken node: %d", res.Code)
	}
	// r1 ends in 2 h: +2 h is the most.
	res := f.api("user", "POST", "/api/v1/reservations/"+fmt.Sprint(f.r1.ID)+"/extend", map[string]any{"hours": 3})
	if res.Code != http.StatusBadRequest {
		t.Fatalf("extend past the limit: %d", res.Code)
	}
	res = f.api("user", "POST", "/api/v1/reservations/"+fmt.Sprint(f.r1.ID)+"/extend", map[string]any{"hours": 2})
	if res.Code != http.StatusOK {
		t.Fatalf("extend: %d %s", res.Code, res.Body.String())
	}
	// A future start, in the browser's time zone; the reservation keeps the zone.
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	start := f.now.Add(48 * time.Hour).In(tokyo).Format("2006-01-02T15:04")
	res2 := b.post("/reserve", url.Values{"nodes": {fmt.Sprint(f.nodes[4].ID)}, "hours": {"1"}, "start": {start}, "tz": {"Asia/Tokyo"}})
	if res2.Code != http.StatusSeeOther || res2.Header().Get("Location") != "/deployments" {
		t.Fatalf("future reservation: %d", res2.Code)
	}
	rs, _ := f.st.UserReservations(context.Background(), f.alice.ID, f.now.Add(24*time.Hour))
	if len(rs) != 1 || rs[0].StartsAt.Sub(f.now.Add(48*time.Hour)) > time.Minute || rs[0].StartsAt.Sub(f.now.Add(48*time.Hour)) < -time.Minute ||
		rs[0].TimeZone != "Asia/Tokyo" {
		t.Fatalf("future reservation: %+v", rs)
	}
	if res := b.post("/reserve", url.Values{"nodes": {fmt.Sprint(f.nodes[4].ID)}, "hours": {"1"}, "start": {start}, "tz": {"Mars/Olympus"}}); res.Code != http.StatusBadRequest ||
		!strings.Contains(res.Body.String(), "Unknown time zone") {
		t.Fatalf("unknown zone: %d", res.Code)
	}
}

func TestFirstAdmin(t *testing.T) {
	f := newFixture(t)
	if _, created, err := EnsureFirstAdmin(context.Background(), f.st, DefaultAdminEmail); err != nil || created {
		t.Fatalf("admin created on a database with users: %v %v", created, err)
	}
	st := newEmptyStore(t)
	pw, created, err := EnsureFirstAdmin(context.Background(), st, DefaultAdminEmail)
	if err != nil || !created || len(pw) < 16 {
		t.Fatalf("%q %v %v", pw, created, err)
	}
	u, err := st.UserByEmail(context.Background(), DefaultAdminEmail)
	if err != nil || !u.Admin || !u.Authorized || !auth.CheckPassword(u.PasswordHash, pw) {
		t.Fatalf("admin: %+v %v", u, err)
	}
	pw2, _, _ := EnsureFirstAdmin(context.Background(), newEmptyStore(t), DefaultAdminEmail)
	if pw2 == pw {
		t.Fatal("the first admin's password is not random")
	}
}

// openRedirects are "next" values that must never become a redirect: each leads a browser to
// another host, or could once a proxy or a second redirect decodes it.
var openRedirects = []string{
	"//evil.example/", "///evil.example", "/\\evil.example", "\\\\evil.example", "/\t/evil.example", "\t//evil.example",
	"/\n/evil.example", "/\r\n/evil.example", "/%09/evil.example", "/%0a/evil.example", "/%0d%0a/evil.example",
	"/%2f/evil.example", "/%2F%2Fevil.example", "%2f%2fevil.example", "/%5cevil.example", "/%5C%5Cevil.example",
	"/%252f/evil.example", "/%25252f/evil.example", "https://evil.example/", "http:evil.example", "javascript:alert(1)",
	"evil.example", "", " /resources", "/ /evil.example", "/resources%",
}

func TestLocalPath(t *testing.T) {
	for _, next := range openRedirects {
		if got := localPath(next); got != "" {
			t.Errorf("localPath(%q) = %q, want refused", next, got)
		}
	}
	for _, next := range []string{"/resources", "/deployments/3", "/deployments/status.json?ids=1%2C2", "/admin/switches/1/edit", "/reserve?start=2026-01-01T10%3A00"} {
		if got := localPath(next); got != next {
			t.Errorf("localPath(%q) = %q, want it kept", next, got)
		}
	}
}

// TestRedirectsStayOnSite: the login's next, from the form or the query, only ever leads to a
// path of this site; an anonymous visit to a page comes back to it after login.
func TestRedirectsStayOnSite(t *testing.T) {
	f := newFixture(t)
	for _, next := range append(openRedirects, "/deployments") {
		b := f.browser()
		page := b.get("/login?next=" + url.QueryEscape(next)).Body.String()
		if next != "/deployments" && strings.Contains(page, "evil.example") {
			t.Errorf("the login page carries next=%q on", next)
		}
		res := b.post("/login", url.Values{"email": {f.alice.Email}, "password": {testPassword}, "next": {next}})
		want := "/resources"
		if next == "/deployments" {
			want = next
		}
		if loc := res.Header().Get("Location"); res.Code != http.StatusSeeOther || loc != want {
			t.Errorf("login with next=%q: %d to %q, want %q", next, res.Code, loc, want)
		}
	}
	res := f.browser().get("/deployments/" + fmt.Sprint(f.d1.ID) + "?x=1")
	if loc := res.Header().Get("Location"); loc != "/login?next="+url.QueryEscape("/deployments/"+fmt.Sprint(f.d1.ID)+"?x=1") {
		t.Errorf("an anonymous visit goes to %q", loc)
	}
}

// TestOversizedBodies: a JSON body over 1 MiB and a form over 8 MiB get a 413 that says what
// is too large, whether they announce their length or not, on a live server too; nothing
// changes.
func TestOversizedBodies(t *testing.T) {
	f := newFixture(t)
	before := f.fingerprint()
	big := strings.Repeat("a", 12<<20)
	check := func(what string, res *http.Response, body string, json bool) {
		t.Helper()
		if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large") ||
			json != strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %q %.200s", what, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
	apiReq := func(chunked bool) *http.Request {
		req := httptest.NewRequest("POST", "/api/v1/reservations", strings.NewReader(`{"hours": 1, "model": "`+big+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+f.tokens["user"])
		if chunked {
			req.ContentLength = -1
		}
		return req
	}
	alice := f.as("user")
	formReq := func(chunked bool, multipart bool) *http.Request {
		var req *http.Request
		if multipart {
			var buf strings.Builder
			buf.WriteString("--XYZ\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n" + alice.csrf + "\r\n")
			buf.WriteString("--XYZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.json\"\r\n\r\n" + big + "\r\n--XYZ--\r\n")
			req = httptest.NewRequest("POST", "/reserve", strings.NewReader(buf.String()))
			req.Header.Set("Content-Type", "multipart/form-data; boundary=XYZ")
		} else {
			req = httptest.NewRequest("POST", "/reserve", strings.NewReader(url.Values{"csrf_token": {alice.csrf}, "hours": {"1"}, "model": {"RPI4B"}, "count": {"1"}, "x": {big}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if chunked {
			req.ContentLength = -1
		}
		return req
	}
	for _, chunked := range []bool{false, true} {
		rec := httptest.NewRecorder()
		f.s.ServeHTTP(rec, apiReq(chunked))
		check(fmt.Sprintf("API, chunked=%v", chunked), rec.Result(), rec.Body.String(), true)
		for _, multipart := range []bool{false, true} {
			res := alice.do(formReq(chunked, multipart))
			check(fmt.Sprintf("form, chunked=%v multipart=%v", chunked, multipart), res.Result(), res.Body.String(), false)
		}
	}
	// Just under the limits, the same requests are read (and refused for what they say).
	small := httptest.NewRequest("POST", "/api/v1/reservations", strings.NewReader(`{"hours": 1, "model": "`+strings.Repeat("a", 1<<19)+`"}`))
	small.Header.Set("Authorization", "Bearer "+f.tokens["user"])
	rec := httptest.NewRecorder()
	f.s.ServeHTTP(rec, small)
	if rec.Code != http.StatusBadRequest && rec.Code != http.StatusConflict {
		t.Errorf("a 512 KiB body: %d %s", rec.Code, rec.Body.String())
	}
	if res := alice.post("/reserve", url.Values{"model": {"RPI4B"}, "count": {"1"}, "hours": {"1"}, "x": {strings.Repeat("a", 4<<20)}}); res.Code != http.StatusSeeOther {
		t.Errorf("a 4 MiB form: %d %.200s", res.Code, res.Body.String())
	}
	if err := storetest.DB(f.st).Where("user_id = ? AND id NOT IN ?", f.alice.ID, []uint{f.r1.ID, f.r3.ID}).Delete(&store.Reservation{}).Error; err != nil {
		t.Fatal(err)
	}
	storetest.DB(f.st).Exec("DELETE FROM reservation_nodes WHERE reservation_id NOT IN (SELECT id FROM reservations)")

	// The same through a real listening server.
	base := liveServer(t, f, nil)
	c := newNetClient(t, base, "127.0.0.7")
	c.login(f.alice.Email, testPassword)
	c.get("/reserve")
	req, _ := http.NewRequest("POST", base+"/reserve", strings.NewReader(url.Values{"csrf_token": {c.csrf}, "x": {big}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, body := c.do(req)
	check("form on a live server", res, body, false)
	req, _ = http.NewRequest("POST", base+"/api/v1/reservations", strings.NewReader(`{"model": "`+big+`"}`))
	req.Header.Set("Authorization", "Bearer "+f.tokens["user"])
	res, body = c.do(req)
	check("API on a live server", res, body, true)
	if after := f.fingerprint(); after != before {
		t.Error("an oversized request changed something")
	}
}

// TestCSRFTokenNotFromTheURL: a token in the query string is ignored (URLs end up in logs and
// Referer headers); the form body and the X-CSRF-Token header are read.
func TestCSRFTokenNotFromTheURL(t *testing.T) {
	f := newFixture(t)
	b := f.as("user")
	before := f.fingerprint()
	form := url.Values{"ssh_key": {sshKey}}
	if res := b.postRaw("/account/sshkey?csrf_token="+url.QueryEscape(b.csrf), form); res.Code != http.StatusForbidden {
		t.Fatalf("token in the URL: %d", res.Code)
	}
	if f.fingerprint() != before {
		t.Fatal("a request with the token in the URL changed something")
	}
	req := httptest.NewRequest("POST", "/account/sshkey", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", b.csrf)
	if res := b.do(req); res.Code != http.StatusSeeOther {
		t.Fatalf("token in the header: %d", res.Code)
	}
	if res := b.postRaw("/account/sshkey", url.Values{"ssh_key": {""}, "csrf_token": {b.csrf}}); res.Code != http.StatusSeeOther {
		t.Fatalf("token in the body: %d", res.Code)
	}
}

// TestHeadLikeGet: on a live server, HEAD on every GET route answers with the status and
// content type GET gives, and no body, for an anonymous visitor, a user and an admin.
func TestHeadLikeGet(t *testing.T) {
	f := newFixture(t)
	base := liveServer(t, f, nil)
	clients := map[string]*netClient{"anon": newNetClient(t, base, "127.0.0.8")}
	for role, ip := range map[string]string{"user": "127.0.0.9", "admin": "127.0.0.10"} {
		c := newNetClient(t, base, ip)
		if res, _ := c.login(f.user(role).Email, testPassword); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("login as %s: %d", role, res.StatusCode)
		}
		clients[role] = c
	}
	n := 0
	for key, tc := range f.routeCases() {
		if !strings.HasPrefix(key, "GET ") {
			continue
		}
		n++
		for role, c := range clients {
			send := func(method string) (*http.Response, string) {
				req, _ := http.NewRequest(method, base+tc.path, nil)
				if strings.HasPrefix(tc.path, "/api/") && role != "anon" {
					req.Header.Set("Authorization", "Bearer "+f.tokens[role])
				}
				return c.do(req)
			}
			get, _ := send(http.MethodGet)
			head, body := send(http.MethodHead)
			if head.StatusCode != get.StatusCode || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") ||
				head.Header.Get("Location") != get.Header.Get("Location") || body != "" {
				t.Errorf("%s as %s: HEAD %d %q %q (%d bytes), GET %d %q %q", key, role, head.StatusCode, head.Header.Get("Content-Type"),
					head.Header.Get("Location"), len(body), get.StatusCode, get.Header.Get("Content-Type"), get.Header.Get("Location"))
			}
		}
	}
	if n < 30 {
		t.Fatalf("only %d GET routes tried", n)
	}
	// Unknown routes stay 404, and HEAD changes nothing.
	before := f.fingerprint()
	req, _ := http.NewRequest(http.MethodHead, base+"/no/such/page", nil)
	if res, _ := clients["user"].do(req); res.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD on an unknown path: %d", res.StatusCode)
	}
	if f.fingerprint() != before {
		t.Error("HEAD requests changed something")
	}
}
