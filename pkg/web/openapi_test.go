package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/helpers"
)

// The contract: every answer under /api/v1 that a test sees goes through apiContractErrors
// (f.api, browser.do and the live servers of checkedServer call it), so an answer whose route,
// method or status openapi.json does not describe, or whose body does not match its schema,
// fails the test that got it.

// apiValidators are openapi.json's validators: one for whole answers, one for HEAD (no body).
var apiValidators = sync.OnceValues(func() ([2]validator.Validator, error) {
	var vs [2]validator.Validator
	doc, err := libopenapi.NewDocument(openAPISpec)
	if err != nil {
		return vs, err
	}
	for i, opts := range [][]config.Option{
		{config.WithFormatAssertions()},
		{config.WithFormatAssertions(), config.WithoutResponseBodyValidation()},
	} {
		v, errs := validator.NewValidator(doc, opts...)
		if len(errs) > 0 {
			return vs, fmt.Errorf("openapi.json: %v", errs)
		}
		if ok, verrs := v.ValidateDocument(); !ok {
			return vs, fmt.Errorf("openapi.json is not a valid OpenAPI 3.1 document: %v", verrs)
		}
		vs[i] = v
	}
	return vs, nil
})

// apiContractErrors checks one answer against openapi.json; nothing outside /api/v1 is checked.
// A route or method it does not describe may only be answered 404 or 405 with an error body.
func apiContractErrors(req *http.Request, code int, header http.Header, body []byte) ([]string, error) {
	if !strings.HasPrefix(req.URL.Path, "/api/v1/") {
		return nil, nil
	}
	vs, err := apiValidators()
	if err != nil {
		return nil, err
	}
	v, r := vs[0], req
	if req.Method == http.MethodHead {
		// HEAD is GET without the body: the same route and statuses.
		v, r = vs[1], req.Clone(req.Context())
		r.Method = http.MethodGet
	}
	res := &http.Response{StatusCode: code, Header: header, Body: io.NopCloser(bytes.NewReader(body)), Request: r}
	_, verrs := v.ValidateHttpResponse(r, res)
	var out []string
	for _, e := range verrs {
		if e.ValidationType == helpers.PathValidation || e.ValidationSubType == helpers.ValidationMissingOperation {
			if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) && isAPIError(body, req.Method) {
				continue // an unknown route, refused as it should be
			}
			out = append(out, fmt.Sprintf("%s %s answered %d but openapi.json does not describe it: %s", req.Method, req.URL.Path, code, e.Message))
			continue
		}
		msg := e.Message
		for _, se := range e.SchemaValidationErrors {
			msg += fmt.Sprintf("; %s: %s", se.FieldPath, se.Reason)
		}
		out = append(out, fmt.Sprintf("%s %s → %d does not match openapi.json: %s %s", req.Method, req.URL.Path, code, msg, e.Reason))
	}
	return out, nil
}

// isAPIError: the body is {"error": "…"} (or empty, for HEAD).
func isAPIError(body []byte, method string) bool {
	if method == http.MethodHead {
		return len(body) == 0
	}
	return bytes.HasPrefix(bytes.TrimSpace(body), []byte(`{"error":`))
}

// checkAPIAnswer fails t when the answer breaks the contract.
func checkAPIAnswer(t testing.TB, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	errs, err := apiContractErrors(req, rec.Code, rec.Header(), rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Error(e)
	}
}

// checkedServer is h behind a live test server whose API answers are checked against openapi.json.
func checkedServer(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/v1/") {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		checkAPIAnswer(t, r, rec)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestOpenAPIDescribesEveryRoute: every /api/v1 route of the route table is in openapi.json with
// the access it has, and openapi.json describes no route the table lacks.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	f := newFixture(t)
	var doc oaDoc
	if err := json.Unmarshal(openAPISpec, &doc); err != nil {
		t.Fatal(err)
	}
	described := map[string]string{} // "METHOD /api/v1/:param" → x-piseduce-access
	param := regexp.MustCompile(`\{([a-z_]+)\}`)
	for _, p := range doc.Paths {
		for m, o := range p.Val {
			described[strings.ToUpper(m)+" /api/v1"+param.ReplaceAllString(p.Key, ":$1")] = o.Access
		}
	}
	want := map[access]string{apiUser: "user", apiAdmin: "admin", open: "anyone"}
	n := 0
	for key, level := range f.s.access {
		if !strings.Contains(key, " /api/v1/") {
			continue
		}
		n++
		got, ok := described[key]
		switch {
		case !ok:
			t.Errorf("route %s is not in openapi.json", key)
		case got != want[level]:
			t.Errorf("route %s is %s, openapi.json says x-piseduce-access %q", key, level, got)
		}
		delete(described, key)
	}
	for key := range described {
		t.Errorf("openapi.json describes %s, which is not a route", key)
	}
	if n < 30 {
		t.Fatalf("only %d API routes found", n)
	}
}

// TestOpenAPIServed: the description is public, the same bytes as the file, and cacheable.
func TestOpenAPIServed(t *testing.T) {
	f := newFixture(t)
	res := f.api("anon", http.MethodGet, "/api/v1/openapi.json", nil)
	etag := res.Header().Get("ETag")
	if res.Code != http.StatusOK || !bytes.Equal(res.Body.Bytes(), openAPISpec) || etag == "" ||
		!strings.HasPrefix(res.Header().Get("Content-Type"), "application/json") || !strings.Contains(res.Header().Get("Cache-Control"), "public") {
		t.Fatalf("GET: %d %v (%d bytes)", res.Code, res.Header(), res.Body.Len())
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(res.Body.Bytes(), &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("not OpenAPI 3.1: %q %v", doc.OpenAPI, err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil)
	req.Header.Set("If-None-Match", etag)
	if res := f.browser().do(req); res.Code != http.StatusNotModified || res.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d (%d bytes)", res.Code, res.Body.Len())
	}
	req = httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil)
	req.Header.Set("If-None-Match", `"stale"`)
	if res := f.browser().do(req); res.Code != http.StatusOK || res.Body.Len() != len(openAPISpec) {
		t.Errorf("stale If-None-Match: %d (%d bytes)", res.Code, res.Body.Len())
	}
}

// TestAPIDocsPage: the page shows every operation and every schema, without scripts, and the
// account page where tokens are made links to it.
func TestAPIDocsPage(t *testing.T) {
	f := newFixture(t)
	for _, role := range []string{"anon", "user"} {
		res := f.as(role).get("/docs/api")
		body := res.Body.String()
		if res.Code != http.StatusOK {
			t.Fatalf("as %s: %d", role, res.Code)
		}
		ops := 0
		for _, sec := range f.s.apiDocs.Sections {
			for _, op := range sec.Ops {
				ops++
				if !strings.Contains(body, `id="`+op.Anchor+`"`) || !strings.Contains(body, "<code>"+op.Path+"</code>") {
					t.Errorf("as %s: %s %s is not on the page", role, op.Method, op.Path)
				}
			}
		}
		for _, sc := range f.s.apiDocs.Schemas {
			if !strings.Contains(body, `id="schema-`+sc.Name+`"`) {
				t.Errorf("as %s: schema %s is not on the page", role, sc.Name)
			}
		}
		if ops < 30 || len(f.s.apiDocs.Schemas) < 10 {
			t.Fatalf("only %d operations and %d schemas", ops, len(f.s.apiDocs.Schemas))
		}
		for _, want := range []string{`href="#schema-DeploymentRequest"`, "date-time", "0 | 200 | 500 | 1024 | 2048 | 3072", `href="/api/v1/openapi.json"`} {
			if !strings.Contains(body, want) {
				t.Errorf("as %s: the page lacks %q", role, want)
			}
		}
		login := f.browser().get("/login").Body.String()
		if strings.Count(body, "<script") != strings.Count(login, "<script") || strings.Contains(body, `src="http`) || strings.Contains(body, `href="http`) {
			t.Errorf("as %s: the page loads scripts or files of its own, or from elsewhere", role)
		}
	}
	if !strings.Contains(f.as("user").get("/account").Body.String(), `href="/docs/api"`) {
		t.Error("the account page does not link to the API docs")
	}
}

// TestAPIContractCatches: the check itself fails what it should, and passes real answers.
func TestAPIContractCatches(t *testing.T) {
	f := newFixture(t)
	nodes := f.api("user", http.MethodGet, "/api/v1/nodes", nil).Body.String()
	node := `{"id": 1, "name": "node-1", "model": "RPI4B", "switch": "sw1", "port": 1, "ip": "10.10.0.1", "free": true, "held": false}`
	for _, tc := range []struct {
		name, method, path string
		code               int
		body               string
		fails              bool
	}{
		{"a real answer", "GET", "/api/v1/nodes", 200, nodes, false},
		{"a minimal node", "GET", "/api/v1/nodes", 200, `{"nodes": [` + node + `]}`, false},
		{"a status not described", "GET", "/api/v1/nodes", 418, `{"error": "teapot"}`, true},
		{"a missing field", "GET", "/api/v1/nodes", 200, `{"nodes": [{"id": 1}]}`, true},
		{"a field not described", "GET", "/api/v1/nodes", 200, `{"nodes": [` + strings.Replace(node, "{", `{"email": "a@b.c", `, 1) + `]}`, true},
		{"a wrong type", "GET", "/api/v1/nodes", 200, `{"nodes": [` + strings.Replace(node, `"port": 1`, `"port": "1"`, 1) + `]}`, true},
		{"a bad time", "GET", "/api/v1/nodes", 200, `{"nodes": [` + strings.Replace(node, "{", `{"until": "tomorrow", `, 1) + `]}`, true},
		{"an error without its field", "GET", "/api/v1/nodes", 401, `{"message": "no"}`, true},
		{"an unknown route refused", "GET", "/api/v1/nope", 404, `{"error": "no such API route"}`, false},
		{"an unknown route answered", "GET", "/api/v1/nope", 200, `{}`, true},
		{"an unknown method refused", "PATCH", "/api/v1/nodes", 405, `{"error": "Method Not Allowed"}`, false},
		{"an unknown method answered", "DELETE", "/api/v1/nodes", 200, `{"status": "gone"}`, true},
		{"HEAD like GET", "HEAD", "/api/v1/nodes", 200, ``, false},
		{"HEAD with a status GET lacks", "HEAD", "/api/v1/nodes", 202, ``, true},
		{"a page is not checked", "GET", "/resources", 200, `<html>`, false},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		h := http.Header{"Content-Type": {"application/json"}}
		errs, err := apiContractErrors(req, tc.code, h, []byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if (len(errs) > 0) != tc.fails {
			t.Errorf("%s: want failing %v, got %q", tc.name, tc.fails, errs)
		}
	}
}
