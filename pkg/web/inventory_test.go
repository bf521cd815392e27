package web

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestNamesRefuseInvisibleCharacters: every name a person types is checked by one rule.
func TestNamesRefuseInvisibleCharacters(t *testing.T) {
	f := newFixture(t)
	alice := f.as("user")
	before := f.fingerprint()
	for _, tc := range []struct {
		path string
		form url.Values
		says string
	}{
		{"/account/tokens", url.Values{"name": {"ci\u202etoken"}}, "The token name holds a bidirectional control character (U+202E)"},
		{"/account/tokens", url.Values{"name": {"ci\u200btoken"}}, "The token name holds a zero-width character (U+200B)"},
		{fmt.Sprintf("/reservations/%d/deploy", f.r3.ID), url.Values{"name": {"exp\x07"}, "environment": {fmt.Sprint(f.env.ID)},
			"system_size": {"0"}}, "The deployment name holds a control character (U+0007)"},
		{fmt.Sprintf("/reservations/%d/deploy", f.r3.ID), url.Values{"name": {"exp\xff"}, "environment": {fmt.Sprint(f.env.ID)},
			"system_size": {"0"}}, "The deployment name is not valid UTF-8 text"},
	} {
		res := alice.post(tc.path, tc.form)
		body := html.UnescapeString(res.Body.String())
		if loc := res.Header().Get("Location"); loc != "" {
			body += html.UnescapeString(alice.get(loc).Body.String())
		}
		if res.Code >= 500 || !strings.Contains(body, tc.says) {
			t.Errorf("POST %s %q: %d; want a page saying %q", tc.path, tc.form, res.Code, tc.says)
		}
	}
	signup := f.browser()
	signup.get("/signup")
	res := signup.post("/signup", url.Values{"email": {"zed@example.com"}, "first_name": {"Ze\u2066d"}, "last_name": {"Z"},
		"password": {"a long enough passphrase"}})
	if body := html.UnescapeString(res.Body.String()); res.Code != http.StatusBadRequest || !strings.Contains(body, "First name holds a bidirectional control character (U+2066)") {
		t.Errorf("signup: %d", res.Code)
	}
	res = f.api("user", http.MethodPost, "/api/v1/deployments", map[string]any{"reservation_id": f.r3.ID, "name": "x\u200dy",
		"environment_id": f.env.ID})
	if res.Code != http.StatusBadRequest || !strings.Contains(res.Body.String(), "zero-width character (U+200D)") {
		t.Errorf("API deployment name: %d %s", res.Code, res.Body.String())
	}
	if f.fingerprint() != before {
		t.Fatal("a refused name changed the database")
	}
}
