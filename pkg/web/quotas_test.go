package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestQuotaPagesAndAPI: the admin sets the quotas (settings page, then API); a user over one
// is refused on the page and in the API with the limit and the time the same request fits;
// the Account page shows use and limits; admins are exempt.
func TestQuotaPagesAndAPI(t *testing.T) {
	f := newFixture(t)
	admin := f.as("admin")
	settings := url.Values{"signup_domains": {""}, "max_hours": {"72"}, "smtp_port": {"587"}, "quota_nodes": {"3"}, "quota_node_hours": {"0"}}
	if res := admin.post("/admin/settings", settings); res.Code != http.StatusSeeOther {
		t.Fatalf("save settings: %d", res.Code)
	}
	if body := admin.get("/admin/settings").Body.String(); !strings.Contains(body, `id="quota_nodes" name="quota_nodes" min="0" max="1000000" value="3"`) {
		t.Fatal("the settings page does not show the quota")
	}
	bad := url.Values{}
	for k, v := range settings {
		bad[k] = v
	}
	bad.Set("quota_nodes", "-2")
	admin.post("/admin/settings", bad)
	if body := admin.get("/admin/settings").Body.String(); !strings.Contains(body, "The most nodes at once must be a whole number") {
		t.Fatal("a negative quota is not refused with a message")
	}
	if res := f.api("admin", http.MethodGet, "/api/v1/admin/quotas", nil); res.Body.String() != `{"nodes":3,"node_hours":0}`+"\n" {
		t.Fatalf("quotas: %s", res.Body.String())
	}

	// Alice holds nodes 1, 2 and 4 until now+2h: a fourth node waits for them.
	alice := f.as("user")
	fits := f.now.Add(2 * time.Hour).UTC().Format("2006-01-02 15:04 UTC")
	res := alice.post("/reserve", url.Values{"nodes": {strconv.Itoa(int(f.nodes[4].ID))}, "hours": {"2"}})
	if res.Code != http.StatusConflict || !strings.Contains(res.Body.String(), "Quota: you may hold at most 3 node(s) at once. The same request fits from "+fits+".") {
		t.Fatalf("page refusal: %d %s", res.Code, res.Body.String())
	}
	api := f.api("user", http.MethodPost, "/api/v1/reservations", map[string]any{"node_ids": []uint{f.nodes[4].ID}, "hours": 2})
	var out struct {
		Error string `json:"error"`
		Quota struct {
			Limit  string     `json:"limit"`
			Max    int        `json:"max"`
			FitsAt *time.Time `json:"fits_at"`
		} `json:"quota"`
	}
	if err := json.Unmarshal(api.Body.Bytes(), &out); err != nil || api.Code != http.StatusConflict || out.Quota.Limit != "nodes" ||
		out.Quota.Max != 3 || out.Quota.FitsAt == nil || !out.Quota.FitsAt.Equal(f.now.Add(2*time.Hour).Truncate(time.Second)) {
		t.Fatalf("API refusal: %d %s", api.Code, api.Body.String())
	}
	body := alice.get("/account").Body.String()
	if !strings.Contains(body, "3 of at most 3 at once") || !strings.Contains(body, "(no limit)") {
		t.Fatalf("the account page does not show the quota:\n%s", body)
	}

	// Node-hours: alice has 9 (2 nodes for 3 h, 1 for 3 h); 2 more exceed 10.
	if res := f.api("admin", http.MethodPut, "/api/v1/admin/quotas", map[string]any{"nodes": 0, "node_hours": 10}); res.Code != http.StatusOK {
		t.Fatalf("PUT quotas: %d %s", res.Code, res.Body.String())
	}
	if res := f.api("admin", http.MethodPut, "/api/v1/admin/quotas", map[string]any{"nodes": -1}); res.Code != http.StatusBadRequest {
		t.Fatalf("PUT a negative quota: %d", res.Code)
	}
	api = f.api("user", http.MethodPost, "/api/v1/reservations", map[string]any{"node_ids": []uint{f.nodes[4].ID}, "hours": 2})
	if api.Code != http.StatusConflict || !strings.Contains(api.Body.String(), `"limit":"node-hours"`) ||
		!strings.Contains(api.Body.String(), "at most 10 node-hours in any 7 days") {
		t.Fatalf("node-hours refusal: %d %s", api.Code, api.Body.String())
	}
	// One hour fits (10); extending it does not.
	api = f.api("user", http.MethodPost, "/api/v1/reservations", map[string]any{"node_ids": []uint{f.nodes[4].ID}, "hours": 1})
	if api.Code != http.StatusCreated {
		t.Fatalf("a reservation within the quota: %d %s", api.Code, api.Body.String())
	}
	var r struct {
		ID uint `json:"id"`
	}
	json.Unmarshal(api.Body.Bytes(), &r)
	ext := f.api("user", http.MethodPost, "/api/v1/reservations/"+strconv.Itoa(int(r.ID))+"/extend", map[string]any{"hours": 1})
	if ext.Code != http.StatusConflict || !strings.Contains(ext.Body.String(), `"limit":"node-hours"`) {
		t.Fatalf("extension over the quota: %d %s", ext.Code, ext.Body.String())
	}
	if body := alice.get("/account").Body.String(); !strings.Contains(body, "at most 10 in any 7 days") {
		t.Fatal("the account page does not show the node-hours quota")
	}

	// Admins are exempt.
	if res := f.api("admin", http.MethodPost, "/api/v1/reservations", map[string]any{"node_ids": []uint{f.nodes[5].ID}, "hours": 48}); res.Code != http.StatusCreated {
		t.Fatalf("admin reservation: %d %s", res.Code, res.Body.String())
	}
	if body := admin.get("/account").Body.String(); !strings.Contains(body, "Admins have no quota.") {
		t.Fatal("the admin's account page does not say they are exempt")
	}
}
