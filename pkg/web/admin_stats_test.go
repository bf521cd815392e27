package web

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
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
		if err := storetest.DB(f.st).Create(&ev).Error; err != nil {
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

	// The charts: node-1 finished its one run (a full green bar), node-2 lost its one (no bar);
	// raspios-lite's week: half.
	nodeBars := chartRects(t, body, "Success rate per node")
	if len(nodeBars) < 2 || nodeBars[0]["class"] != "bar good" || nodeBars[1]["width"] != "0.0" || nodeBars[0]["width"] == "0.0" {
		t.Errorf("per node chart bars: %v", nodeBars)
	}
	if bars := chartRects(t, body, "Success rate per environment"); len(bars) != 1 || bars[0]["class"] != "bar bad" {
		t.Errorf("per environment chart bars: %v", bars)
	}
	weeks := chartRects(t, body, "Success rate by week, all nodes")
	if len(weeks) != 1 || weeks[0]["class"] != "bar bad" || weeks[0]["height"] != "80.0" {
		t.Errorf("weekly chart: %v, want this week only, at 50 %%", weeks)
	}
	if states := chartRects(t, body, "Mean time per state, all nodes"); len(states) != 2 {
		t.Errorf("time per state chart: %v, want env_copy and user_script", states)
	}
	monday := weekStart(f.now).Format("Mon Jan 2, 2006")
	if !strings.Contains(body, `<td data-label="Week of">`+monday+`</td><td class="right" data-label="Finished">1</td>`+
		`<td class="right" data-label="Lost or failed">1</td>`) {
		t.Errorf("/admin/stats lacks this week's numbers (%s: 1 finished, 1 lost)", monday)
	}

	res = admin.get(fmt.Sprintf("/admin/stats/nodes/%d", f.nodes[1].ID))
	body = res.Body.String()
	if bars := chartRects(t, body, "Success rate by week, node node-2"); len(bars) != 1 || bars[0]["height"] != "0.0" {
		t.Errorf("node-2's weekly chart: %v, want one empty column (0 %%)", bars)
	}
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

// chartRects finds in a page the chart titled title, checks it is well-formed SVG, and returns
// the attributes of its bars.
func chartRects(t *testing.T, page, title string) []map[string]string {
	t.Helper()
	i := strings.Index(page, "<title>"+title+"</title>")
	start := strings.LastIndex(page[:max(i, 0)], "<svg ")
	if i < 0 || start < 0 {
		t.Errorf("no chart titled %q", title)
		return nil
	}
	end := strings.Index(page[start:], "</svg>")
	dec := xml.NewDecoder(strings.NewReader(page[start : start+end+len("</svg>")]))
	var rects []map[string]string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return rects
		}
		if err != nil {
			t.Errorf("chart %q is not XML: %v", title, err)
			return nil
		}
		if e, ok := tok.(xml.StartElement); ok && e.Name.Local == "rect" {
			m := map[string]string{}
			for _, a := range e.Attr {
				m[a.Name.Local] = a.Value
			}
			rects = append(rects, m)
		}
	}
}

// TestByWeek: outcomes fall in the week they ended in, weeks start on Monday 00:00 UTC, and
// those outside the weeks shown are left out.
func TestByWeek(t *testing.T) {
	// Wednesday 2026-11-25 15:00 in Paris is in the week of Monday 2026-11-23.
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	first := weekStart(time.Date(2026, 11, 25, 15, 0, 0, 0, paris)).AddDate(0, 0, -7)
	if want := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC); !first.Equal(want) {
		t.Fatalf("first week %v, want %v", first, want)
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	weeks := byWeek([]store.DeployOutcome{
		{EndedAt: at("2026-11-15T23:59:59Z"), Succeeded: true}, // before
		{EndedAt: at("2026-11-16T00:00:00Z"), Succeeded: true},
		{EndedAt: at("2026-11-22T23:59:59Z")},
		{EndedAt: at("2026-11-23T00:00:00Z"), Succeeded: true},
		{EndedAt: at("2026-11-30T00:00:00Z")}, // after
	}, first, 2)
	if len(weeks) != 2 || weeks[0].Succeeded != 1 || weeks[0].Failed != 1 || weeks[1].Succeeded != 1 || weeks[1].Failed != 0 ||
		!weeks[1].Start.Equal(at("2026-11-23T00:00:00Z")) || weeks[0].SuccessRate() != 50 {
		t.Errorf("byWeek = %+v", weeks)
	}
	if (weekStats{}).SuccessRate() != -1 {
		t.Error("an empty week has a rate")
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
