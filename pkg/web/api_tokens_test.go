package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/remote"

	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestAPITokenWithPassword: a program gets a token with the user's e-mail and password, the
// login page's refusals and throttling apply, and the token revokes itself.
func TestAPITokenWithPassword(t *testing.T) {
	f := newFixture(t)
	ask := func(email, pw string, days int) *httptest.ResponseRecorder {
		return f.api("anon", http.MethodPost, "/api/v1/tokens", map[string]any{"email": email, "password": pw, "name": "laptop", "days": days})
	}
	for _, c := range []struct {
		email, pw string
		days      int
		code      int
		msg       string
	}{
		{f.alice.Email, "wrong", 0, http.StatusUnauthorized, "Wrong e-mail or password."},
		{"nobody@example.com", testPassword, 0, http.StatusUnauthorized, "Wrong e-mail or password."},
		{f.carol.Email, testPassword, 0, http.StatusForbidden, "waiting for an admin's approval"},
		{f.alice.Email, testPassword, 3, http.StatusBadRequest, "days: a token lasts 7, 30, 90, 180, 365 days"},
	} {
		if res := ask(c.email, c.pw, c.days); res.Code != c.code || !strings.Contains(res.Body.String(), c.msg) {
			t.Errorf("%s %q days %d: %d %s, want %d %q", c.email, c.pw, c.days, res.Code, res.Body, c.code, c.msg)
		}
	}
	res := ask(" Alice@Example.com ", testPassword, 7)
	var tok apijson.NewToken
	if err := json.Unmarshal(res.Body.Bytes(), &tok); err != nil || res.Code != http.StatusCreated || !strings.HasPrefix(tok.Token, "psd_") ||
		tok.ExpiresAt.Sub(f.now).Hours() != 7*24 {
		t.Fatalf("token: %d %s (%v)", res.Code, res.Body, err)
	}
	f.tokens["cli"] = tok.Token
	if res := f.api("cli", http.MethodGet, "/api/v1/reservations", nil); res.Code != http.StatusOK || !strings.Contains(res.Body.String(), `"user":"Alice Liddell"`) {
		t.Fatalf("the new token does not open alice's API: %d %s", res.Code, res.Body)
	}
	if res := f.api("cli", http.MethodDelete, "/api/v1/tokens/current", nil); res.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", res.Code, res.Body)
	}
	if res := f.api("cli", http.MethodGet, "/api/v1/nodes", nil); res.Code != http.StatusUnauthorized {
		t.Errorf("a revoked token still opens the API: %d", res.Code)
	}
	if res := f.api("user", http.MethodGet, "/api/v1/nodes", nil); res.Code != http.StatusOK {
		t.Errorf("revoking one token revoked alice's others: %d", res.Code)
	}

	// Failures slow the address down as on the login page: no password is checked meanwhile.
	var last *httptest.ResponseRecorder
	for range 30 {
		if last = ask(f.bob.Email, "wrong", 0); last.Code == http.StatusTooManyRequests {
			break
		}
	}
	if last.Code != http.StatusTooManyRequests || last.Header().Get("Retry-After") == "" {
		t.Fatalf("30 wrong passwords: %d %s, want 429 with Retry-After", last.Code, last.Body)
	}
	if res := ask(f.bob.Email, testPassword, 0); res.Code != http.StatusTooManyRequests {
		t.Errorf("the right password while throttled: %d, want 429", res.Code)
	}
}

// TestDeploymentHostKey: the owner of a deployed node gets the host key pitasks pinned for its
// system, and where ssh reaches it; nobody else gets the key.
func TestDeploymentHostKey(t *testing.T) {
	f := newFixture(t)
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGp2k8a5Zs3Zb0QjOQdMuS6c6yUNU4pGf3Du0PFqxFvB"
	if err := f.st.PinHostKey(t.Context(), remote.RoleSystem, f.d1.NodeID, key); err != nil {
		t.Fatal(err)
	}
	get := func(role string) apijson.Deployment {
		res := f.api(role, http.MethodGet, "/api/v1/deployments/"+fmt.Sprint(f.d1.ID), nil)
		var v apijson.Deployment
		if err := json.Unmarshal(res.Body.Bytes(), &v); err != nil || res.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", role, res.Code, res.Body)
		}
		return v
	}
	if v := get("user"); v.HostKey != key || v.SSHHost != "10.10.0.1" || v.SSHPort != 22 {
		t.Errorf("owner: host key %q, ssh %s:%d", v.HostKey, v.SSHHost, v.SSHPort)
	}
	if v := get("admin"); v.HostKey != "" {
		t.Errorf("an admin got the owner's host key")
	}
	if err := storetest.DB(f.st).Exec("UPDATE nodes SET public_ip = ?, public_port = ? WHERE id = ?", "pis.example.org", 2201, f.d1.NodeID).Error; err != nil {
		t.Fatal(err)
	}
	if v := get("user"); v.SSHHost != "pis.example.org" || v.SSHPort != 2201 {
		t.Errorf("public address: ssh %s:%d", v.SSHHost, v.SSHPort)
	}
}
