package web

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/auth/smtptest"

	"github.com/piseduce/piseduce/pkg/store/storetest"
)

var resetLinkRE = regexp.MustCompile(`http://piseduce\.test/password-reset/([A-Za-z0-9_-]+)`)

// useSMTP points the fixture's site at srv and sends through the real net/smtp client.
func (f *fixture) useSMTP(srv *smtptest.Server) {
	f.t.Helper()
	f.s.mailer = auth.SMTPMailer{Timeout: time.Minute}
	err := f.st.SetSettings(context.Background(), map[string]string{settingSMTPAddress: srv.Host(),
		settingSMTPPort: strconv.Itoa(srv.Port()), settingSMTPFrom: "piseduce@lab.example.org", settingSMTPAccount: ""})
	if err != nil {
		f.t.Fatal(err)
	}
}

// TestPasswordResetByEmail: without SMTP the page says to ask an admin; with it, a known and
// an unknown address get the same answer, only the known one gets a link (through a real SMTP
// exchange), and the link sets a new password once, within the hour, ending every session and
// API token.
func TestPasswordResetByEmail(t *testing.T) {
	f := newFixture(t)
	anon := f.as("anon")
	if res := anon.get("/password-reset"); res.Code != http.StatusOK || !strings.Contains(res.Body.String(), `id="ask-admin"`) {
		t.Fatalf("without SMTP: %d %s", res.Code, res.Body.String())
	}
	if res := anon.post("/password-reset", url.Values{"email": {f.alice.Email}}); res.Code != http.StatusConflict || !strings.Contains(res.Body.String(), "ask an admin") {
		t.Fatalf("POST without SMTP: %d", res.Code)
	}
	if res := anon.get("/login"); !strings.Contains(res.Body.String(), `href="/password-reset"`) {
		t.Fatal("the login page does not offer the reset")
	}

	srv := smtptest.Start(t)
	f.useSMTP(srv)
	if res := anon.get("/password-reset"); res.Code != http.StatusOK || !strings.Contains(res.Body.String(), `action="/password-reset"`) {
		t.Fatalf("with SMTP: %d", res.Code)
	}
	aliceSession := f.as("user")
	ask := func(email string) (int, string, string) {
		res := anon.post("/password-reset", url.Values{"email": {email}})
		flash := anon.get("/login").Body.String()
		return res.Code, res.Header().Get("Location"), strings.ReplaceAll(flash, html.EscapeString(email), "EMAIL")
	}
	code1, loc1, page1 := ask(f.alice.Email)
	code2, loc2, page2 := ask("nobody@example.com")
	code3, loc3, page3 := ask(f.carol.Email) // exists, but not approved: no link either
	page := func(p string) string { return csrfRE.ReplaceAllString(p, "") }
	if code1 != http.StatusSeeOther || code1 != code2 || code1 != code3 || loc1 != loc2 || loc1 != loc3 ||
		page(page1) != page(page2) || page(page1) != page(page3) {
		t.Fatalf("the answers differ: %d %q / %d %q / %d %q", code1, loc1, code2, loc2, code3, loc3)
	}
	if !strings.Contains(page1, "we sent it a link") {
		t.Fatalf("no message after the request:\n%s", page1)
	}
	f.s.WaitBackground()
	msgs := srv.Wait(t, 1, time.Minute)
	if len(msgs) != 1 || msgs[0].To[0] != f.alice.Email {
		t.Fatalf("%d messages, to %v: only alice has an account that can log in", len(msgs), msgs[0].To)
	}
	if got := msgs[0].Header.Get("Subject"); got != "Reset your PiSeduce password" {
		t.Errorf("subject %q", got)
	}
	m := resetLinkRE.FindStringSubmatch(msgs[0].Body)
	if m == nil {
		t.Fatalf("no link in:\n%s", msgs[0].Body)
	}
	tok := m[1]
	var stored int64
	storetest.DB(f.st).Table("email_tokens").Where("hash = ?", tok).Count(&stored)
	if stored != 0 {
		t.Fatal("the token is stored as sent, not hashed")
	}

	// Opening the link changes nothing; choosing a password does, once.
	before := f.fingerprint()
	if res := anon.get("/password-reset/" + tok); res.Code != http.StatusOK || !strings.Contains(res.Body.String(), `value="`+tok+`"`) {
		t.Fatalf("link page: %d", res.Code)
	}
	if f.fingerprint() != before {
		t.Fatal("opening the link changed the database")
	}
	choose := func(tok, pw, again string) *http.Response {
		return anon.post("/password-reset/choose", url.Values{"token": {tok}, "new_password": {pw}, "new_password_confirm": {again}}).Result()
	}
	if res := choose(tok, "a brand new password", "something else"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("differing passwords: %d", res.StatusCode)
	}
	if res := choose(tok, "short", "short"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("short password: %d", res.StatusCode)
	}
	if res := choose(tok, "a brand new password", "a brand new password"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
		t.Fatalf("reset: %d", res.StatusCode)
	}
	if res := choose(tok, "a second new password", "a second new password"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("the link worked twice: %d", res.StatusCode)
	}
	if res := aliceSession.get("/resources"); res.Code != http.StatusSeeOther {
		t.Fatalf("alice's session survived the reset: %d", res.Code)
	}
	if res := f.api("user", http.MethodGet, "/api/v1/nodes", nil); res.Code != http.StatusUnauthorized {
		t.Fatalf("alice's API token survived the reset: %d", res.Code)
	}
	login := func(email, pw string) int {
		b := f.browser()
		b.get("/login")
		return b.post("/login", url.Values{"email": {email}, "password": {pw}}).Code
	}
	if c := login(f.alice.Email, testPassword); c != http.StatusUnauthorized {
		t.Fatalf("old password: %d", c)
	}
	if c := login(f.alice.Email, "a brand new password"); c != http.StatusSeeOther {
		t.Fatalf("new password: %d", c)
	}

	// A link an hour old no longer works.
	ask(f.alice.Email)
	f.s.WaitBackground()
	msgs = srv.Wait(t, 2, time.Minute)
	late := resetLinkRE.FindStringSubmatch(msgs[1].Body)[1]
	f.now = f.now.Add(resetTTL + time.Second)
	if res := choose(late, "a third new password", "a third new password"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("an expired link worked: %d", res.StatusCode)
	}
	if strings.Contains(f.log.String(), "nobody@example.com") {
		t.Error("the log names the unknown address")
	}
}

// TestOneTimePassword: an admin gives a user a one-time password (page, then API), shown once;
// the user's sessions and tokens end, and they can do nothing but choose their own password.
func TestOneTimePassword(t *testing.T) {
	f := newFixture(t)
	admin := f.as("admin")
	bobSession := f.as("other")
	res := admin.post("/admin/users/"+strconv.Itoa(int(f.bob.ID))+"/password", nil)
	if res.Code != http.StatusOK {
		t.Fatalf("one-time password: %d %s", res.Code, res.Body.String())
	}
	if res.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("the page with the password may be cached: %q", res.Header().Get("Cache-Control"))
	}
	m := regexp.MustCompile(`id="one-time-password"[\s\S]*?<code class="secret">([^<]+)</code>`).FindStringSubmatch(res.Body.String())
	if m == nil {
		t.Fatalf("no password shown:\n%s", res.Body.String())
	}
	otp := m[1]
	if strings.Contains(admin.get("/admin/users").Body.String(), otp) {
		t.Fatal("the password is shown again")
	}
	if strings.Contains(f.log.String(), otp) {
		t.Fatal("the log holds the password")
	}
	if res := bobSession.get("/resources"); res.Code != http.StatusSeeOther {
		t.Fatalf("bob's session survived: %d", res.Code)
	}
	if res := f.api("other", http.MethodGet, "/api/v1/nodes", nil); res.Code != http.StatusUnauthorized {
		t.Fatalf("bob's API token survived: %d", res.Code)
	}

	bob := f.browser()
	bob.get("/login")
	res = bob.post("/login", url.Values{"email": {f.bob.Email}, "password": {otp}, "next": {"/deployments"}})
	if res.Code != http.StatusSeeOther || res.Header().Get("Location") != "/account" {
		t.Fatalf("login with the one-time password: %d → %q", res.Code, res.Header().Get("Location"))
	}
	if body := bob.get("/account").Body.String(); !strings.Contains(body, `id="must-change"`) || !strings.Contains(body, "one-time password") {
		t.Fatal("the account page does not ask for a new password")
	}
	if res := bob.get("/resources"); res.Code != http.StatusSeeOther || res.Header().Get("Location") != "/account" {
		t.Fatalf("another page with a one-time password: %d → %q", res.Code, res.Header().Get("Location"))
	}
	if res := bob.post("/account/tokens", url.Values{"name": {"ci"}, "days": {"30"}}); res.Code != http.StatusForbidden {
		t.Fatalf("token made with a one-time password: %d", res.Code)
	}
	if res := bob.post("/account/password", url.Values{"old_password": {otp}, "new_password": {"bob's own password"},
		"new_password_confirm": {"bob's own password"}}); res.Code != http.StatusSeeOther {
		t.Fatalf("password change: %d %s", res.Code, res.Body.String())
	}
	if res := bob.get("/resources"); res.Code != http.StatusOK {
		t.Fatalf("after choosing a password: %d", res.Code)
	}

	// Not on oneself; the API answers the password once too.
	if res := admin.post("/admin/users/"+strconv.Itoa(int(f.admin.ID))+"/password", nil); res.Code != http.StatusSeeOther {
		t.Fatalf("own one-time password: %d", res.Code)
	}
	if body := admin.get("/admin/users").Body.String(); !strings.Contains(body, "Account page") {
		t.Fatal("refusal not explained")
	}
	api := f.api("admin", http.MethodPost, "/api/v1/admin/users/"+strconv.Itoa(int(f.alice.ID))+"/password", nil)
	var out struct {
		Email    string `json:"email"`
		Password string `json:"one_time_password"`
		Must     bool   `json:"must_change_password"`
	}
	if err := json.Unmarshal(api.Body.Bytes(), &out); api.Code != http.StatusOK || err != nil || out.Email != f.alice.Email || !out.Must || len(out.Password) < 20 {
		t.Fatalf("API: %d %s", api.Code, api.Body.String())
	}
	alice := f.browser()
	alice.get("/login")
	if res := alice.post("/login", url.Values{"email": {f.alice.Email}, "password": {out.Password}}); res.Header().Get("Location") != "/account" {
		t.Fatalf("login with the API's one-time password: %d → %q", res.Code, res.Header().Get("Location"))
	}
	if res := f.api("admin", http.MethodPost, "/api/v1/admin/users/9999/password", nil); res.Code != http.StatusNotFound {
		t.Fatalf("unknown user: %d", res.Code)
	}
}
