package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// startPitasks runs pitasks on st until the returned func is called. Here it is the real
// engine with fake drivers: every state takes a moment, the image copy reports progress for a
// few seconds, the init script "prints" a line. It is a variable so that a test on the virtual
// Pi lab can swap in the real drivers.
var startPitasks = func(t *testing.T, st *store.Store) (stop func()) {
	steps := map[string]engine.Step{}
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for {
			if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
				t.Logf("pitasks tick: %v", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		e.Stop(sctx)
	}
}

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

// artifactsDir is where the screenshots go: $ARTIFACTS/web when set, else the test's temp dir.
func artifactsDir(t *testing.T) string {
	dir := t.TempDir()
	if a := os.Getenv("ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "web")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowser drives headless Chromium through a user's whole story: sign up, approval by an
// admin, log in, reserve two nodes, deploy them, watch the progress bar move without reloading,
// then destroy one. Screenshots of the main pages go to the artifacts folder.
func TestBrowser(t *testing.T) {
	chromium := testenv.NeedCommand(t, "chromium")
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	f := newFixture(t)
	f.s.now = func() time.Time { return time.Now().UTC() }
	ctx0 := context.Background()
	// Four more free nodes on the second switch.
	for i := 1; i <= 4; i++ {
		n := store.Node{Name: fmt.Sprintf("node-%d", 6+i), SwitchID: f.sw2.ID, Port: i, IP: fmt.Sprintf("10.10.1.%d", i), Model: "RPI4B"}
		if err := f.st.CreateNode(ctx0, &n); err != nil {
			t.Fatal(err)
		}
	}
	f.power.ports = map[int]bool{1: true, 2: true, 3: true, 4: false, 5: false, 6: true, 8: true}
	srv := httptest.NewServer(f.s)
	defer srv.Close()
	stopPitasks := startPitasks(t, f.st)
	defer stopPitasks()
	shots := artifactsDir(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, acancel := chromedp.NewExecAllocator(ctx0, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser without a deadline
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()

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

	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			shot(t, ctx, shots, "failed-"+strings.ReplaceAll(step, " ", "-"))
			t.Fatalf("%s: %v", step, err)
		}
	}
	click := func(step, sel string) {
		t.Helper()
		if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			shot(t, ctx, shots, "failed-"+strings.ReplaceAll(step, " ", "-"))
			t.Fatalf("%s: click %s: %v", step, sel, err)
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
	waitFor := func(step, js string, timeout time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			shot(t, ctx, shots, "failed-"+strings.ReplaceAll(step, " ", "-"))
			t.Fatalf("%s: waiting for %s: %v", step, js, err)
		}
	}
	login := func(email string) {
		t.Helper()
		do("open login", chromedp.Navigate(srv.URL+"/login"), chromedp.WaitVisible(chromedp.ID("email")),
			chromedp.SendKeys(chromedp.ID("email"), email), chromedp.SendKeys(chromedp.ID("password"), testPassword))
		click("log in", `form[action="/login"] button[type=submit]`)
		do("logged in", chromedp.WaitVisible(chromedp.CSS(".who form")))
	}
	logout := func() { click("log out", `.who form button`) }

	// 1. Sign up.
	do("sign up form", chromedp.Navigate(srv.URL+"/signup"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "nina@example.org"), chromedp.SendKeys(chromedp.ID("first_name"), "Nina"),
		chromedp.SendKeys(chromedp.ID("last_name"), "Noether"), chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.SendKeys(chromedp.ID("password_confirm"), testPassword))
	shot(t, ctx, shots, "01-signup")
	click("sign up", `form[action="/signup"] button[type=submit]`)
	do("signed up", chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	if msg := eval(`document.querySelector(".flash.ok").textContent`); !strings.Contains(msg, "admin must approve") {
		t.Fatalf("after sign-up: %q", msg)
	}
	shot(t, ctx, shots, "02-signup-done")
	nina, err := f.st.UserByEmail(ctx0, "nina@example.org")
	if err != nil {
		t.Fatal(err)
	}

	// 2. The admin approves.
	login(f.admin.Email)
	do("users", chromedp.Navigate(srv.URL+"/admin/users"), chromedp.WaitVisible(chromedp.CSS("table")))
	shot(t, ctx, shots, "03-admin-users")
	click("approve", fmt.Sprintf(`form[action="/admin/users/%d/approve"] button`, nina.ID))
	do("approved", chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	logout()

	// 3. Nina logs in and looks at the cluster.
	login("nina@example.org")
	do("resources", chromedp.Navigate(srv.URL+"/resources"), chromedp.WaitVisible(chromedp.CSS("table")))
	shot(t, ctx, shots, "04-resources")

	// 4. She reserves two nodes and deploys them.
	var n7, n8 uint
	for _, n := range mustNodes(t, f.st) {
		switch n.Name {
		case "node-7":
			n7 = n.ID
		case "node-8":
			n8 = n.ID
		}
	}
	do("reserve form", chromedp.Navigate(srv.URL+"/reserve"), chromedp.WaitVisible(chromedp.ID("hours")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=nodes][value="%d"]`, n7))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=nodes][value="%d"]`, n8))),
		chromedp.SetValue(chromedp.ID("hours"), "3"))
	shot(t, ctx, shots, "05-reserve")
	click("reserve", `form[action="/reserve"] button[type=submit]`)
	do("deploy form", chromedp.WaitVisible(chromedp.ID("init_script")),
		chromedp.SetValue(chromedp.ID("name"), "my-experiment"),
		chromedp.SendKeys(chromedp.ID("public_key"), sshKey),
		chromedp.SendKeys(chromedp.ID("init_script"), "#!/bin/bash\necho hello"))
	shot(t, ctx, shots, "06-deploy")
	click("deploy", `form[action$="/deploy"] button[type=submit]`)
	do("deployments", chromedp.WaitVisible(chromedp.CSS("tr[data-dep]")))
	if n := eval(`String(document.querySelectorAll("tr[data-dep]").length)`); n != "2" {
		t.Fatalf("%s deployment rows", n)
	}

	// 5. The progress bar moves, with no reload of the page.
	do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = "yes"`))
	const progress = `(() => { const p = document.querySelector(".js-progress:not([hidden]) progress"); return p ? p.value : -1 })()`
	waitFor("copy starts", progress+` > 0 && `+progress+` < 90`, 60*time.Second)
	first := eval(`String(` + progress + `)`)
	shot(t, ctx, shots, "07-progress")
	waitFor("copy moves on", progress+` > `+first, 20*time.Second)
	if speed := eval(`document.querySelector(".js-progress:not([hidden]) .js-speed").textContent`); !strings.Contains(speed, "MB/s") {
		t.Errorf("no speed shown: %q", speed)
	}
	waitFor("deployed", `Array.from(document.querySelectorAll(".js-state")).every(e => e.textContent.trim() === "deployed")`, 90*time.Second)
	if eval(`String(window.__sameDocument)`) != "yes" {
		t.Fatal("the page was reloaded: updates must arrive without a reload")
	}
	shot(t, ctx, shots, "08-deployed")

	// 6. The deployment page: timeline, script output, password for her only.
	click("details", `tr[data-dep] a.button`)
	do("deployment page", chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
	body := eval(`document.body.innerText`)
	for _, want := range []string{"ssh pi@10.10.1.", "hello from node-", "Timeline"} {
		if !strings.Contains(body, want) {
			t.Errorf("deployment page lacks %q", want)
		}
	}
	if n := eval(`String(document.querySelectorAll("ol.timeline li.done").length)`); n != "15" {
		t.Errorf("%s states done in the timeline, want 15", n)
	}
	do("show password", chromedp.Click(chromedp.CSS("details summary")))
	shot(t, ctx, shots, "09-deployment")

	// 7. Destroy one node.
	do("back", chromedp.Navigate(srv.URL+"/deployments"), chromedp.WaitVisible(chromedp.CSS("tr[data-dep]")))
	click("destroy", `tr[data-dep] form[action$="/destroy"] button`)
	do("destroying", chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	waitFor("destroyed", `Array.from(document.querySelectorAll(".js-state")).some(e => e.textContent.trim() === "destroy: destroyed")`, 60*time.Second)
	shot(t, ctx, shots, "10-destroyed")
	do("account", chromedp.Navigate(srv.URL+"/account"), chromedp.WaitVisible(chromedp.ID("ssh_key")))
	shot(t, ctx, shots, "11-account")
	logout()

	// 8. Admin pages.
	login(f.admin.Email)
	for i, p := range []string{fmt.Sprintf("/admin/switches/%d", f.sw.ID), "/admin/settings", "/admin/deployments", "/admin/nodes", fmt.Sprintf("/admin/discovery/%d", f.discovery.ID)} {
		do("admin page "+p, chromedp.Navigate(srv.URL+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		shot(t, ctx, shots, fmt.Sprintf("%02d-admin-%s", 12+i, strings.ReplaceAll(strings.Trim(p, "/"), "/", "-")))
	}
	t.Logf("screenshots in %s", shots)
}

func mustNodes(t *testing.T, st *store.Store) []store.Node {
	ns, err := st.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// shot saves a full-page PNG screenshot.
func shot(t *testing.T, ctx context.Context, dir, name string) {
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}
