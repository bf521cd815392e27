package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

// TestStatisticsPages: an admin sees per-node and per-environment statistics with the last
// failures and their reason; a user is refused and a visitor sent to the login page.
func TestStatisticsPages(t *testing.T) {
	f := newFixture(t)
	t0 := f.now.Add(-30 * time.Minute)
	add := func(d store.Deployment, state process.StateName, outcome string, ms int64, msg string) {
		t.Helper()
		ev := store.StateEvent{DeploymentID: d.ID, NodeID: d.NodeID, Process: "deploy", State: state, Outcome: outcome,
			Message: msg, StartedAt: t0, EndedAt: t0.Add(time.Duration(ms) * time.Millisecond), DurationMS: ms}
		if err := f.st.DB.Create(&ev).Error; err != nil {
			t.Fatal(err)
		}
		t0 = ev.EndedAt
	}
	add(f.d1, "env_copy", store.OutcomeDone, 95_000, "")
	add(f.d1, "user_script", store.OutcomeDone, 2_000, "")
	add(f.d2, "env_copy", store.OutcomeRetry, 40_000, "env_copy: dd: error writing '/dev/mmcblk0': Input/output error")
	add(f.d2, "env_copy", store.OutcomeLost, 3_600_000, "no progress in env_copy after 1h0m0s")

	admin := f.as("admin")
	res := admin.get("/admin/stats")
	if res.Code != http.StatusOK {
		t.Fatalf("GET /admin/stats: %d", res.Code)
	}
	body := res.Body.String()
	for _, want := range []string{
		`href="/admin/stats"`, // the admin menu entry
		fmt.Sprintf(`href="/admin/stats/nodes/%d">node-1</a>`, f.nodes[0].ID),
		fmt.Sprintf(`href="/admin/stats/environments/%d">raspios-lite</a>`, f.env.ID),
		"Input/output error", "no progress in env_copy after 1h0m0s",
		"1m35s", // mean env_copy time
		"50 %",  // raspios-lite: one finished, one lost
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/admin/stats lacks %q", want)
		}
	}

	res = admin.get(fmt.Sprintf("/admin/stats/nodes/%d", f.nodes[1].ID))
	body = res.Body.String()
	if res.Code != http.StatusOK || !strings.Contains(body, "Node node-2") || !strings.Contains(body, "Input/output error") ||
		strings.Contains(body, "1m35s") {
		t.Errorf("node-2 page: %d %.2000s", res.Code, body)
	}
	res = admin.get(fmt.Sprintf("/admin/stats/nodes/%d", f.nodes[0].ID))
	if body = res.Body.String(); strings.Contains(body, "Input/output error") || !strings.Contains(body, "100 %") {
		t.Errorf("node-1 page shows node-2's failures or no success: %.2000s", body)
	}
	res = admin.get(fmt.Sprintf("/admin/stats/environments/%d", f.env.ID))
	if body = res.Body.String(); res.Code != http.StatusOK || !strings.Contains(body, "Environment raspios-lite") ||
		!strings.Contains(body, "1m35s") || !strings.Contains(body, "Input/output error") {
		t.Errorf("environment page: %d %.2000s", res.Code, body)
	}
	if res := admin.get("/admin/stats/nodes/9999"); res.Code != http.StatusNotFound {
		t.Errorf("unknown node: %d", res.Code)
	}

	for _, path := range []string{"/admin/stats", fmt.Sprintf("/admin/stats/nodes/%d", f.nodes[0].ID), "/metrics"} {
		if res := f.as("user").get(path); res.Code != http.StatusForbidden {
			t.Errorf("user GET %s: %d, want 403", path, res.Code)
		}
		if res := f.as("anon").get(path); res.Code != http.StatusSeeOther || !strings.HasPrefix(res.Header().Get("Location"), "/login") {
			t.Errorf("anonymous GET %s: %d %s, want a redirect to the login page", path, res.Code, res.Header().Get("Location"))
		}
	}
}

// TestMetricsEndpoint: admins scrape the deployments by state on /metrics, unless metrics are
// served on [frontend] metrics_listen.
func TestMetricsEndpoint(t *testing.T) {
	f := newFixture(t)
	res := f.as("admin").get("/metrics")
	if res.Code != http.StatusOK || !strings.Contains(res.Body.String(), `piseduce_deployments{process="deploy",state="deployed"} 3`) {
		t.Errorf("GET /metrics: %d %.3000s", res.Code, res.Body.String())
	}
	f = newFixture(t, func(c *config.Config) { c.Frontend.MetricsListen = "127.0.0.1:9101" })
	if res := f.as("admin").get("/metrics"); res.Code != http.StatusNotFound {
		t.Errorf("GET /metrics with metrics_listen set: %d, want 404", res.Code)
	}
}
