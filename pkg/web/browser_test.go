package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// startPitasks runs pitasks on st until the returned func is called: the real engine with fake
// drivers. Every state takes a moment, the image copy reports progress for a few seconds, the
// init script "prints" a line. TestBrowserOnTheLab walks the same story with the real drivers.
var startPitasks = func(t *testing.T, st *store.Store) (stop func()) {
	steps := map[process.StateName]engine.Step{}
	for _, p := range process.All() {
		for _, s := range p.States {
			steps[s.Name] = slowStep{}
		}
	}
	steps["env_copy"] = copyStep{total: 1_800_000_000, chunks: 30, every: 250 * time.Millisecond}
	steps["user_script"] = scriptStep{}
	e, err := engine.New(engine.Options{Store: st, Steps: steps, Rebooter: slowStep{}, Workers: 8,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), PollInterval: 100 * time.Millisecond,
		ProgressEvery: 200 * time.Millisecond, Lease: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stopTicking := deploytest.TickEvery(t, e, 150*time.Millisecond)
	return func() {
		stopTicking()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		e.Stop(sctx)
	}
}

// speedText is a copy speed as pages write it (units.Rate).
var speedText = regexp.MustCompile(`^[0-9]+(\.[0-9])? (B|KiB|MiB|GiB|TiB)/s$`)

// slowStep takes a moment, so that the states show in the page.
type slowStep struct{}

func (slowStep) Exec(ctx context.Context, t *engine.Task) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(120 * time.Millisecond):
		return nil
	}
}
func (slowStep) Post(context.Context, *engine.Task) (bool, error)    { return true, nil }
func (slowStep) HardReboot(context.Context, *store.Deployment) error { return nil }
func (scriptStep) Post(context.Context, *engine.Task) (bool, error)  { return true, nil }
func (copyStep) Post(context.Context, *engine.Task) (bool, error)    { return true, nil }
func (scriptStep) Exec(_ context.Context, t *engine.Task) error {
	t.D.ScriptOutput = "hello from " + t.D.Node.Name + "\n"
	return nil
}

type scriptStep struct{}

// copyStep "writes" total bytes in chunks, reporting progress.
type copyStep struct {
	total  int64
	chunks int
	every  time.Duration
}

func (c copyStep) Exec(ctx context.Context, t *engine.Task) error {
	for i := 1; i <= c.chunks; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.every):
		}
		if err := t.Progress(ctx, c.total*int64(i)/int64(c.chunks), c.total); err != nil {
			return err
		}
	}
	return nil
}

// artifactsDir is where a browser test's screenshots go: $ARTIFACTS/<name> when set, else the
// test's temp dir.
func artifactsDir(t *testing.T, name string) string {
	dir := t.TempDir()
	if a := os.Getenv("ARTIFACTS"); a != "" {
		dir = filepath.Join(a, name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowser walks the browser story (see story) against pitasks with fake drivers, on the
// handler tests' fixture with four more free nodes.
func TestBrowser(t *testing.T) {
	testenv.NeedCommand(t, "chromium")
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	f := newFixture(t)
	f.s.now = func() time.Time { return time.Now().UTC() }
	ctx := context.Background()
	// Four more free nodes on the second switch.
	var free []uint
	for i := 1; i <= 4; i++ {
		n := store.Node{Name: fmt.Sprintf("node-%d", 6+i), SwitchID: f.sw2.ID, Port: i, IP: fmt.Sprintf("10.10.1.%d", i), Model: "RPI4B",
			Serial: fmt.Sprintf("%08x", 0xbcd0+i)}
		if err := f.st.CreateNode(ctx, &n); err != nil {
			t.Fatal(err)
		}
		free = append(free, n.ID)
	}
	f.pitasksRead(&f.sw, map[int]store.PortState{1: {On: true}, 2: {On: true}, 3: {On: true}, 4: {}, 5: {}, 6: {On: true}, 8: {On: true}}, nil)
	srv := httptest.NewServer(f.s)
	t.Cleanup(srv.Close) // after the browser's own cleanup, which ends the page's event stream
	story{
		URL: srv.URL, Store: f.st, Admin: f.admin.Email, Nodes: free[:2], Env: f.env.Name,
		Pitasks: func() func() { return startPitasks(t, f.st) },
		Shots:   artifactsDir(t, "web"), QuotaNode: free[2],
		AdminPages: []string{fmt.Sprintf("/admin/switches/%d", f.sw.ID), "/admin/settings", "/admin/deployments", "/admin/nodes",
			fmt.Sprintf("/admin/discovery/%d", f.discovery.ID)},
	}.run(t)
}

// story is a user's whole path through the web interface, in headless Chromium: she signs up,
// an admin approves her, she logs in, reserves two nodes and deploys them, watches the
// progress bar move without reloading, sees both nodes deployed with the init script's output
// and how to SSH in, then destroys them. Screenshots of the main pages go to Shots. TestBrowser
// walks it with fake drivers, TestBrowserOnTheLab with the real ones on the virtual Pi lab.
type story struct {
	URL        string       // pifrontend
	Store      *store.Store // its database
	Admin      string       // an admin's e-mail (password testPassword)
	Nodes      []uint       // the free nodes she reserves
	Env        string       // the environment she deploys
	Pitasks    func() (stop func())
	Shots      string
	AdminPages []string // more pages the admin looks at in the end
	// QuotaNode, when set, is a free node: the admin sets a quota of len(Nodes) nodes at once,
	// and she is refused this one more while she holds hers, with the time it frees up.
	QuotaNode uint
}

const storyUser = "nina@example.org"

func (s story) run(t *testing.T) {
	t.Helper()
	t0 := time.Now()
	mark := func(what string) { t.Logf("%6.1fs %s", time.Since(t0).Seconds(), what) }
	ctx := context.Background()
	nodes := map[uint]store.Node{}
	for _, n := range mustNodes(t, s.Store) {
		nodes[n.ID] = n
	}
	var env store.Environment
	if err := storetest.DB(s.Store).Where("name = ?", s.Env).First(&env).Error; err != nil {
		t.Fatalf("environment %s: %v", s.Env, err)
	}
	stopPitasks := s.Pitasks()
	defer stopPitasks()
	c := newChrome(t, s.URL, s.Shots, 10*time.Minute)

	// 1. Sign up.
	c.do("sign up form", chromedp.Navigate(s.URL+"/signup"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), storyUser), chromedp.SendKeys(chromedp.ID("first_name"), "Nina"),
		chromedp.SendKeys(chromedp.ID("last_name"), "Noether"), chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.SendKeys(chromedp.ID("password_confirm"), testPassword))
	c.shot("01-signup")
	c.click("sign up", `form[action="/signup"] button[type=submit]`)
	c.do("signed up", chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	if msg := c.eval(`document.querySelector(".flash.ok").textContent`); !strings.Contains(msg, "admin must approve") {
		t.Fatalf("after sign-up: %q", msg)
	}
	c.shot("02-signup-done")
	nina, err := s.Store.UserByEmail(ctx, storyUser)
	if err != nil {
		t.Fatal(err)
	}

	// 2. The admin approves.
	c.login(s.Admin)
	c.do("users", chromedp.Navigate(s.URL+"/admin/users"), chromedp.WaitVisible(chromedp.CSS("table")))
	c.shot("03-admin-users")
	c.click("approve", fmt.Sprintf(`form[action="/admin/users/%d/approve"] button`, nina.ID))
	c.do("approved", chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	if s.QuotaNode != 0 {
		c.do("settings", chromedp.Navigate(s.URL+"/admin/settings"), chromedp.WaitVisible(chromedp.ID("quota_nodes")),
			chromedp.SetValue(chromedp.ID("quota_nodes"), fmt.Sprint(len(s.Nodes))))
		c.click("save settings", `form[action="/admin/settings"] button[type=submit]`)
		c.do("settings saved", chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	}
	c.logout()

	// 3. Nina logs in and looks at the cluster.
	c.login(storyUser)
	c.do("resources", chromedp.Navigate(s.URL+"/resources"), chromedp.WaitVisible(chromedp.CSS("table")))
	c.shot("04-resources")

	// 4. She reserves the nodes and deploys them.
	reserve := []chromedp.Action[chromedp.Void]{chromedp.Navigate(s.URL + "/reserve"), chromedp.WaitVisible(chromedp.ID("hours"))}
	for _, id := range s.Nodes {
		reserve = append(reserve, chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=nodes][value="%d"]`, id))))
	}
	c.do("reserve form", append(reserve, chromedp.SetValue(chromedp.ID("hours"), "3"))...)
	c.shot("05-reserve")
	c.click("reserve", `form[action="/reserve"] button[type=submit]`)
	c.do("deploy form", chromedp.WaitVisible(chromedp.ID("init_script")),
		chromedp.SetValue(chromedp.ID("name"), "my-experiment"),
		chromedp.SetValue(chromedp.ID("system_size"), "200"),
		chromedp.SendKeys(chromedp.ID("public_key"), sshKey),
		chromedp.SendKeys(chromedp.ID("init_script"), "#!/bin/bash\necho \"hello from $(hostname)\""))
	pick := fmt.Sprintf(`(() => { const i = Array.from(document.querySelectorAll("input[name=environment]"))
		.find(i => i.closest("label").querySelector("b").textContent === %q); if (i) { i.click() } return !!i && i.checked })()`, s.Env)
	if c.eval(`String(`+pick+`)`) != "true" {
		t.Fatalf("no environment %s in the deploy form", s.Env)
	}
	c.shot("06-deploy")
	c.click("deploy", `form[action$="/deploy"] button[type=submit]`)
	c.do("deployments", chromedp.WaitVisible(chromedp.CSS("tr[data-dep]")))
	mark("deploy requested")
	// The deployment of each node, from the page's rows.
	deps := map[uint]string{} // node → deployment ID
	for _, row := range strings.Fields(c.eval(`Array.from(document.querySelectorAll("tr[data-dep]")).map(r => r.dataset.dep + "=" + r.querySelector("td a").textContent.trim()).join(" ")`)) {
		dep, name, _ := strings.Cut(row, "=")
		for id, n := range nodes {
			if n.Name == name {
				deps[id] = dep
			}
		}
	}
	for _, id := range s.Nodes {
		if deps[id] == "" {
			t.Fatalf("no deployment row for %s (rows: %v)", nodes[id].Name, deps)
		}
	}
	if len(deps) != len(s.Nodes) {
		t.Fatalf("%d deployment rows, want %d", len(deps), len(s.Nodes))
	}

	// 5. A progress bar moves, with no reload of the page.
	c.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = "yes"`))
	const copying = `(() => { for (const r of document.querySelectorAll("tr[data-dep]")) {
		const c = r.querySelector(".js-progress"), p = c && c.querySelector("progress");
		if (p && !c.hidden && p.value > 0 && p.value < 90) { return r.dataset.dep + " " + p.value } } return "" })()`
	c.waitFor("copy starts", copying+` !== ""`, 4*time.Minute)
	dep, first, _ := strings.Cut(c.eval(copying), " ")
	mark("copy under way: deployment " + dep + " at " + first + " %")
	time.Sleep(700 * time.Millisecond) // the bar's CSS transition
	c.shot("07-progress")
	bar := fmt.Sprintf(`document.querySelector('tr[data-dep="%s"] progress').value`, dep)
	c.waitFor("copy moves on", bar+` > `+first, 30*time.Second)
	mark("progress bar moved: " + c.eval(`String(`+bar+`)`) + " %")
	// Any unit: a busy machine copies at KiB/s.
	if speed := c.eval(fmt.Sprintf(`document.querySelector('tr[data-dep="%s"] .js-speed').textContent`, dep)); !speedText.MatchString(strings.TrimSpace(speed)) {
		t.Errorf("no speed shown: %q", speed)
	}
	c.waitFor("deployed", `Array.from(document.querySelectorAll(".js-state")).every(e => e.textContent.trim() === "deployed")`, 5*time.Minute)
	if c.eval(`String(window.__sameDocument)`) != "yes" {
		t.Fatal("the page was reloaded: updates must arrive without a reload")
	}
	mark("both nodes deployed")
	c.shot("08-deployed")

	// 6. The deployment pages: timeline, script output, how to SSH in, the password for her only.
	deploy, err := process.Get(process.Deploy)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range s.Nodes {
		n := nodes[id]
		c.do("deployment page of "+n.Name, chromedp.Navigate(s.URL+"/deployments/"+deps[id]), chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
		body := c.eval(`document.body.innerText`)
		for _, want := range []string{"ssh " + env.SSHUser + "@" + n.IP, "hello from " + n.Name, "Timeline"} {
			if !strings.Contains(body, want) {
				t.Errorf("deployment page of %s lacks %q", n.Name, want)
			}
		}
		if got, want := c.eval(`String(document.querySelectorAll("ol.timeline li.done").length)`), fmt.Sprint(1+len(deploy.States)); got != want {
			t.Errorf("%s: %s steps done in the timeline, want %s: the wait for a worker and every state", n.Name, got, want)
		}
		if first := c.eval(`document.querySelector("ol.timeline li").firstChild.textContent`); first != "queued" {
			t.Errorf("%s: the timeline starts with %q, want the wait for a worker (queued)", n.Name, first)
		}
		if i == 0 {
			c.do("show password", chromedp.Click(chromedp.CSS("details summary")))
			c.shot("09-deployment")
		}
	}

	// 7. She destroys them.
	for _, id := range s.Nodes {
		c.do("back", chromedp.Navigate(s.URL+"/deployments"), chromedp.WaitVisible(chromedp.CSS("tr[data-dep]")))
		c.click("destroy "+nodes[id].Name, fmt.Sprintf(`form[action="/deployments/%s/destroy"] button`, deps[id]))
		c.do("destroying", chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	}
	c.waitFor("destroyed", `Array.from(document.querySelectorAll(".js-state")).every(e => e.textContent.trim() === "destroy: destroyed")`, 2*time.Minute)
	mark("both nodes destroyed")
	c.shot("10-destroyed")
	if s.QuotaNode != 0 {
		// Destroyed, her nodes are still hers until the reservation ends: one more is refused.
		c.do("reserve one more", chromedp.Navigate(s.URL+"/reserve"), chromedp.WaitVisible(chromedp.ID("hours")),
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=nodes][value="%d"]`, s.QuotaNode))), chromedp.SetValue(chromedp.ID("hours"), "1"))
		c.click("reserve over the quota", `form[action="/reserve"] button[type=submit]`)
		c.do("quota refusal", chromedp.WaitVisible(chromedp.CSS(".flash.err")))
		msg := c.eval(`document.querySelector(".flash.err").textContent`)
		want := fmt.Sprintf("Quota: you may hold at most %d node(s) at once. The same request fits from ", len(s.Nodes))
		if !strings.Contains(msg, want) || !regexp.MustCompile(`fits from \d{4}-\d\d-\d\d \d\d:\d\d `).MatchString(msg) {
			t.Fatalf("quota refusal: %q", msg)
		}
		c.shot("10b-quota-refused")
	}
	c.do("account", chromedp.Navigate(s.URL+"/account"), chromedp.WaitVisible(chromedp.ID("ssh_key")))
	c.shot("11-account")
	c.logout()

	// 8. Admin pages.
	c.login(s.Admin)
	for i, p := range s.AdminPages {
		c.do("admin page "+p, chromedp.Navigate(s.URL+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		c.shot(fmt.Sprintf("%02d-admin-%s", 12+i, strings.ReplaceAll(strings.Trim(p, "/"), "/", "-")))
	}
	t.Logf("screenshots in %s", s.Shots)
}

// chrome is a headless Chromium tab on pifrontend that accepts confirmation dialogs; a step
// that fails saves a screenshot first, then fails the test.
type chrome struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
}

// newChrome starts Chromium (closed when t ends); every step together must end within limit.
// Nothing but base is visited: no background networking, no updates, no sync.
func newChrome(t *testing.T, base, shots string, limit time.Duration) *chrome {
	t.Helper()
	chromium := testenv.NeedCommand(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil { // starts the browser without a deadline
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bctx, limit)
	t.Cleanup(cancel)

	// Accept the confirmation dialogs of destructive buttons.
	dialogs := chromedp.Events(bctx, cdppage.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(bctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return &chrome{t: t, ctx: ctx, base: base, shots: shots}
}

func (c *chrome) fail(step string, format string, a ...any) {
	c.t.Helper()
	c.shot("failed-" + strings.ReplaceAll(step, " ", "-"))
	c.t.Fatalf("%s: "+format, append([]any{step}, a...)...)
}

func (c *chrome) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, actions...); err != nil {
		c.fail(step, "%v", err)
	}
}

// click clicks sel and waits for the page it leads to.
func (c *chrome) click(step, sel string) {
	c.t.Helper()
	if _, err := chromedp.RunResponse(c.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		c.fail(step, "click %s: %v", sel, err)
	}
}

func (c *chrome) eval(js string) string {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		c.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor waits until the expression js is true; if it never is, the failure says what the
// page's state badges showed and how it got its live updates.
func (c *chrome) waitFor(step, js string, timeout time.Duration) {
	c.t.Helper()
	if _, err := chromedp.Run(c.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		seen, _ := chromedp.Run(c.ctx, chromedp.Evaluate[string](
			`JSON.stringify({states: Array.from(document.querySelectorAll(".js-state")).map(e => e.textContent.trim()), live: window.__liveMode || ""})`))
		c.fail(step, "waiting for %s: %v (the page showed %s)", js, err, seen)
	}
}

func (c *chrome) login(email string) {
	c.t.Helper()
	c.do("open login", chromedp.Navigate(c.base+"/login"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email), chromedp.SendKeys(chromedp.ID("password"), testPassword))
	c.click("log in", `form[action="/login"] button[type=submit]`)
	c.do("logged in", chromedp.WaitVisible(chromedp.CSS(".who form")))
}

func (c *chrome) logout() {
	c.t.Helper()
	c.click("log out", `.who form button`)
}

// shot saves a full-page PNG screenshot.
func (c *chrome) shot(name string) {
	buf, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(c.shots, name+".png"), buf, 0o644); err != nil {
		c.t.Logf("screenshot %s: %v", name, err)
	}
}

func mustNodes(t *testing.T, st *store.Store) []store.Node {
	ns, err := st.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ns
}
