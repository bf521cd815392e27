package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
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
			if f.fingerprint() != before || len(f.power.calls) > 0 {
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
	f.st.DB.Exec("DROP TABLE reservation_nodes")
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

// TestLoginRateLimit: after 5 wrong passwords for an address and e-mail, even the right one is
// refused for a while; another e-mail from the same address still works.
func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t)
	b := f.as("anon")
	for i := 0; i < 5; i++ {
		if res := b.post("/login", url.Values{"email": {f.alice.Email}, "password": {"nope"}}); res.Code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, res.Code)
		}
	}
	res := b.post("/login", url.Values{"email": {f.alice.Email}, "password": {testPassword}})
	if res.Code != http.StatusTooManyRequests || !strings.Contains(res.Body.String(), "Too many") {
		t.Fatalf("6th attempt: %d", res.Code)
	}
	if res := b.post("/login", url.Values{"email": {f.bob.Email}, "password": {testPassword}}); res.Code != http.StatusSeeOther {
		t.Fatalf("bob blocked too: %d", res.Code)
	}
	f.now = f.now.Add(16 * time.Minute)
	b2 := f.as("anon")
	if res := b2.post("/login", url.Values{"email": {f.alice.Email}, "password": {testPassword}}); res.Code != http.StatusSeeOther {
		t.Fatalf("after the window: %d", res.Code)
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

// TestRevokedUsersAndPasswordChange: a revoked user's session and tokens stop at once; a
// password change ends the other sessions.
func TestRevokedUsersAndPasswordChange(t *testing.T) {
	f := newFixture(t)
	alice1, alice2 := f.as("user"), f.as("user")
	res := alice1.post("/account/password", url.Values{"old_password": {"wrong"}, "new_password": {"a new long password"}, "new_password_confirm": {"a new long password"}})
	if res.Code != http.StatusBadRequest {
		t.Fatalf("wrong old password: %d", res.Code)
	}
	res = alice1.post("/account/password", url.Values{"old_password": {testPassword}, "new_password": {"a new long password"}, "new_password_confirm": {"a new long password"}})
	if res.Code != http.StatusSeeOther {
		t.Fatalf("change: %d", res.Code)
	}
	if alice1.get("/account").Code != http.StatusOK || alice2.get("/account").Code != http.StatusSeeOther {
		t.Fatal("the other session survived the password change, or this one did not")
	}
	admin := f.as("admin")
	admin.get("/admin/users")
	if res := admin.post("/admin/users/"+fmt.Sprint(f.alice.ID)+"/revoke", nil); res.Code != http.StatusSeeOther {
		t.Fatalf("revoke: %d", res.Code)
	}
	if alice1.get("/account").Code != http.StatusSeeOther {
		t.Fatal("a revoked user is still logged in")
	}
	if res := f.api("user", "GET", "/api/v1/nodes", nil); res.Code != http.StatusUnauthorized {
		t.Fatalf("a revoked user's token still works: %d", res.Code)
	}
	// Admins cannot lock themselves out.
	if res := admin.post("/admin/users/"+fmt.Sprint(f.admin.ID)+"/revoke", nil); res.Code != http.StatusSeeOther ||
		admin.get("/admin/users").Code != http.StatusOK {
		t.Fatal("an admin revoked themselves")
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
	f.st.DB.Model(&store.Deployment{}).Where("user_id = ?", f.alice.ID).Update("state", "destroyed")
	admin.get("/admin/users")
	if _, err := f.st.User(context.Background(), f.alice.ID); err != store.ErrNotFound {
		t.Fatalf("tombstone not purged: %v", err)
	}
}

// TestPowerPorts: the grid shows the switch's answer; the pimaster's port is never switched.
func TestPowerPorts(t *testing.T) {
	f := newFixture(t)
	admin := f.as("admin")
	page := admin.get("/admin/switches/" + fmt.Sprint(f.sw.ID)).Body.String()
	if !strings.Contains(page, "node-1") || !strings.Contains(page, "pimaster") {
		t.Fatal("port grid lacks nodes")
	}
	res := admin.post("/admin/switches/"+fmt.Sprint(f.sw.ID)+"/ports/8", url.Values{"action": {"off"}})
	if res.Code != http.StatusSeeOther || len(f.power.calls) != 0 {
		t.Fatalf("master port switched: %v", f.power.calls)
	}
	if res := f.api("admin", "POST", "/api/v1/admin/switches/"+fmt.Sprint(f.sw.ID)+"/ports/8/cycle", nil); res.Code != http.StatusConflict || len(f.power.calls) != 0 {
		t.Fatalf("API master port: %d %v", res.Code, f.power.calls)
	}
	if res := f.api("admin", "POST", "/api/v1/admin/switches/"+fmt.Sprint(f.sw.ID)+"/ports/9/on", nil); res.Code != http.StatusBadRequest {
		t.Fatalf("port out of range: %d", res.Code)
	}
	admin.post("/admin/switches/"+fmt.Sprint(f.sw.ID)+"/ports/3", url.Values{"action": {"off"}})
	if strings.Join(f.power.calls, ";") != "set 3 false" {
		t.Fatalf("calls: %v", f.power.calls)
	}
	var sw switchJSON
	json.Unmarshal(f.api("admin", "GET", "/api/v1/admin/switches/"+fmt.Sprint(f.sw.ID), nil).Body.Bytes(), &sw)
	if len(sw.Ports) != 8 || !sw.Ports[0].On || sw.Ports[0].Node != "node-1" || sw.Ports[2].On || !sw.Ports[7].Master || !sw.HasCommunity {
		t.Fatalf("API ports: %+v", sw)
	}
	f.power.err = fmt.Errorf("no answer from switch")
	if page := admin.get("/admin/switches/" + fmt.Sprint(f.sw.ID)).Body.String(); !strings.Contains(page, "no answer from switch") {
		t.Fatal("status error not shown")
	}
}

// TestLiveStatus: the JSON feed computes percent, MiB/s and ETA, for the owner's rows only.
func TestLiveStatus(t *testing.T) {
	f := newFixture(t)
	f.st.DB.Model(&store.Deployment{}).Where("id = ?", f.d1.ID).Updates(map[string]any{"state": "env_copy",
		"bytes_done": 250_000_000, "bytes_total": 1_000_000_000, "throughput": 10_000_000})
	b := f.as("user")
	var out struct{ Deployments []deploymentView }
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
