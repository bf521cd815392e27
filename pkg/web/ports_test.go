package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/piseduce/piseduce/lab/poeswitch"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/requests"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// The port requests the pages and the API write, carried out by pitasks' real runner
// (pkg/requests) on a real snmpd.

// pitasksPorts is pitasks' port request runner on st, with the SNMP driver.
func pitasksPorts(st *store.Store) *requests.Ports {
	return &requests.Ports{Store: st, Owner: "pitasks-web-test", CycleOff: 200 * time.Millisecond, Poll: 200 * time.Millisecond,
		Log: slog.New(slog.DiscardHandler),
		Open: func(sw *store.Switch) (requests.Switch, error) {
			d, err := power.NewSNMP(sw.PowerConfig(2*time.Second, 1))
			if err != nil {
				return nil, err
			}
			return d, nil
		}}
}

// runPortRequests runs pitasksPorts on st until the returned func is called.
func runPortRequests(t *testing.T, st *store.Store) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pitasksPorts(st).Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// poeSwitch starts a real snmpd with 8 ports and registers it as switch "poe" (port 8: the
// pimaster's).
func poeSwitch(t *testing.T, f *fixture) (*poeswitch.Switch, *store.Switch) {
	t.Helper()
	testenv.NeedCommand(t, "snmpd")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	psw, err := poeswitch.Start(ctx, poeswitch.Options{Dir: t.TempDir(), Ports: 8, Community: testCommunity})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = psw.Stop() })
	sw := &store.Switch{Name: "poe", IP: "127.0.0.1", SNMPPort: psw.Port(), SNMPVersion: "2c", Community: testCommunity,
		PortCount: 8, MasterPort: 8, OID: psw.OIDBase(), OIDOffset: psw.Offset()}
	if err := f.st.CreateSwitch(ctx, sw); err != nil {
		t.Fatal(err)
	}
	return psw, sw
}

func carryOut(t *testing.T, p *requests.Ports) {
	t.Helper()
	if did, err := p.Next(context.Background()); !did || err != nil {
		t.Fatalf("pitasks: carried out %v, %v", did, err)
	}
}

// TestPortRequestPages: the page and the API write a request; it shows pending, then (pitasks
// having carried it out on the real switch) its outcome, or the switch's error.
func TestPortRequestPages(t *testing.T) {
	f := newFixture(t)
	psw, sw := poeSwitch(t, f)
	if err := psw.SetPort(2, true); err != nil {
		t.Fatal(err)
	}
	p := pitasksPorts(f.st)
	admin := f.as("admin")
	id := fmt.Sprint(sw.ID)

	// The page: port 2 off.
	res := admin.post("/admin/switches/"+id+"/ports/2", url.Values{"action": {"off"}})
	loc := res.Header().Get("Location")
	if res.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/admin/port-requests/") {
		t.Fatalf("request: %d %s", res.Code, loc)
	}
	page := admin.get(loc).Body.String()
	if !strings.Contains(page, "pitasks carries it out") || !strings.Contains(page, "data-live") || !strings.Contains(page, ">requested<") {
		t.Fatalf("pending request page: %s", page)
	}
	if on, _ := psw.PortOn(2); !on {
		t.Fatal("the frontend switched the port itself")
	}
	carryOut(t, p)
	page = admin.get(loc).Body.String()
	if !strings.Contains(page, "Port 2 is off.") || strings.Contains(page, "data-live") || !strings.Contains(page, ">done<") {
		t.Fatalf("done request page: %s", page)
	}
	if on, err := psw.PortOn(2); err != nil || on {
		t.Fatalf("port 2 on the switch: on=%v %v", on, err)
	}

	// The API: 202 and a request to poll, then done.
	res = f.api("admin", "POST", "/api/v1/admin/switches/"+id+"/ports/3/on", nil)
	var v portRequestView
	if err := json.Unmarshal(res.Body.Bytes(), &v); err != nil || res.Code != http.StatusAccepted || !v.Active || v.State != "requested" {
		t.Fatalf("API request: %d %s", res.Code, res.Body.String())
	}
	poll := res.Header().Get("Location")
	if poll != fmt.Sprintf("/api/v1/admin/port-requests/%d", v.ID) {
		t.Fatalf("Location %q", poll)
	}
	carryOut(t, p)
	json.Unmarshal(f.api("admin", "GET", poll, nil).Body.Bytes(), &v)
	if v.Active || v.State != "done" || !strings.HasPrefix(v.Result, "Port 3 is on") || !v.States[3].On {
		t.Fatalf("API request done: %+v", v)
	}

	// The grid: pitasks reads every port on request.
	res = f.api("admin", "POST", "/api/v1/admin/switches/"+id+"/status", nil)
	if res.Code != http.StatusAccepted {
		t.Fatalf("status request: %d %s", res.Code, res.Body.String())
	}
	var grid switchJSON
	json.Unmarshal(f.api("admin", "GET", "/api/v1/admin/switches/"+id, nil).Body.Bytes(), &grid)
	if grid.Pending == 0 || grid.Checked != nil {
		t.Fatalf("grid before pitasks read it: %+v", grid)
	}
	carryOut(t, p)
	grid = switchJSON{}
	json.Unmarshal(f.api("admin", "GET", "/api/v1/admin/switches/"+id, nil).Body.Bytes(), &grid)
	if grid.Pending != 0 || grid.Checked == nil || len(grid.Ports) != 8 || grid.Ports[1].On || !grid.Ports[2].On || !grid.Ports[2].Known {
		t.Fatalf("grid: %+v", grid)
	}

	// The switch stops answering: the request page shows the reason, and not the community.
	if err := psw.Stop(); err != nil {
		t.Fatal(err)
	}
	loc = admin.post("/admin/switches/"+id+"/ports/3", url.Values{"action": {"cycle"}}).Header().Get("Location")
	carryOut(t, p)
	page = admin.get(loc).Body.String()
	if !strings.Contains(page, ">failed<") || !strings.Contains(page, "no answer") || strings.Contains(page, testCommunity) {
		t.Fatalf("failed request page: %s", page)
	}
	if page := admin.get("/admin/switches/" + id).Body.String(); !strings.Contains(page, "no answer") || !strings.Contains(page, "Port 2 is off.") {
		t.Fatalf("switch page lacks the recent requests: %s", page)
	}
}

// TestPortRequestBrowser: in Chromium, the admin turns a port off and reads the ports; the
// pages show the request pending, then its outcome, without her reloading them.
func TestPortRequestBrowser(t *testing.T) {
	testenv.NeedCommand(t, "chromium")
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	f := newFixture(t)
	f.s.now = func() time.Time { return time.Now().UTC() }
	psw, sw := poeSwitch(t, f)
	if err := psw.SetPort(2, true); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.s)
	defer srv.Close()
	c := newChrome(t, srv.URL, artifactsDir(t, "web-ports"), 3*time.Minute)
	c.login(f.admin.Email)
	c.do("switch page", chromedp.Navigate(fmt.Sprintf("%s/admin/switches/%d", srv.URL, sw.ID)), chromedp.WaitVisible(chromedp.CSS(".ports")))
	c.click("port 2 off", fmt.Sprintf(`form[action="/admin/switches/%d/ports/2"] input[value="off"] ~ button`, sw.ID))
	c.do("request page", chromedp.WaitVisible(chromedp.CSS(".js-pwait")))
	if got := c.eval(`document.querySelector(".js-pstate").textContent`); got != "requested" {
		t.Fatalf("request page shows %q before pitasks runs", got)
	}
	stop := runPortRequests(t, f.st)
	defer stop()
	c.waitFor("outcome", `document.querySelector(".js-presult").textContent === "Port 2 is off." && document.querySelector(".js-pstate").textContent === "done"`, time.Minute)
	c.shot("port-request-done")
	if on, err := psw.PortOn(2); err != nil || on {
		t.Fatalf("port 2 on the switch: on=%v %v", on, err)
	}

	c.do("switch page again", chromedp.Navigate(fmt.Sprintf("%s/admin/switches/%d", srv.URL, sw.ID)), chromedp.WaitVisible(chromedp.CSS(".ports")))
	c.click("read the ports", fmt.Sprintf(`form[action="/admin/switches/%d/status"] button`, sw.ID))
	// The page reloads by itself once pitasks has read the ports (polled from here, as the
	// reload interrupts a poll inside the page).
	read := `document.body.innerText.includes("Port states as pitasks read them") && !document.querySelector("[data-port-request]")`
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if ok, err := chromedp.Run(c.ctx, chromedp.Evaluate[bool](read)); err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			c.fail("ports read", "the switch page did not show the ports read")
		}
	}
	if got := c.eval(`document.querySelector(".port:nth-child(2) .badge").textContent`); got != "off" {
		t.Fatalf("port 2 shows %q", got)
	}
	c.shot("switch-ports-read")
}
