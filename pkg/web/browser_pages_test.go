package web

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// TestBrowserPages opens, in headless Chromium, the resources page and the page of every node
// it links to, as a user and as an admin, on the situations fixture (every state of every
// process, lost, failed, queued, a switch that does not answer): each page renders with its
// node's name. At 390 px wide (a phone) the resources, deployments and node pages have no
// horizontal scroll; a "0 free" badge is not green. A browser in another time zone reserves a
// node in its own time.
func TestBrowserPages(t *testing.T) {
	testenv.NeedCommand(t, "chromium")
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	sx := newSituations(t)
	srv := httptest.NewServer(sx.s)
	t.Cleanup(srv.Close) // after the browser's own cleanup, which ends the page's event stream
	c := newChrome(t, srv.URL, artifactsDir(t, "web-pages"), 10*time.Minute)
	const overflow = `String(document.documentElement.scrollWidth - document.documentElement.clientWidth)`
	const nodeLinks = `Array.from(document.querySelectorAll('a[href^="/nodes/"]')).map(a => a.getAttribute("href") + "=" + a.textContent.trim()).join(" ")`
	for _, who := range []struct{ role, email string }{{"user", sx.alice.Email}, {"admin", sx.admin.Email}} {
		c.do("wide", chromedp.EmulateViewport(1280, 900))
		c.login(who.email)
		c.do("resources as "+who.role, chromedp.Navigate(srv.URL+"/resources"), chromedp.WaitVisible(chromedp.CSS("table")))
		c.shot("resources-" + who.role)
		// The "0 free" badge has the colours of a badge of nothing, not of a free one.
		colours := `(sel) => { const e = document.querySelector(sel); if (!e) { return "none" } const s = getComputedStyle(e); return s.backgroundColor + "/" + s.color }`
		zero, free := c.eval(`(`+colours+`)("span.badge.none")`), c.eval(`(`+colours+`)("span.badge.free")`)
		if zero == "none" || zero == free || !strings.Contains(c.eval(`document.querySelector("span.badge.none").textContent`), "0 free") {
			t.Errorf("as %s: the \"0 free\" badge looks %s, a free one %s", who.role, zero, free)
		}
		links := strings.Fields(c.eval(nodeLinks))
		if len(links) != len(sx.list)+len(sx.nodes) {
			t.Fatalf("as %s: the resources page links %d nodes, want %d", who.role, len(links), len(sx.list)+len(sx.nodes))
		}
		for _, l := range links {
			href, name, _ := strings.Cut(l, "=")
			c.do("node page "+href, chromedp.Navigate(srv.URL+href), chromedp.WaitVisible(chromedp.CSS("main h1")))
			if h1 := c.eval(`document.querySelector("main h1").textContent`); h1 != name {
				c.fail("node page "+href, "as %s: the page's title is %q, want the node %q", who.role, h1, name)
			}
		}
		c.do("queued node", chromedp.Navigate(fmt.Sprintf("%s/nodes/%d", srv.URL, sx.named(t, "queued").node.ID)), chromedp.WaitVisible(chromedp.CSS("main h1")))
		c.shot("node-queued-" + who.role)
		if who.role == "admin" {
			statsCharts(t, c, sx)
		}

		// A phone: nothing wider than the screen.
		c.do("narrow", chromedp.EmulateViewport(390, 844))
		pages := []string{"/resources", "/deployments", fmt.Sprintf("/nodes/%d", sx.named(t, "deploy/env_copy").node.ID),
			fmt.Sprintf("/deployments/%d", sx.named(t, "lost").dep.ID), fmt.Sprintf("/deployments/%d", sx.named(t, "deploy/deployed").dep.ID)}
		if who.role == "admin" {
			pages = append(pages, "/admin/deployments", "/admin/stats", fmt.Sprintf("/admin/stats/nodes/%d", sx.named(t, "lost").node.ID))
		}
		for _, p := range pages {
			c.do("390 px "+p, chromedp.Navigate(srv.URL+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
			c.shot(fmt.Sprintf("390-%s-%s", who.role, strings.ReplaceAll(strings.Trim(p, "/"), "/", "-")))
			if px := c.eval(overflow); px != "0" {
				wide := c.eval(`Array.from(document.querySelectorAll("main *")).filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 5).map(e => e.tagName + "." + e.className).join(", ")`)
				t.Errorf("as %s, %s is %s px wider than a 390 px screen; too wide: %s", who.role, p, px, wide)
			}
		}
		if who.role == "user" {
			reserveInTokyo(t, c, sx)
		}
		c.logout()
	}
}

// statsCharts: the statistics pages draw their charts, each titled, laid out with a size, its
// bars coloured by the style sheet.
func statsCharts(t *testing.T, c *chrome, sx *situations) {
	t.Helper()
	const charts = `Array.from(document.querySelectorAll("main svg.chart")).map(s => { const r = s.getBoundingClientRect();
		return s.querySelector("title").textContent + "=" + Math.round(r.width) + "x" + Math.round(r.height) }).join("|")`
	const barFill = `(() => { const b = document.querySelector("main svg.chart rect.bar.good, main svg.chart rect.bar.bad");
		return b ? getComputedStyle(b).fill : "no bar" })()`
	for page, want := range map[string][]string{
		"/admin/stats": {"Success rate per node", "Success rate per environment", "Success rate by week, all nodes",
			"Mean time per state, all nodes"},
		fmt.Sprintf("/admin/stats/nodes/%d", sx.named(t, "lost").node.ID): {"Success rate by week, node " + sx.named(t, "lost").node.Name},
	} {
		c.do("charts "+page, chromedp.Navigate(c.base+page), chromedp.WaitVisible(chromedp.CSS("main svg.chart")))
		c.shot("stats-" + strings.ReplaceAll(strings.Trim(page, "/"), "/", "-"))
		got := c.eval(charts)
		for _, title := range want {
			if !strings.Contains("|"+got, "|"+title+"=") {
				t.Errorf("%s: no chart %q among %s", page, title, got)
			}
		}
		for _, ch := range strings.Split(got, "|") {
			if _, size, _ := strings.Cut(ch, "="); strings.HasPrefix(size, "0x") || strings.HasSuffix(size, "x0") {
				t.Errorf("%s: chart %s has no size", page, ch)
			}
		}
		if fill := c.eval(barFill); fill == "no bar" || fill == "rgb(0, 0, 0)" {
			t.Errorf("%s: a success bar is filled %s, not by the style sheet", page, fill)
		}
	}
}

// reserveInTokyo: a browser in Asia/Tokyo reserves a node for a start it types in its own
// time; the reservation keeps the zone, starts at that instant and shows in that zone.
func reserveInTokyo(t *testing.T, c *chrome, sx *situations) {
	t.Helper()
	if _, err := chromedp.Call(c.ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	start := sx.now.Add(48 * time.Hour).In(tokyo).Truncate(time.Minute)
	node := sx.named(t, "free").node
	c.do("reserve form", chromedp.Navigate(c.base+"/reserve"), chromedp.WaitVisible(chromedp.ID("start")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=nodes][value="%d"]`, node.ID))),
		chromedp.SetValue(chromedp.ID("start"), start.Format("2006-01-02T15:04")))
	if zone := c.eval(`document.querySelector(".js-tz").textContent`); zone != "Asia/Tokyo" {
		t.Errorf("the reserve form names the zone %q, want the browser's Asia/Tokyo", zone)
	}
	c.click("reserve", `form[action="/reserve"] button[type=submit]`)
	c.do("reserved", chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	if msg := c.eval(`document.querySelector(".flash.ok").textContent`); !strings.Contains(msg, start.Format("2006-01-02 15:04")+" Asia/Tokyo") {
		t.Errorf("after reserving: %q, want the start in Asia/Tokyo", msg)
	}
	var r store.Reservation
	if err := storetest.DB(sx.st).Joins("JOIN reservation_nodes ON reservation_nodes.reservation_id = reservations.id").
		Where("reservation_nodes.node_id = ?", node.ID).First(&r).Error; err != nil {
		t.Fatal(err)
	}
	if r.TimeZone != "Asia/Tokyo" || !r.StartsAt.Equal(start) {
		t.Errorf("reservation in %q from %s, want Asia/Tokyo from %s", r.TimeZone, r.StartsAt, start.UTC())
	}
}
