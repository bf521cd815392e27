package web

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/piseduce/piseduce/pkg/testenv"
)

// TestBrowserReleaseAndAdminEnd, in headless Chromium: a student gives one node of her
// two-node reservation back with its Release button; then an admin ends the rest of it with a
// reason on All deployments, and the student, logging in again, reads why on her page.
func TestBrowserReleaseAndAdminEnd(t *testing.T) {
	testenv.NeedCommand(t, "chromium")
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	f := newFixture(t)
	f.s.now = func() time.Time { return time.Now().UTC() }
	srv := httptest.NewServer(f.s)
	t.Cleanup(srv.Close) // after the browser's own cleanup, which ends the page's event stream
	c := newChrome(t, srv.URL, artifactsDir(t, "web-release"), 10*time.Minute)
	const wait = 2 * time.Minute

	c.login(f.alice.Email)
	c.do("my deployments", chromedp.Navigate(srv.URL+"/deployments"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	release := fmt.Sprintf(`form[action="/reservations/%d/nodes/%d/release"] button`, f.r1.ID, f.nodes[1].ID)
	c.click("release node-2", release)
	c.waitFor("released", `document.body.textContent.includes("Node released")`, wait)
	c.waitFor("node-2 marked released", fmt.Sprintf(`(document.querySelector('tr[data-dep="%d"]') || {textContent: ""}).textContent.includes("released")`, f.d2.ID), wait)
	if c.eval(fmt.Sprintf(`String(document.querySelector('form[action="/reservations/%d/nodes/%d/release"]') === null)`, f.r1.ID, f.nodes[0].ID)) != "true" {
		c.fail("last node", "node-1, the last node of the reservation, still offers Release")
	}
	c.shot("released")
	c.logout()

	const reason = "the room closes for maintenance"
	c.login(f.admin.Email)
	c.do("all deployments", chromedp.Navigate(srv.URL+"/admin/deployments"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`form[action="/admin/reservations/%d/end"] input[name=reason]`, f.r1.ID))),
		chromedp.SendKeys(chromedp.CSS(fmt.Sprintf(`form[action="/admin/reservations/%d/end"] input[name=reason]`, f.r1.ID)), reason))
	c.click("end", fmt.Sprintf(`form[action="/admin/reservations/%d/end"] button`, f.r1.ID))
	c.waitFor("ended", fmt.Sprintf(`document.body.textContent.includes("Reservation #%d ended")`, f.r1.ID), wait)
	c.shot("admin-ended")
	c.logout()

	c.login(f.alice.Email)
	c.do("my deployments again", chromedp.Navigate(srv.URL+"/deployments"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	c.waitFor("the reason", fmt.Sprintf(`(document.getElementById("ended-%d") || {textContent: ""}).textContent.includes(%q)`, f.r1.ID, reason), wait)
	c.shot("student-sees-why")
}
