package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/piseduce/piseduce/pkg/testenv"
)

var reserveThenStartRE = regexp.MustCompile(`<input type="hidden" name="start" value="([^"]*)">\s*<button type="submit" id="reserve-then">`)

// TestReserveOffersEarliestFit: a reservation whose nodes are taken answers, on the page, with
// the earliest start at which the same request fits, in the user's zone, and a button that
// reserves then; the API's 409 body gives earliest_start.
func TestReserveOffersEarliestFit(t *testing.T) {
	f := newFixture(t)
	// Nodes 1, 2 and 4 (alice) and 3 (bob) are reserved until f.now+2h: 1 RPI4B is free.
	ends := f.r1.EndsAt
	res := f.api("other", http.MethodPost, "/api/v1/reservations", map[string]any{"model": "RPI4B", "count": 2, "hours": 1})
	var body struct {
		Error         string    `json:"error"`
		EarliestStart time.Time `json:"earliest_start"`
	}
	if res.Code != http.StatusConflict || json.Unmarshal(res.Body.Bytes(), &body) != nil || !body.EarliestStart.Equal(ends) {
		t.Fatalf("API, 2 of 1 free RPI4B: %d %s, want 409 with earliest_start %s", res.Code, res.Body.String(), ends.Format(time.RFC3339))
	}
	if !strings.Contains(body.Error, "Only 1 node(s) of model RPI4B are free for that time; the earliest these fit is ") {
		t.Errorf("API message: %q", body.Error)
	}
	// Named nodes too.
	res = f.api("other", http.MethodPost, "/api/v1/reservations", map[string]any{"node_ids": []uint{f.nodes[0].ID}, "hours": 3})
	if res.Code != http.StatusConflict || !strings.Contains(res.Body.String(), `"earliest_start":"`+ends.UTC().Format(time.RFC3339)) {
		t.Fatalf("API, a taken node: %d %s", res.Code, res.Body.String())
	}

	b := f.as("other")
	b.get("/reserve")
	form := url.Values{"model": {"RPI4B"}, "count": {"2"}, "hours": {"1"}, "tz": {"Asia/Tokyo"}}
	res = b.post("/reserve", form)
	page := res.Body.String()
	then := ceilMinute(ends)
	want := "the earliest these fit is " + f.s.zones.format(then, "Asia/Tokyo")
	if res.Code != http.StatusConflict || !strings.Contains(page, want) {
		t.Fatalf("reserve page: %d, want 409 saying %q: %s", res.Code, want, page)
	}
	m := reserveThenStartRE.FindStringSubmatch(page)
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	if m == nil || m[1] != then.In(tokyo).Format("2006-01-02T15:04") {
		t.Fatalf("the button to reserve then: %v, want the start %s", m, then.In(tokyo).Format("2006-01-02T15:04"))
	}
	form.Set("start", m[1])
	if res = b.post("/reserve", form); res.Code != http.StatusSeeOther {
		t.Fatalf("reserving then: %d %s", res.Code, res.Body.String())
	}
	rs, err := f.st.UserReservations(t.Context(), f.bob.ID, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if last := rs[len(rs)-1]; !last.StartsAt.Equal(then) || len(last.Nodes) != 2 {
		t.Fatalf("bob's last reservation: %d nodes from %s, want 2 from %s", len(last.Nodes), last.StartsAt, then)
	}
}

// availabilityJSON is the API's answer.
type availabilityJSON struct {
	From, To time.Time
	Nodes    []struct {
		Name, Model, Switch string
		Reservations        []struct {
			Start, End    time.Time
			Mine          bool
			Holder        string
			ReservationID uint `json:"reservation_id"`
		}
	}
}

// TestAvailability: the API and the page show each node's reservations, filtered by model and
// switch; a user sees others' reservations only as "reserved", an admin sees who holds them.
func TestAvailability(t *testing.T) {
	f := newFixture(t)
	get := func(role, q string) availabilityJSON {
		t.Helper()
		res := f.api(role, http.MethodGet, "/api/v1/availability"+q, nil)
		var a availabilityJSON
		if res.Code != http.StatusOK || json.Unmarshal(res.Body.Bytes(), &a) != nil {
			t.Fatalf("availability%s as %s: %d %s", q, role, res.Code, res.Body.String())
		}
		return a
	}
	a := get("user", "")
	if len(a.Nodes) != 6 || !a.From.Equal(f.now.Truncate(time.Second)) || !a.To.Equal(a.From.AddDate(0, 0, 7)) {
		t.Fatalf("default: %d nodes from %s to %s", len(a.Nodes), a.From, a.To)
	}
	byName := map[string]int{}
	for i, n := range a.Nodes {
		byName[n.Name] = i
	}
	mine, theirs := a.Nodes[byName["node-1"]].Reservations, a.Nodes[byName["node-3"]].Reservations
	if len(mine) != 1 || !mine[0].Mine || mine[0].ReservationID != f.r1.ID || !mine[0].End.Equal(f.r1.EndsAt) {
		t.Errorf("alice's node-1: %+v", mine)
	}
	if len(theirs) != 1 || theirs[0].Mine || theirs[0].Holder != "" || theirs[0].ReservationID != 0 {
		t.Errorf("bob's node-3 as alice: %+v", theirs)
	}
	if free := a.Nodes[byName["node-5"]].Reservations; len(free) != 0 {
		t.Errorf("free node-5: %+v", free)
	}
	theirs = get("admin", "").Nodes[byName["node-3"]].Reservations
	if len(theirs) != 1 || theirs[0].Holder != f.bob.DisplayName() || theirs[0].ReservationID != f.r2.ID {
		t.Errorf("node-3 as admin: %+v", theirs)
	}
	if a := get("user", "?model=RPI3Bplus"); len(a.Nodes) != 1 || a.Nodes[0].Name != "node-6" {
		t.Errorf("model filter: %+v", a.Nodes)
	}
	if a := get("user", "?switch=sw2"); len(a.Nodes) != 0 {
		t.Errorf("switch sw2 has no node: %+v", a.Nodes)
	}
	later := url.QueryEscape(f.now.Add(3 * time.Hour).Format(time.RFC3339))
	if a := get("user", "?from="+later); len(a.Nodes[byName["node-1"]].Reservations) != 0 {
		t.Errorf("from after every reservation: %+v", a.Nodes[byName["node-1"]])
	}
	for _, q := range []string{"?from=tomorrow", "?to=" + url.QueryEscape(f.now.Add(-time.Hour).Format(time.RFC3339)),
		"?to=" + url.QueryEscape(f.now.AddDate(0, 0, 40).Format(time.RFC3339))} {
		if res := f.api("user", http.MethodGet, "/api/v1/availability"+q, nil); res.Code != http.StatusBadRequest {
			t.Errorf("availability%s: %d, want 400", q, res.Code)
		}
	}

	page := func(role, q string) string {
		t.Helper()
		res := f.as(role).get("/availability" + q)
		if res.Code != http.StatusOK {
			t.Fatalf("/availability%s as %s: %d", q, role, res.Code)
		}
		return res.Body.String()
	}
	p := page("user", "")
	for _, want := range []string{`<svg class="timeline"`, `data-node="node-1"`, "node-1: your reservation, ", "node-3: reserved, "} {
		if !strings.Contains(p, want) {
			t.Errorf("the page as alice lacks %q", want)
		}
	}
	if strings.Contains(p, "Bob") {
		t.Error("the page shows alice who holds bob's node")
	}
	if p := page("admin", ""); !strings.Contains(p, "node-3: reserved by "+f.bob.DisplayName()+", ") {
		t.Error("the page does not show an admin who holds node-3")
	}
	p = page("user", "?model=RPI3Bplus&days=3")
	if !strings.Contains(p, `data-node="node-6"`) || strings.Contains(p, `data-node="node-1"`) || strings.Count(p, `class="tick"`) != 3 {
		t.Errorf("filtered by model, 3 days: %s", p)
	}
	if res := f.as("user").get("/availability?days=99"); res.Code != http.StatusBadRequest {
		t.Errorf("99 days: %d", res.Code)
	}
}

// TestBrowserAvailability: in headless Chromium, the availability page draws the timeline (a
// row per node, a block per reservation, sized by the style sheet) and its filter narrows it
// to a model; a refused reservation's "Reserve from" button reserves at the earliest start.
func TestBrowserAvailability(t *testing.T) {
	testenv.NeedCommand(t, "chromium")
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	f := newFixture(t)
	srv := httptest.NewServer(f.s)
	t.Cleanup(srv.Close) // after the browser's own cleanup, which ends the page's event stream
	c := newChrome(t, srv.URL, artifactsDir(t, "web-availability"), 10*time.Minute)
	c.login(f.alice.Email)
	c.click("availability link", `nav a[href="/availability"]`)
	c.do("timeline", chromedp.WaitVisible(chromedp.ID("timeline")))
	c.shot("availability")
	const rows = `Array.from(document.querySelectorAll("#timeline g.node-row")).map(g => g.dataset.node).join(" ")`
	if got := c.eval(rows); got != "node-1 node-2 node-3 node-4 node-5 node-6" {
		t.Errorf("timeline rows: %q", got)
	}
	if got := c.eval(`String(document.querySelectorAll("#timeline rect.res").length) + "/" + String(document.querySelectorAll("#timeline rect.res.mine").length)`); got != "4/3" {
		t.Errorf("reservations drawn (all/alice's): %s, want 4/3", got)
	}
	if w := c.eval(`String(Math.round(document.getElementById("timeline").getBoundingClientRect().width))`); w == "0" {
		t.Error("the timeline has no width")
	}
	if fill := c.eval(`getComputedStyle(document.querySelector("#timeline rect.res.mine")).fill`); fill == "rgb(0, 0, 0)" {
		t.Errorf("alice's reservation is filled %s, not by the style sheet", fill)
	}
	c.do("filter by model", chromedp.SetValue(chromedp.ID("avail-model"), "RPI3Bplus"))
	c.click("show", `#avail-filter button[type=submit]`)
	c.do("filtered", chromedp.WaitVisible(chromedp.ID("timeline")))
	c.shot("availability-rpi3")
	if got := c.eval(rows); got != "node-6" {
		t.Errorf("filtered by RPI3Bplus: rows %q", got)
	}
	if got := c.eval(`document.getElementById("avail-model").value`); got != "RPI3Bplus" {
		t.Errorf("the filter shows the model %q", got)
	}

	c.do("reserve form", chromedp.Navigate(srv.URL+"/reserve"), chromedp.WaitVisible(chromedp.ID("start")),
		chromedp.SetValue(chromedp.CSS(`input[name=count]`), "2"), chromedp.SetValue(chromedp.CSS(`select[name=model]`), "RPI4B"))
	c.click("reserve", `form[action="/reserve"] button[type=submit]`)
	c.do("refused", chromedp.WaitVisible(chromedp.ID("reserve-then")))
	c.shot("reserve-earliest")
	if msg := c.eval(`document.querySelector(".flash.err").textContent`); !strings.Contains(msg, "the earliest these fit is") {
		t.Errorf("refusal: %q", msg)
	}
	c.click("reserve then", "#reserve-then")
	c.do("reserved", chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	if msg := c.eval(`document.querySelector(".flash.ok").textContent`); !strings.Contains(msg, "Reserved 2 nodes from") {
		t.Errorf("after reserving then: %q", msg)
	}
}
