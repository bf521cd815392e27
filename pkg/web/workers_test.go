package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// TestNoWorker: while no pitasks ticks, every page says so, a queued deployment says it waits
// for no worker (page and API), and the admins' statistics page lists the pitasks processes;
// once one ticks, all of it goes.
func TestNoWorker(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.st.RequestProcess(ctx, f.d1.ID, "deploy"); err != nil { // queued for a worker
		t.Fatal(err)
	}
	queuedReason := func() string {
		rec := f.api("user", "GET", fmt.Sprintf("/api/v1/deployments/%d", f.d1.ID), nil)
		var v apijson.Deployment
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || !v.Queued {
			t.Fatalf("deployment: %v %s", err, rec.Body)
		}
		return v.QueuedReason
	}
	page := func(role, path string) string { return f.as(role).get(path).Body.String() }
	// The lists give it too: the API's, and status.json (its answer asked again with its ETag).
	inList := func(rec *httptest.ResponseRecorder) string {
		t.Helper()
		var body struct{ Deployments []apijson.Deployment }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%v: %s", err, rec.Body)
		}
		for _, v := range body.Deployments {
			if v.ID == f.d1.ID {
				return v.QueuedReason
			}
		}
		t.Fatalf("deployment %d not in %s", f.d1.ID, rec.Body)
		return ""
	}
	alice := f.as("user") // one session: a login moves live's generation
	status := func(tag string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/deployments/status.json", nil)
		if tag != "" {
			req.Header.Set("If-None-Match", tag)
		}
		return alice.do(req)
	}

	// No pitasks ever ran.
	if got := queuedReason(); got != noWorkerQueued {
		t.Fatalf("queued_reason without any pitasks: %q", got)
	}
	if got := inList(f.api("user", "GET", "/api/v1/deployments", nil)); got != noWorkerQueued {
		t.Fatalf("queued_reason in the API's list without any pitasks: %q", got)
	}
	idleStatus := status("")
	if got := inList(idleStatus); got != noWorkerQueued {
		t.Fatalf("queued_reason in status.json without any pitasks: %q", got)
	}
	idleTag := idleStatus.Header().Get("ETag")
	if rec := status(idleTag); rec.Code != http.StatusNotModified {
		t.Fatalf("status.json again, nothing changed: %d", rec.Code)
	}
	for _, p := range []string{"/resources", fmt.Sprintf("/deployments/%d", f.d1.ID), "/account"} {
		if body := page("user", p); !strings.Contains(body, `id="no-worker"`) || !strings.Contains(body, "No pitasks worker has run yet") {
			t.Fatalf("%s has no banner", p)
		}
	}
	if body := page("user", fmt.Sprintf("/deployments/%d", f.d1.ID)); !strings.Contains(body, noWorkerQueued) {
		t.Fatal("the queued deployment's page does not say that no worker runs")
	}

	// One that stopped ticking a minute ago, and one that stopped cleanly.
	for _, h := range []store.Heartbeat{
		{Owner: "pitasks-late", Host: "pimaster", PID: 41, Version: "v1.2", TickMS: 2000, LastTick: f.now.Add(-time.Minute), Leases: 3},
		{Owner: "pitasks-stopped", Host: "pimaster", PID: 40, Version: "v1.1", TickMS: 2000, LastTick: f.now.Add(-time.Hour)},
	} {
		if err := f.st.Beat(ctx, &h); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.StopHeartbeat(ctx, "pitasks-stopped", "stopped", f.now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.s.workers = workersCache{} // forget what was read a moment ago
	if body := page("other", "/resources"); !strings.Contains(body, "No pitasks worker is running (the last one ticked 1m00s ago") {
		t.Fatalf("banner with a stopped pitasks: %s", body)
	}
	admin := page("admin", "/admin/stats")
	for _, want := range []string{"pitasks-late", "no tick for 1m00s", "pitasks-stopped", ">stopped<", "v1.2"} {
		if !strings.Contains(admin, want) {
			t.Errorf("the admins' page lacks %q", want)
		}
	}

	// A pitasks ticks: no banner, the deployment is queued like any other.
	if err := f.st.Beat(ctx, &store.Heartbeat{Owner: "pitasks-live", TickMS: 2000, LastTick: f.now}); err != nil {
		t.Fatal(err)
	}
	f.s.workers = workersCache{}
	if got := queuedReason(); got != "" {
		t.Fatalf("queued_reason with a pitasks running: %q", got)
	}
	if got := inList(f.api("user", "GET", "/api/v1/deployments", nil)); got != "" {
		t.Fatalf("queued_reason in the API's list with a pitasks running: %q", got)
	}
	// No deployment changed, but the answer did: the ETag taken while none ran no longer holds.
	if rec := status(idleTag); rec.Code != http.StatusOK || inList(rec) != "" {
		t.Fatalf("status.json with a pitasks running, asked with the tag of before: %d %s", rec.Code, rec.Body)
	}
	if body := page("user", "/resources"); strings.Contains(body, `id="no-worker"`) {
		t.Fatal("banner while a pitasks runs")
	}
	if admin := page("admin", "/admin/stats"); !strings.Contains(admin, ">alive<") {
		t.Error("the live pitasks is not shown alive")
	}

	// That pitasks stops ticking: nothing is written, no deployment changes, yet the answer
	// does, and the ETag taken while it ran no longer holds.
	runningTag := status("").Header().Get("ETag")
	if rec := status(runningTag); rec.Code != http.StatusNotModified {
		t.Fatalf("status.json again with a pitasks running, nothing changed: %d", rec.Code)
	}
	f.now = f.now.Add(time.Minute)
	f.s.workers = workersCache{}
	if rec := status(runningTag); rec.Code != http.StatusOK || inList(rec) != noWorkerQueued {
		t.Fatalf("status.json once the pitasks stopped ticking, asked with the tag of before: %d %s", rec.Code, rec.Body)
	}
}

// TestBrowserNoWorkerBanner: in Chromium, the banner appears on the pages once pitasks stops,
// with the queued deployment saying it has no worker (its open page stops saying it once
// pitasks runs again), and goes once pitasks runs again.
func TestBrowserNoWorkerBanner(t *testing.T) {
	testenv.NeedCommand(t, "chromium")
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	f := newFixture(t)
	f.s.now = func() time.Time { return time.Now().UTC() }
	srv := httptest.NewServer(f.s)
	t.Cleanup(srv.Close) // after the browser's own cleanup, which ends the page's event stream
	c := newChrome(t, srv.URL, artifactsDir(t, "web-no-worker"), 5*time.Minute)
	banner := `document.getElementById("no-worker") !== null`
	reloadUntil := func(step, path, js string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			c.do(step, chromedp.Navigate(srv.URL+path), chromedp.WaitReady("body"))
			if c.eval(`String(`+js+`)`) == "true" {
				return
			}
			if time.Now().After(deadline) {
				c.fail(step, "%s still false on %s", js, path)
			}
			time.Sleep(200 * time.Millisecond) // between two reloads, not a wait for the condition
		}
	}

	stop := startPitasks(t, f.st)
	c.login(f.alice.Email)
	reloadUntil("pitasks runs: no banner", "/resources", "!("+banner+")")
	c.shot("01-worker-running")

	stop()
	// pitasks gave its deployments back when it stopped; a new request waits for a worker.
	if err := f.st.RequestProcess(context.Background(), f.d1.ID, "deploy"); err != nil {
		t.Fatal(err)
	}
	reloadUntil("pitasks stopped: banner", "/resources", banner)
	if msg := c.eval(`document.getElementById("no-worker").textContent`); !strings.Contains(msg, "No pitasks worker is running") {
		t.Fatalf("banner: %q", msg)
	}
	reason := `document.getElementById("queued-reason")`
	reloadUntil("the deployment says it has no worker", fmt.Sprintf("/deployments/%d", f.d1.ID),
		banner+` && !`+reason+`.hidden && `+reason+`.textContent === "`+noWorkerQueued+`"`)
	c.shot("02-no-worker")

	stop = startPitasks(t, f.st)
	defer stop()
	// The page, not reloaded, stops saying so once a pitasks takes the deployment.
	c.waitFor("the reason goes without a reload", reason+`.hidden`, time.Minute)
	reloadUntil("pitasks runs again: no banner", "/resources", "!("+banner+")")
}

// TestAStreamSaysWhenNoWorkerRuns: the event stream of a queued deployment says it waits for
// no worker, as status.json does, and stops saying it once a pitasks ticks, though the
// deployment itself did not change.
func TestAStreamSaysWhenNoWorkerRuns(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := f.st.RequestProcess(ctx, f.d1.ID, "deploy"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.s)
	defer srv.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/deployments/events?ids=%d", srv.URL, f.d1.ID), nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sessionFor(t, f.st, &f.alice)})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	id := float64(f.d1.ID)
	readEvents(t, res, func(ev map[string]any) bool {
		return ev["id"] == id && ev["queued"] == true && ev["queued_reason"] == noWorkerQueued
	})
	if err := f.st.Beat(ctx, &store.Heartbeat{Owner: "pitasks-live", TickMS: 2000, LastTick: f.now}); err != nil {
		t.Fatal(err)
	}
	readEvents(t, res, func(ev map[string]any) bool {
		_, said := ev["queued_reason"]
		return ev["id"] == id && ev["queued"] == true && !said
	})
}
