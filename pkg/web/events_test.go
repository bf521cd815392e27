package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// writeProgress is pitasks writing copy progress of d (the situations' deployments hold no lease).
func writeProgress(t *testing.T, st *store.Store, d *store.Deployment, done int64) {
	t.Helper()
	d.BytesDone = done
	if err := st.SaveProgress(context.Background(), d.LeaseOwner, d); err != nil {
		t.Fatal(err)
	}
}

// sessionFor logs u in without a browser: the cookie value of a new session.
func sessionFor(t *testing.T, st *store.Store, u *store.User) string {
	t.Helper()
	tok := auth.NewToken("")
	if err := st.CreateSession(context.Background(), &store.Session{Hash: auth.HashToken(tok), UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestStatusETagPerUser: the live status answers 304 to its own ETag only: another user
// sending it gets their own deployments, and after pitasks writes progress the tag no longer
// holds. Nobody's status holds another user's deployments, though all come from one cache.
func TestStatusETagPerUser(t *testing.T) {
	sx := newSituations(t)
	alice, bob := sx.as("user"), sx.as("other")
	get := func(b *browser, tag string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/deployments/status.json", nil)
		if tag != "" {
			req.Header.Set("If-None-Match", tag)
		}
		return b.do(req)
	}
	owners := func(rec *httptest.ResponseRecorder) map[uint]bool {
		var body struct{ Deployments []apijson.Deployment }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%v: %s", err, rec.Body)
		}
		ids := map[uint]bool{}
		for _, d := range body.Deployments {
			ids[d.ID] = true
		}
		return ids
	}
	mine := func(role string) map[uint]bool {
		ds, err := sx.st.Deployments(context.Background(), store.DeploymentFilter{UserID: sx.user(role).ID})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[uint]bool{}
		for _, d := range ds {
			ids[d.ID] = true
		}
		return ids
	}
	first := get(alice, "")
	tag := first.Header().Get("ETag")
	if first.Code != http.StatusOK || tag == "" {
		t.Fatalf("status: %d, ETag %q", first.Code, tag)
	}
	for id := range owners(first) {
		if !mine("user")[id] {
			t.Errorf("alice's status holds deployment %d, not hers", id)
		}
	}
	if rec := get(alice, tag); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("alice with her own ETag: %d, %d bytes; want 304, none", rec.Code, rec.Body.Len())
	}
	rec := get(bob, tag)
	if rec.Code != http.StatusOK {
		t.Fatalf("bob with alice's ETag: %d, want 200 and his own", rec.Code)
	}
	got := owners(rec)
	if len(got) == 0 {
		t.Error("bob's status is empty")
	}
	for id := range got {
		if !mine("other")[id] {
			t.Errorf("bob's status holds deployment %d, not his", id)
		}
	}
	// pitasks writes; within a tick the tag no longer holds and the new progress shows.
	d := sx.named(t, "deploy/env_copy").dep
	writeProgress(t, sx.st, d, 900<<20)
	deadline := time.Now().Add(time.Minute)
	for {
		rec := get(alice, tag)
		if rec.Code == http.StatusOK && strings.Contains(rec.Body.String(), fmt.Sprintf(`"bytes_done":%d`, 900<<20)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the write, alice's status still answers %d without it", rec.Code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAPIDeploymentsPages: limit and cursor walk everyone's deployments (admin, all=true) in
// pages that together are the unpaged list, in its order; a bad limit or cursor is a 400.
func TestAPIDeploymentsPages(t *testing.T) {
	sx := newSituations(t)
	ids := func(rec *httptest.ResponseRecorder) ([]uint, string) {
		t.Helper()
		if rec.Code != http.StatusOK {
			t.Fatalf("%d: %s", rec.Code, rec.Body)
		}
		var body struct {
			Deployments []apijson.Deployment
			Next        string `json:"next_cursor"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		var out []uint
		for _, d := range body.Deployments {
			out = append(out, d.ID)
		}
		return out, body.Next
	}
	all, next := ids(sx.api("admin", http.MethodGet, "/api/v1/deployments?all=true", nil))
	if next != "" || len(all) < 10 {
		t.Fatalf("unpaged: %d deployments, next_cursor %q", len(all), next)
	}
	var paged []uint
	path := "/api/v1/deployments?all=true&limit=7"
	for pages := 0; ; pages++ {
		if pages > len(all) {
			t.Fatal("the pages do not end")
		}
		page, next := ids(sx.api("admin", http.MethodGet, path, nil))
		if len(page) > 7 {
			t.Fatalf("a page of %d with limit=7", len(page))
		}
		paged = append(paged, page...)
		if next == "" {
			break
		}
		path = "/api/v1/deployments?all=true&limit=7&cursor=" + next
	}
	if fmt.Sprint(paged) != fmt.Sprint(all) {
		t.Errorf("pages give %v, the whole list %v", paged, all)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "cursor=nope", "cursor=MS94Lw"} {
		if rec := sx.api("admin", http.MethodGet, "/api/v1/deployments?"+q, nil); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, rec.Code)
		}
	}
}

// readEvents reads the stream of res until n deployment events came or the deadline.
func readEvents(t *testing.T, res *http.Response, until func(ev map[string]any) bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "deployment":
			var ev map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
			out = append(out, ev)
			if until(ev) {
				return out
			}
		}
	}
	t.Fatalf("the stream ended (%v) after %d events", sc.Err(), len(out))
	return nil
}

// TestEventsPerUser: alice's stream sends her deployments, never bob's (not even when she asks
// for his by id), then the progress pitasks writes; it ends when her session does.
func TestEventsPerUser(t *testing.T) {
	sx := newSituations(t)
	srv := httptest.NewServer(sx.s)
	defer srv.Close()
	cookie := sessionFor(t, sx.st, &sx.alice)
	var bobs []string
	for _, s := range sx.list {
		if s.dep != nil && s.owner == "other" {
			bobs = append(bobs, fmt.Sprint(s.dep.ID))
		}
	}
	copying := sx.named(t, "deploy/env_copy").dep
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/deployments/events?ids="+strings.Join(append(bobs, fmt.Sprint(copying.ID)), ","), nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("%d %s", res.StatusCode, ct)
	}
	id := float64(copying.ID)
	evs := readEvents(t, res, func(ev map[string]any) bool { return ev["id"] == id })
	writeProgress(t, sx.st, copying, 1200<<20)
	evs = append(evs, readEvents(t, res, func(ev map[string]any) bool { return ev["id"] == id && ev["bytes_done"] == float64(1200<<20) })...)
	for _, ev := range evs {
		if ev["id"] != id {
			t.Errorf("alice got an event of deployment %v, not hers", ev["id"])
		}
		if _, ok := ev["os_password"]; ok {
			t.Error("an event holds a password")
		}
	}
	// Her session ends (another pifrontend, or the database's cleanup): the stream ends.
	if err := sx.st.DeleteSession(context.Background(), auth.HashToken(cookie)); err != nil {
		t.Fatal(err)
	}
	writeProgress(t, sx.st, copying, 1300<<20)
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatalf("the stream did not end with the session: %v", err)
	}
}

// TestAStreamGetsWhatItsFirstReadMissed: a stream whose first read of live's list came before
// a change, and which subscribed only after the hub had sent that change to the others, still
// gets it. The hub once kept one generation for all streams, and such a stream waited for the
// next change: a page stayed at "destroy: turn_off" for good after its nodes were destroyed.
func TestAStreamGetsWhatItsFirstReadMissed(t *testing.T) {
	sx := newSituations(t)
	ctx := context.Background()
	copying := sx.named(t, "deploy/env_copy").dep
	allowed := func(context.Context) error { return nil }
	stale, staleGen, err := sx.s.live.deployments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Another viewer's stream, open all along: the hub sends it the change.
	early := newSubscriber(sx.alice)
	early.allowed = allowed
	sx.s.subscribe(early)
	defer sx.s.unsubscribe(early)
	writeProgress(t, sx.st, copying, 1200<<20)
	waitForBytes(t, early, copying.ID, 1200<<20)

	late := newSubscriber(sx.alice)
	late.allowed = allowed
	late.update(stale, staleGen, false, sx.s.now())
	sx.s.subscribe(late)
	defer sx.s.unsubscribe(late)
	waitForBytes(t, late, copying.ID, 1200<<20)
}

// waitForBytes waits until sub has an event of deployment id with bytes_done want to send.
func waitForBytes(t *testing.T, sub *subscriber, id uint, want int64) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		for _, data := range sub.take() {
			var ev apijson.Deployment
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.ID == id && ev.BytesDone == want {
				return
			}
		}
		select {
		case <-sub.wake:
		case <-timeout:
			t.Fatalf("no event of deployment %d with %d bytes done in a minute", id, want)
		}
	}
}

// TestEndStreams: a graceful shutdown ends the open event streams at once, instead of waiting
// for them until its timeout.
func TestEndStreams(t *testing.T) {
	sx := newSituations(t)
	srv := httptest.NewServer(sx.s)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/deployments/events", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sessionFor(t, sx.st, &sx.alice)})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if line, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "retry:") {
		t.Fatalf("the stream did not start: %q %v", line, err)
	}
	sx.s.EndStreams()
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatalf("the stream did not end: %v", err)
	}
}

// bufferingProxy is a proxy that hands an answer on only once it is complete (some do): an
// event stream never gets through.
func bufferingProxy(upstream string) http.Handler {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		out.Host = r.Host
		res, err := client.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			return // the browser left during a stream
		}
		for k, vs := range res.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(body)
	})
}

// TestBrowserLiveProgress: in headless Chromium, the deployments page shows the progress
// pitasks writes without a reload, through events when they arrive and by polling behind a
// proxy that buffers them.
func TestBrowserLiveProgress(t *testing.T) {
	testenv.NeedCommand(t, "chromium")
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	sx := newSituations(t)
	direct := httptest.NewServer(sx.s)
	defer direct.Close()
	buffered := httptest.NewServer(bufferingProxy(direct.URL))
	defer buffered.Close()
	d := sx.named(t, "deploy/env_copy").dep
	bar := fmt.Sprintf(`document.querySelector('tr[data-dep="%d"] progress').value`, d.ID)
	done := d.BytesDone
	for _, tc := range []struct{ name, url, mode string }{{"events", direct.URL, "events"}, {"buffering proxy", buffered.URL, "polling"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChrome(t, tc.url, artifactsDir(t, "web-live"), 5*time.Minute)
			c.login(sx.alice.Email)
			c.do("deployments", chromedp.Navigate(tc.url+"/deployments"), chromedp.WaitVisible(chromedp.CSS("tr[data-dep]")))
			c.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = "yes"`))
			c.waitFor("live mode "+tc.mode, `window.__liveMode === "`+tc.mode+`"`, time.Minute)
			before := c.eval(`String(` + bar + `)`)
			done += 150 << 20
			writeProgress(t, sx.st, d, done)
			pct := float64(done) * 100 / float64(d.BytesTotal)
			want := strconv.FormatFloat(float64(int(pct*10))/10, 'f', -1, 64) // as the view rounds it
			c.waitFor("the bar moves from "+before+" to "+want, `String(`+bar+`) === "`+want+`"`, time.Minute)
			if c.eval(`String(window.__sameDocument)`) != "yes" || c.eval(`String(window.__liveMode)`) != tc.mode {
				t.Fatalf("the page was reloaded or changed mode (%s)", c.eval(`String(window.__liveMode)`))
			}
		})
	}
}

// TestETagHoldsThroughOthersChanges: a user's ETag still validates after another user's
// deployment changed (which moves the cache's generation): the tag hashes their own answer.
func TestETagHoldsThroughOthersChanges(t *testing.T) {
	f := newFixture(t)
	get := func(role, tag string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/deployments", nil)
		req.Header.Set("Authorization", "Bearer "+f.tokens[role])
		if tag != "" {
			req.Header.Set("If-None-Match", tag)
		}
		return f.serve(req)
	}
	alice := get("user", "")
	tag := alice.Header().Get("ETag")
	if alice.Code != http.StatusOK || tag == "" {
		t.Fatalf("alice: %d, ETag %q", alice.Code, tag)
	}
	writeProgress(t, f.st, &f.d3, 123<<20) // bob's deployment
	for deadline := time.Now().Add(time.Minute); !strings.Contains(get("other", "").Body.String(), fmt.Sprintf(`"bytes_done":%d`, 123<<20)); {
		if time.Now().After(deadline) {
			t.Fatal("bob's progress never showed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rec := get("user", tag); rec.Code != http.StatusNotModified {
		t.Errorf("alice's ETag after bob's change: %d, want 304", rec.Code)
	}
	writeProgress(t, f.st, &f.d1, 7<<20) // hers
	for deadline := time.Now().Add(time.Minute); get("user", tag).Code != http.StatusOK; {
		if time.Now().After(deadline) {
			t.Fatal("alice's ETag still holds after her own deployment changed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
