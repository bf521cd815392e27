package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// situation is one thing a node may be going through. Every page about a node, its
// reservation or its deployment is rendered for each of them (TestEveryPageForEveryNode).
type situation struct {
	name string
	node store.Node
	res  *store.Reservation // the reservation that holds or will hold the node, if any
	dep  *store.Deployment  // its latest deployment, if any
	// owner is the role of the reservation's owner: "user" (alice), "other" (bob), or "".
	owner string
}

// situations is the handler tests' fixture with one more node per situation: free; reserved
// by alice or by bob, now or later; every state of every process, and the states the engine
// ends in (lost, failed), on alice's running reservations; a request waiting for a worker;
// states of the original that none of our processes has; a node on a switch that does not
// answer.
type situations struct {
	*fixture
	list []situation
	dead store.Switch // a switch that does not answer
	// deadRead: pitasks' failed reading of dead; pending: a port request pitasks has not run.
	deadRead, pending store.PortRequest
}

// The zones the situations' reservations were entered in.
const (
	zoneAlice = "Europe/Paris"
	zoneBob   = "America/New_York"
)

func newSituations(t testing.TB) *situations {
	t.Helper()
	f := newFixture(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	sx := &situations{fixture: f}
	sw := store.Switch{Name: "sw3", IP: "192.0.2.12", SNMPVersion: "2c", Community: testCommunity, PortCount: 128,
		OID: ".1.3.6.1.2.1.105.1.1.1.3.1"}
	sx.dead = store.Switch{Name: "sw-dead", IP: "192.0.2.13", SNMPVersion: "2c", Community: testCommunity, PortCount: 8,
		OID: ".1.3.6.1.2.1.105.1.1.1.3.1"}
	must(f.st.CreateSwitch(ctx, &sw))
	must(f.st.CreateSwitch(ctx, &sx.dead))
	sx.deadRead = f.pitasksRead(&sx.dead, nil, errors.New("switch sw-dead: no answer from 192.0.2.13:161 after 2 tries"))
	pending, err := f.st.RequestPort(ctx, f.sw.ID, 2, store.PortCycle, f.admin.ID)
	must(err)
	sx.pending = *pending

	users := map[string]store.User{"user": f.alice, "other": f.bob}
	zones := map[string]string{"user": zoneAlice, "other": zoneBob}
	ports := map[uint]int{}
	model := "RPI4B"
	// add registers a node on sw (the next free port) held by owner's reservation from start
	// to end (none when owner is ""), with the deployment dep when not nil.
	add := func(name string, on store.Switch, owner string, start, end time.Duration, dep *store.Deployment, evs ...store.StateEvent) {
		t.Helper()
		ports[on.ID]++
		host := strings.Trim(nonHostRE.ReplaceAllString("sx-"+name, "-"), "-")
		if len(host) > 63 {
			host = strings.TrimRight(host[:63], "-")
		}
		n := store.Node{Name: host, SwitchID: on.ID,
			Port: ports[on.ID], IP: fmt.Sprintf("10.20.%d.%d", on.ID, ports[on.ID]), Serial: fmt.Sprintf("%08x", 0x5000+len(sx.list)),
			Model: model}
		must(f.st.CreateNode(ctx, &n))
		sit := situation{name: name, node: n, owner: owner}
		if owner != "" {
			u := users[owner]
			r, err := f.st.CreateReservation(ctx, store.ReservationRequest{UserID: u.ID, NodeIDs: []uint{n.ID},
				StartsAt: f.now.Add(start), EndsAt: f.now.Add(end), TimeZone: zones[owner]}, f.now.Add(start))
			must(err)
			sit.res = r
		}
		if dep != nil {
			d := *dep
			d.ReservationID, d.NodeID, d.UserID, d.EnvironmentID = sit.res.ID, n.ID, users[owner].ID, f.env.ID
			d.Name = "exp-" + n.Name
			d.SystemPassword = map[string]string{"user": aliceOSPass, "other": bobOSPass}[owner]
			if d.StateStartedAt.IsZero() {
				d.StateStartedAt = f.now.Add(-time.Minute)
			}
			must(storetest.DB(f.st).Omit("Node", "Reservation", "User", "Environment").Create(&d).Error)
			for _, ev := range evs {
				ev.DeploymentID, ev.NodeID = d.ID, n.ID
				must(storetest.DB(f.st).Create(&ev).Error)
			}
			sit.dep = &d
		}
		sx.list = append(sx.list, sit)
	}
	const h = time.Hour
	now := f.now
	// done returns the events of a deploy run that went through every state before state.
	done := func(proc string, state process.StateName) []store.StateEvent {
		p, _ := process.Get(proc)
		var out []store.StateEvent
		at := now.Add(-2 * h)
		out = append(out, store.StateEvent{Process: proc, State: p.First(), Outcome: store.OutcomeQueued, StartedAt: at,
			EndedAt: at.Add(4 * time.Second), DurationMS: 4000})
		at = at.Add(4 * time.Second)
		for _, st := range p.States[:max(p.Index(state), 0)] {
			out = append(out, store.StateEvent{Process: proc, State: st.Name, Outcome: store.OutcomeDone, StartedAt: at,
				EndedAt: at.Add(7 * time.Second), DurationMS: 7000})
			at = at.Add(7 * time.Second)
		}
		return out
	}

	add("free", sw, "", 0, 0, nil)
	add("free, destroyed", sw, "user", -3*h, -h, &store.Deployment{Process: process.Destroy, State: "destroyed"})
	add("reserved by me", sw, "user", -h, 2*h, nil)
	add("reserved by someone else", sw, "other", -h, 2*h, nil)
	add("my future reservation", sw, "user", 3*h, 5*h, nil)
	add("someone else's future reservation", sw, "other", 5*h, 6*h, nil)
	names := []string{process.Deploy, process.Destroy, process.Reboot, process.BootTest, process.SaveEnv}
	if len(names) != len(process.All()) {
		t.Fatalf("situations cover processes %v, not all of %v", names, process.All())
	}
	for _, proc := range names {
		p, _ := process.Get(proc)
		for _, st := range p.States {
			d := &store.Deployment{Process: proc, State: st.Name}
			if p.Resumes {
				d.ResumeProcess, d.ResumeState = process.Deploy, "deployed"
			}
			if st.Name == "env_copy" || st.Name == "img_copy" {
				d.BytesDone, d.BytesTotal, d.Throughput = 600<<20, 1800<<20, 9_500_000
			}
			add(proc+"/"+string(st.Name), sw, "user", -h, 2*h, d, done(proc, st.Name)...)
		}
	}
	add("queued", sw, "user", -h, 2*h, &store.Deployment{Process: process.Deploy, State: "boot_conf", Queued: true,
		StateStartedAt: now.Add(-2 * time.Minute)})
	waitingSince := now.Add(-40 * time.Second)
	add("waiting for a boot slot", sw, "user", -h, 2*h, &store.Deployment{Process: process.Deploy, State: "turn_on",
		StateStartedAt: now.Add(-time.Minute), WaitingSince: &waitingSince, WaitingFor: "its turn to boot"}, done(process.Deploy, "turn_on")...)
	add("waiting for a copy slot", sw, "user", -h, 2*h, &store.Deployment{Process: process.Deploy, State: "env_copy",
		StateStartedAt: now.Add(-time.Minute), WaitingSince: &waitingSince, WaitingFor: "its turn to copy an image"}, done(process.Deploy, "env_copy")...)
	add("lost", sw, "user", -3*h, 2*h, &store.Deployment{Process: process.Deploy, State: process.Lost,
		ResumeProcess: process.Deploy, ResumeState: "env_copy", StateStartedAt: now.Add(-2*h + 40*time.Second),
		LastError: "no progress in env_copy after 1h0m0s", BytesDone: 300 << 20, BytesTotal: 1800 << 20},
		append(done(process.Deploy, "env_copy"), store.StateEvent{Process: process.Deploy, State: "env_copy",
			Outcome: store.OutcomeLost, Message: "no progress in env_copy after 1h0m0s", StartedAt: now.Add(-2*h + 40*time.Second),
			EndedAt: now.Add(-h + 40*time.Second), DurationMS: 3600_000})...)
	add("failed", sw, "user", -3*h, 2*h, &store.Deployment{Process: process.Deploy, State: process.Failed,
		ResumeProcess: process.Deploy, ResumeState: "env_check", StateStartedAt: now.Add(-2 * h),
		LastError: "env_check: checksum mismatch"},
		append(done(process.Deploy, "env_check"), store.StateEvent{Process: process.Deploy, State: "env_check",
			Outcome: store.OutcomeFailed, Message: "env_check: checksum mismatch", StartedAt: now.Add(-2 * h),
			EndedAt: now.Add(-2*h + 12*time.Second), DurationMS: 12_000})...)
	add("lost in a reboot", sw, "user", -3*h, 2*h, &store.Deployment{Process: process.Reboot, State: process.Lost,
		ResumeProcess: process.Deploy, ResumeState: "deployed", StateStartedAt: now.Add(-h),
		LastError: "no progress in coming_back after 5m30s"},
		store.StateEvent{Process: process.Reboot, State: "coming_back", Outcome: store.OutcomeLost,
			Message: "no progress in coming_back after 5m30s", StartedAt: now.Add(-h), EndedAt: now.Add(-h + 330*time.Second),
			DurationMS: 330_000})
	add("lost while destroyed", sw, "user", -3*h, -h, &store.Deployment{Process: process.Destroy, State: process.Lost,
		ResumeProcess: process.Destroy, ResumeState: "destroying", LastError: "no progress in destroying after 1m0s"})
	add("someone else's deployed node", sw, "other", -h, 2*h, &store.Deployment{Process: process.Deploy, State: "deployed"},
		done(process.Deploy, "deployed")...)
	add("a state of the original's deploy", sw, "other", -h, 2*h, &store.Deployment{Process: process.Deploy, State: "wait_resizing"})
	add("a state of the original's save_env", sw, "user", -h, 2*h, &store.Deployment{Process: process.SaveEnv, State: "img_compress"})
	add("an unknown process", sw, "user", -h, 2*h, &store.Deployment{Process: "img_deploy", State: "ready"})
	model = "RPI3B" // the only one of its model on its switch: "0 free"
	add("switch not answering", sx.dead, "user", -h, 2*h, &store.Deployment{Process: process.Deploy, State: "turn_on",
		LastError: "turn_on: switch sw-dead: no answer from 192.0.2.13:161 after 2 tries", Failures: 3})
	model = "RPI4B"
	add("free, switch not answering", sx.dead, "", 0, 0, nil)
	return sx
}

func (sx *situations) named(t testing.TB, name string) situation {
	t.Helper()
	for _, s := range sx.list {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("no situation %q", name)
	return situation{}
}

// pageObject is one record a route's :param may name, with the role of its owner.
type pageObject struct {
	what  string // for messages
	param string
	owner string // "user", "other" or "" (nobody's: a node, a switch…)
}

// objectsFor lists what the route's parameter may name, from the segment before it: every
// situation's node, reservation or deployment, every switch, and so on. A new page with a
// parameter of a new kind fails the test until it gets a line here.
func (sx *situations) objectsFor(path string) ([]pageObject, bool) {
	i := strings.IndexAny(path, ":*")
	if i < 0 {
		return []pageObject{{what: path}}, true
	}
	segs := strings.Split(strings.Trim(path[:i], "/"), "/")
	kind := segs[len(segs)-1]
	id := func(n uint) string { return fmt.Sprint(n) }
	var out []pageObject
	switch kind {
	case "nodes":
		for _, s := range sx.list {
			out = append(out, pageObject{what: "node " + s.name, param: id(s.node.ID)})
		}
	case "reservations":
		for _, s := range sx.list {
			if s.res != nil {
				out = append(out, pageObject{what: "reservation of " + s.name, param: id(s.res.ID), owner: s.owner})
			}
		}
	case "deployments":
		for _, s := range sx.list {
			if s.dep != nil {
				out = append(out, pageObject{what: "deployment " + s.name, param: id(s.dep.ID), owner: s.owner})
			}
		}
	case "switches":
		for _, sw := range []store.Switch{sx.sw, sx.sw2, sx.dead} {
			out = append(out, pageObject{what: "switch " + sw.Name, param: id(sw.ID)})
		}
	case "environments":
		for _, e := range []store.Environment{sx.env, sx.env2} {
			out = append(out, pageObject{what: "environment " + e.Name, param: id(e.ID)})
		}
	case "discovery":
		out = append(out, pageObject{what: "discovery", param: id(sx.discovery.ID)})
	case "port-requests":
		for what, r := range map[string]store.PortRequest{"ports read": sx.portRead, "a failed reading": sx.deadRead, "a pending cycle": sx.pending} {
			out = append(out, pageObject{what: what, param: id(r.ID)})
		}
	case "confirm", "password-reset":
		out = append(out, pageObject{what: "an unknown token", param: "abc"})
	case "static":
		for _, f := range []string{"app.css", "app.js", "favicon.svg"} {
			out = append(out, pageObject{what: f, param: f})
		}
	default:
		return nil, false
	}
	return out, true
}

// url fills the route's one parameter.
func (o pageObject) url(path string) string {
	i := strings.IndexAny(path, ":*")
	if i < 0 {
		return path
	}
	rest := path[i:]
	j := strings.IndexByte(rest, '/')
	if j < 0 {
		return path[:i] + o.param
	}
	return path[:i] + o.param + rest[j:]
}

// as is the role whose row of the access table applies to role looking at o: the table's
// rows are written for alice's objects, so on bob's the owner and the other user swap.
func (o pageObject) as(role string) string {
	if o.owner == "other" {
		switch role {
		case "user":
			return "other"
		case "other":
			return "user"
		}
	}
	return role
}

// nonHostRE is what a node's name may not hold: its situation's name is made a host name.
var nonHostRE = regexp.MustCompile(`[^A-Za-z0-9]+`)

// TestEveryPageForEveryNode renders every page and every API GET of the route table, as every
// kind of visitor, about every situation of a node (its node, reservation and deployment
// pages, the lists showing them all at once, every switch including one that does not
// answer). Nothing may answer 5xx or break off in a template; a visitor who may not see a page
// gets the access table's answer (routes_test.go); every page that renders is whole.
func TestEveryPageForEveryNode(t *testing.T) {
	sx := newSituations(t)
	cases := sx.routeCases()
	browsers := map[string]*browser{}
	for _, role := range roles {
		browsers[role] = sx.as(role)
	}
	pages := 0
	for _, r := range sx.s.Routes() {
		if r.Method != http.MethodGet {
			continue
		}
		key := r.Method + " " + r.Path
		tc, ok := cases[key]
		if !ok {
			continue // TestEveryRouteHasARow reports it
		}
		objs, ok := sx.objectsFor(r.Path)
		if !ok {
			t.Errorf("%s: which records may its parameter name? Add them to situations.objectsFor", key)
			continue
		}
		api := strings.HasPrefix(r.Path, "/api/")
		for _, o := range objs {
			url := o.url(r.Path)
			for _, role := range roles {
				var code int
				var body, ctype string
				if api {
					res := sx.api(role, http.MethodGet, url, nil)
					code, body, ctype = res.Code, res.Body.String(), res.Header().Get("Content-Type")
				} else {
					res := browsers[role].get(url)
					code, body, ctype = res.Code, res.Body.String(), res.Header().Get("Content-Type")
				}
				pages++
				where := fmt.Sprintf("GET %s (%s) as %s", url, o.what, role)
				if want := tc.want.of(o.as(role)); code != want {
					t.Errorf("%s: status %d, want %d; body: %.300s", where, code, want, body)
					continue
				}
				if code != http.StatusOK {
					continue
				}
				checkWhole(t, where, ctype, body)
			}
		}
	}
	t.Logf("%d pages rendered, %d situations of a node", pages, len(sx.list))
}

// decimalUnit is a size in decimal units, which no page writes (a number that starts a word,
// not a piece of a token).
var decimalUnit = regexp.MustCompile(`[\s>(]\d+(\.\d+)? ?[kMGT]B\b(/s)?`)

// checkWhole fails on a page that rendered only in part or printed a Go formatting error: HTML
// that does not end, a template's missing value, a fmt verb error, invalid JSON.
func checkWhole(t *testing.T, where, ctype, body string) {
	t.Helper()
	switch {
	case strings.HasPrefix(ctype, "text/html"):
		if !strings.Contains(body, "</html>") {
			t.Errorf("%s: the page does not end: %.200s…", where, body[max(0, len(body)-200):])
		}
		if m := decimalUnit.FindString(body); m != "" {
			t.Errorf("%s: the page writes %q: sizes are in binary units, labelled MiB, GiB", where, m)
		}
		for _, bad := range []string{"no value&gt;", "%!", "step 0 of"} {
			if strings.Contains(body, bad) {
				i := strings.Index(body, bad)
				t.Errorf("%s: the page shows %q: …%s…", where, bad, body[max(0, i-150):min(len(body), i+100)])
			}
		}
	case strings.HasPrefix(ctype, "application/json"):
		if !json.Valid([]byte(body)) {
			t.Errorf("%s: invalid JSON: %.200s", where, body)
		}
	}
}

var timelineRE = regexp.MustCompile(`<li class="(\w+)">([a-z_]+)<span class="d">([^<]*)</span>`)

// timelineOf reads a deployment page's timeline as "state status duration" lines.
func timelineOf(body string) []string {
	var out []string
	for _, m := range timelineRE.FindAllStringSubmatch(body, -1) {
		out = append(out, strings.TrimSpace(m[2]+" "+m[1]+" "+strings.ReplaceAll(m[3], "&nbsp;", "")))
	}
	return out
}

// TestWhatAUserSeesIsTrue: the pages say where a deployment stopped, what waits for a worker,
// sizes in one unit system, how to log in only once there is a system to log in to, times in
// the zone they were entered in, and no green "0 free".
func TestWhatAUserSeesIsTrue(t *testing.T) {
	sx := newSituations(t)
	alice, bob, admin := sx.as("user"), sx.as("other"), sx.as("admin")
	page := func(b *browser, path string) string {
		t.Helper()
		res := b.get(path)
		if res.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, res.Code)
		}
		return res.Body.String()
	}
	depPage := func(b *browser, name string) string {
		return page(b, fmt.Sprintf("/deployments/%d", sx.named(t, name).dep.ID))
	}
	status := func(name string) apijson.Deployment {
		t.Helper()
		var out struct{ Deployments []apijson.Deployment }
		res := alice.get(fmt.Sprintf("/deployments/status.json?ids=%d", sx.named(t, name).dep.ID))
		if err := json.Unmarshal(res.Body.Bytes(), &out); err != nil || len(out.Deployments) != 1 {
			t.Fatalf("status of %s: %v %s", name, err, res.Body.String())
		}
		return out.Deployments[0]
	}
	mine := page(alice, "/deployments")

	t.Run("a lost or failed deployment shows where it stopped, and its timeline stops counting", func(t *testing.T) {
		for name, want := range map[string]string{"lost": "stopped at step 5 of 15: env_copy", "failed": "stopped at step 6 of 15: env_check"} {
			if body := depPage(alice, name); !strings.Contains(body, want) {
				t.Errorf("%s: the deployment page does not say %q", name, want)
			}
			if v := status(name); v.StepText != want || v.Step == 0 {
				t.Errorf("%s: the live status says step %d, %q; want %q", name, v.Step, v.StepText, want)
			}
		}
		if !strings.Contains(mine, "stopped at step 5 of 15: env_copy") {
			t.Error("the deployments page does not say where the lost deployment stopped")
		}
		before := timelineOf(depPage(alice, "lost"))
		if !slices.Contains(before, "env_copy failed 1h00m") || !slices.Contains(before, "env_check pending") ||
			!slices.Contains(before, "ssh_nfs done 7.0s") || !slices.Contains(before, "queued done 4.0s") {
			t.Errorf("timeline of the lost deployment: %q", before)
		}
		sx.s.now = func() time.Time { return sx.now.Add(5 * time.Hour) }
		later := timelineOf(depPage(alice, "lost"))
		sx.s.now = func() time.Time { return sx.now }
		if !slices.Equal(before, later) {
			t.Errorf("the timeline of a lost deployment goes on counting:\n%q\nthen\n%q", before, later)
		}
		// Lost in a reboot: the reboot's state, not the deploy it was going back to.
		if tl := timelineOf(depPage(alice, "lost in a reboot")); !slices.Equal(tl, []string{"turn_off done", "turn_on done", "coming_back failed 5m30s"}) {
			t.Errorf("timeline of a node lost in a reboot: %q", tl)
		}
	})

	t.Run("the wait for a worker shows as queued", func(t *testing.T) {
		v := status("queued")
		if !v.Queued || v.Label != "queued" || v.StepText != "waiting for a worker, then step 1 of 15" {
			t.Errorf("live status of a queued request: queued %v, %q, %q", v.Queued, v.Label, v.StepText)
		}
		tl := timelineOf(depPage(alice, "queued"))
		if len(tl) < 2 || tl[0] != "queued current 2m00s" || tl[1] != "boot_conf pending" {
			t.Errorf("timeline of a queued request: %q", tl)
		}
		node := sx.named(t, "queued").node
		if body := page(alice, "/resources"); !regexp.MustCompile(`/nodes/` + fmt.Sprint(node.ID) + `">[^<]+</a>.*?>queued</span>`).MatchString(body) {
			t.Error("the resources page does not show the queued request as queued")
		}
		if v := status("deploy/boot_conf"); v.Queued || v.Label != "boot_conf" {
			t.Errorf("a request a worker took: queued %v, %q", v.Queued, v.Label)
		}
		if tl := timelineOf(depPage(alice, "deploy/turn_on")); len(tl) < 3 || tl[0] != "queued done 4.0s" || tl[1] != "boot_conf done 7.0s" {
			t.Errorf("timeline after the wait: %q", tl)
		}
	})

	t.Run("the wait for a boot or copy slot shows", func(t *testing.T) {
		for name, want := range map[string]string{
			"waiting for a boot slot": "step 3 of 15, waiting for its turn to boot",
			"waiting for a copy slot": "step 5 of 15, waiting for its turn to copy an image",
		} {
			if v := status(name); !v.Waiting || v.Queued || v.StepText != want || !strings.HasSuffix(want, "waiting for "+v.WaitingFor) {
				t.Errorf("live status of a node %s: waiting %v (for %q), queued %v, %q; want %q", name, v.Waiting, v.WaitingFor, v.Queued, v.StepText, want)
			}
			if body := depPage(alice, name); !strings.Contains(body, want) {
				t.Errorf("the deployment page does not say %q", want)
			}
		}
		for _, name := range []string{"deploy/turn_on", "deploy/env_copy"} {
			if v := status(name); v.Waiting || v.WaitingFor != "" || strings.Contains(v.StepText, "waiting") {
				t.Errorf("a node in %s that does not wait: waiting %v (for %q), %q", name, v.Waiting, v.WaitingFor, v.StepText)
			}
		}
	})

	t.Run("one unit system", func(t *testing.T) {
		v := status("deploy/env_copy")
		if v.Speed != "9.1 MiB/s" || v.MiBps != 9.1 {
			t.Errorf("copy speed %q, %v MiB/s", v.Speed, v.MiBps)
		}
		if !strings.Contains(mine, "9.1 MiB/s") {
			t.Error("the deployments page does not show the copy speed in MiB/s")
		}
		if body := page(admin, "/admin/environments"); !strings.Contains(body, "1.0 GiB") {
			t.Error("the environments page does not show the image size in GiB")
		}
		if body := page(alice, fmt.Sprintf("/reservations/%d/deploy", sx.named(t, "reserved by me").res.ID)); !strings.Contains(body, ">200 MiB<") || !strings.Contains(body, ">1 GiB<") {
			t.Error("the deploy form's partition sizes are not in MiB and GiB")
		}
	})

	t.Run("how to log in shows once the node is deployed", func(t *testing.T) {
		for _, sit := range sx.list {
			if sit.dep == nil {
				continue
			}
			owner := map[string]*browser{"user": alice, "other": bob}[sit.owner]
			body := depPage(owner, sit.name)
			deployed := sit.dep.State == "deployed"
			pw := map[string]string{"user": aliceOSPass, "other": bobOSPass}[sit.owner]
			if got := strings.Contains(body, "ssh pi@") && strings.Contains(body, pw); got != deployed {
				t.Errorf("%s: the deployment page shows how to log in and the password: %v, want %v", sit.name, got, deployed)
			}
			node := page(owner, fmt.Sprintf("/nodes/%d", sit.node.ID))
			if got := strings.Contains(node, "ssh pi@"); got != deployed {
				t.Errorf("%s: the node page shows how to log in: %v, want %v", sit.name, got, deployed)
			}
			var v apijson.Deployment
			json.Unmarshal(sx.api(sit.owner, http.MethodGet, fmt.Sprintf("/api/v1/deployments/%d", sit.dep.ID), nil).Body.Bytes(), &v)
			if (v.OSPassword != "") != deployed || v.Reachable != deployed {
				t.Errorf("%s: the API gives the password: %v, reachable %v; want %v", sit.name, v.OSPassword != "", v.Reachable, deployed)
			}
		}
	})

	t.Run("a state none of our processes has shows as what it is", func(t *testing.T) {
		body := depPage(bob, "a state of the original's deploy")
		for _, want := range []string{">wait_resizing</span>", "wait_resizing is not a step of deploy", "No timeline"} {
			if !strings.Contains(body, want) {
				t.Errorf("the page of a deployment in wait_resizing lacks %q", want)
			}
		}
	})

	t.Run("0 free is not green", func(t *testing.T) {
		body := page(alice, "/resources")
		if !strings.Contains(body, `<span class="badge none">0 free</span>`) || strings.Contains(body, `free">0 free`) {
			t.Error(`the resources page shows "0 free" as free`)
		}
		if !strings.Contains(body, `<span class="badge free">1 free</span>`) {
			t.Error(`the resources page does not show "1 free" as free`)
		}
	})

	t.Run("times are shown in the zone they were entered in", func(t *testing.T) {
		mineRes, bobs := sx.named(t, "reserved by me").res, sx.named(t, "reserved by someone else").res
		paris, _ := time.LoadLocation(zoneAlice)
		ny, _ := time.LoadLocation(zoneBob)
		until := mineRes.EndsAt.In(paris).Format("2006-01-02 15:04") + " Europe/Paris"
		bobUntil := bobs.EndsAt.In(ny).Format("2006-01-02 15:04") + " America/New_York"
		if body := page(alice, fmt.Sprintf("/nodes/%d", sx.named(t, "reserved by me").node.ID)); !strings.Contains(body, "until "+until) {
			t.Errorf("node page: no %q", until)
		}
		resources := page(bob, "/resources")
		for _, want := range []string{until, bobUntil} {
			if !strings.Contains(resources, want) {
				t.Errorf("resources page: no %q", want)
			}
		}
		if !strings.Contains(mine, mineRes.StartsAt.In(paris).Format("2006-01-02 15:04")+" Europe/Paris → "+until) {
			t.Errorf("deployments page: no %s reservation in Europe/Paris", until)
		}
		var out struct{ Reservations []apijson.Reservation }
		json.Unmarshal(sx.api("other", http.MethodGet, "/api/v1/reservations", nil).Body.Bytes(), &out)
		if i := slices.IndexFunc(out.Reservations, func(r apijson.Reservation) bool { return r.ID == bobs.ID }); i < 0 || out.Reservations[i].TimeZone != zoneBob {
			t.Errorf("API reservations: no %d in %s: %+v", bobs.ID, zoneBob, out.Reservations)
		}
		if body := page(alice, fmt.Sprintf("/nodes/%d", sx.nodes[0].ID)); !strings.Contains(body, sx.r1.EndsAt.UTC().Format("2006-01-02 15:04")+" UTC") {
			t.Error("a reservation entered without a zone does not show in UTC, named")
		}
		// Through the API (last: it takes a free node).
		free := sx.named(t, "free").node.ID
		if res := sx.api("user", http.MethodPost, "/api/v1/reservations", map[string]any{"node_ids": []uint{free}, "hours": 1,
			"time_zone": "Mars/Olympus"}); res.Code != http.StatusBadRequest || !strings.Contains(res.Body.String(), "Unknown time zone") {
			t.Errorf("API reservation in an unknown zone: %d %s", res.Code, res.Body.String())
		}
		var r apijson.Reservation
		res := sx.api("user", http.MethodPost, "/api/v1/reservations", map[string]any{"node_ids": []uint{free}, "hours": 1, "time_zone": "Asia/Tokyo"})
		if json.Unmarshal(res.Body.Bytes(), &r); res.Code != http.StatusCreated || r.TimeZone != "Asia/Tokyo" {
			t.Errorf("API reservation in Asia/Tokyo: %d %s", res.Code, res.Body.String())
		}
		if body := page(alice, fmt.Sprintf("/nodes/%d", free)); !strings.Contains(body, " Asia/Tokyo") {
			t.Error("the node page does not show the API reservation's end in Asia/Tokyo")
		}
	})
}
