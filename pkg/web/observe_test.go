package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// logLine returns the access log line of request id, or fails.
func (f *fixture) logLine(id string) string {
	f.t.Helper()
	logMu.Lock()
	defer logMu.Unlock()
	for _, l := range strings.Split(f.log.String(), "\n") {
		if strings.Contains(l, "msg=http ") && strings.Contains(l, "request_id="+id) {
			return l
		}
	}
	f.t.Fatalf("no access log line with request_id=%s in:\n%s", id, f.log.String())
	return ""
}

// TestAccessLogAndRequestID: every request gets an id (in X-Request-Id, on its error page, in
// its log lines), and one access log line with its method, path, route, status, duration and
// user; secrets in a path stay out of the log.
func TestAccessLogAndRequestID(t *testing.T) {
	f := newFixture(t)
	alice := f.as("user")
	idRE := regexp.MustCompile(`^[0-9a-f]{16}$`)

	res := alice.get(fmt.Sprintf("/deployments/%d", f.d1.ID))
	id := res.Header().Get("X-Request-Id")
	if res.Code != http.StatusOK || !idRE.MatchString(id) {
		t.Fatalf("GET deployment: %d, X-Request-Id %q", res.Code, id)
	}
	l := f.logLine(id)
	for _, want := range []string{"level=INFO", "method=GET", fmt.Sprintf("path=/deployments/%d ", f.d1.ID), "route=/deployments/:id",
		"status=200", "duration_ms=", fmt.Sprintf("user_id=%d ", f.alice.ID)} {
		if !strings.Contains(l, want) {
			t.Errorf("access log line lacks %q: %s", want, l)
		}
	}

	// An error page shows its id, the one in the header and the log.
	res = f.browser().get("/no/such/page")
	id = res.Header().Get("X-Request-Id")
	if res.Code != http.StatusNotFound || !strings.Contains(res.Body.String(), "Request id: <code>"+id+"</code>") {
		t.Errorf("404 page: %d, id %q\n%s", res.Code, id, res.Body.String())
	}
	if l := f.logLine(id); !strings.Contains(l, "route=unmatched") || !strings.Contains(l, "status=404") || !strings.Contains(l, "user_id=0 ") {
		t.Errorf("404 access log: %s", l)
	}
	// A 500: the page's reference is the request id, and the error is logged under it.
	storetest.DB(f.st).Exec("DROP TABLE reservation_nodes")
	res = alice.get("/resources")
	id = res.Header().Get("X-Request-Id")
	if res.Code != 500 || !strings.Contains(res.Body.String(), "reference "+id) {
		t.Errorf("500 page: %d, id %q\n%s", res.Code, id, res.Body.String())
	}
	if l := f.logLine(id); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "status=500") {
		t.Errorf("500 access log: %s", l)
	}
	if !strings.Contains(f.log.String(), "msg=\"request failed\" request_id="+id) {
		t.Errorf("the failure is not logged under the request id %s", id)
	}

	// A confirmation token in a path is not logged.
	const secret = "S3CRETtokenS3CRETtokenS3CRETtoken"
	id = f.browser().get("/confirm/" + secret).Header().Get("X-Request-Id")
	if l := f.logLine(id); !strings.Contains(l, "path=/confirm/:token ") {
		t.Errorf("confirm access log: %s", l)
	}
	if strings.Contains(f.log.String(), secret) {
		t.Error("a confirmation token is in the log")
	}

	// A reverse proxy's request id is kept; one that does not look like an id is replaced.
	for hdr, keep := range map[string]bool{"proxy-1234.abcd": true, "bad id\" injected=1": false, "short": false} {
		req := httptest.NewRequest(http.MethodGet, "/login", nil)
		req.Header.Set("X-Request-Id", hdr)
		got := f.browser().do(req).Header().Get("X-Request-Id")
		if (got == hdr) != keep || (!keep && !idRE.MatchString(got)) {
			t.Errorf("X-Request-Id %q came back as %q", hdr, got)
		}
	}
}

// TestHTTPMetricsAndVersion: pifrontend's /metrics counts requests by route pattern, has its
// build and the database's gauges, and none of pitasks' series; admins see the version in the
// footer, users do not.
func TestHTTPMetricsAndVersion(t *testing.T) {
	f := newFixture(t)
	alice := f.as("user")
	for _, d := range []uint{f.d1.ID, f.d2.ID} {
		alice.get(fmt.Sprintf("/deployments/%d", d))
	}
	f.browser().get("/no/such/page")
	admin := f.as("admin")
	res := admin.get("/metrics")
	body := res.Body.String()
	for _, want := range []string{
		`piseduce_http_requests_total{code="2xx",method="GET",route="/deployments/:id"} 2`,
		`piseduce_http_requests_total{code="4xx",method="GET",route="unmatched"} 1`,
		`piseduce_http_requests_total{code="3xx",method="POST",route="/login"}`,
		`piseduce_http_request_duration_seconds_count{method="GET",route="/deployments/:id"} 2`,
		`piseduce_deployments{process="deploy",state="deployed"} 3`,
		"piseduce_reservations_held 3", "piseduce_nodes_reserved 4",
		`piseduce_build_info{build_date="`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, other := range []string{"piseduce_state_duration_seconds", "piseduce_tick_duration_seconds", "piseduce_copy_bytes_total", "piseduce_leases_held"} {
		if strings.Contains(body, other) {
			t.Errorf("pifrontend exports pitasks' %s", other)
		}
	}
	if strings.Contains(body, "/deployments/"+fmt.Sprint(f.d1.ID)) {
		t.Error("a metric is labelled with a path, not a route")
	}

	footer := regexp.MustCompile(`<span class="version">([^<]+)</span>`)
	m := footer.FindStringSubmatch(admin.get("/account").Body.String())
	if m == nil || !strings.Contains(m[1], "commit ") || !strings.Contains(m[1], "built ") {
		t.Errorf("the admin's footer has no version: %q", m)
	}
	if footer.MatchString(alice.get("/account").Body.String()) {
		t.Error("a user sees the version")
	}
}

// TestAVisitorWhoLeftIsNoError: a request cut short because its visitor left (its context
// canceled) is logged at INFO, not as an error of ours.
func TestAVisitorWhoLeftIsNoError(t *testing.T) {
	f := newFixture(t)
	for _, left := range []bool{true, false} {
		f.log.Reset()
		ctx, cancel := context.WithCancel(context.Background())
		if left {
			cancel()
		}
		c := f.s.echo.NewContext(httptest.NewRequest(http.MethodGet, "/resources", nil).WithContext(ctx), httptest.NewRecorder())
		f.s.handleError(errors.New("session lookup: sqlite3: interrupted"), c)
		cancel()
		want := map[bool]string{true: `level=INFO msg="request failed"`, false: `level=ERROR msg="request failed"`}[left]
		if !strings.Contains(f.log.String(), want) {
			t.Errorf("visitor left %v: log lacks %q:\n%s", left, want, f.log.String())
		}
	}
}
