package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// want is the expected status for each kind of visitor.
type want struct{ anon, user, other, admin int }

func (w want) of(role string) int {
	return map[string]int{"anon": w.anon, "user": w.user, "other": w.other, "admin": w.admin}[role]
}

// routeCase is one row of the access table: a concrete request for a registered route.
type routeCase struct {
	path  string
	form  url.Values        // page POSTs
	files map[string]string // page POSTs with a file upload (multipart)
	body  any               // API requests
	want  want
	// noEffect: a success that leaves the database as it was (logout, PoE switching).
	noEffect bool
}

var roles = []string{"anon", "user", "other", "admin"}

const (
	ok       = http.StatusOK
	created  = http.StatusCreated
	accepted = http.StatusAccepted
	gone     = http.StatusNoContent
	see      = http.StatusSeeOther
	unauth   = http.StatusUnauthorized
	forbid   = http.StatusForbidden
	notFound = http.StatusNotFound
	bad      = http.StatusBadRequest
)

// Typical expectations.
var (
	userPage     = want{see, ok, ok, ok}                 // any logged-in user
	ownPage      = want{see, ok, notFound, notFound}     // alice's object, only alice
	ownView      = want{see, ok, notFound, ok}           // alice's object, alice or an admin may look
	userPost     = want{forbid, see, see, see}           // any logged-in user may do it
	ownPost      = want{forbid, see, notFound, notFound} // alice's object, only alice
	adminPage    = want{see, forbid, forbid, ok}
	adminPost    = want{forbid, forbid, forbid, see}
	apiAll       = want{unauth, ok, ok, ok}
	apiOwn       = want{unauth, ok, notFound, notFound}
	apiAdminWant = func(code int) want { return want{unauth, forbid, forbid, code} }
)

const origSwitchJSON = `{"name": "sw9", "ip": "192.0.2.90", "community": "private", "port_nb": 8, "master_port": 8,
	"oid": "1.3.6.1.2.1.105.1.1.1.3.1", "oid_offset": 0}`

const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGp2k8a5Zs3Zb0QjOQdMuS6c6yUNU4pGf3Du0PFqxFvB alice@laptop"

// routeCases has one row per registered route, keyed "METHOD /pattern". The ids are those of a
// fresh fixture (the same in every fixture).
func (f *fixture) routeCases() map[string]routeCase {
	id := func(n uint) string { return fmt.Sprint(n) }
	r1, r3, d1 := id(f.r1.ID), id(f.r3.ID), id(f.d1.ID)
	sw1, sw2 := id(f.sw.ID), id(f.sw2.ID)
	switchForm := url.Values{"name": {"sw3"}, "ip": {"192.0.2.30"}, "snmp_version": {"2c"}, "community": {"private"},
		"port_count": {"8"}, "master_port": {"8"}, "oid": {".1.3.6.1.2.1.105.1.1.1.3.1"}, "oid_offset": {"0"}}
	switchEdit := url.Values{"name": {"sw1"}, "ip": {"192.0.2.99"}, "snmp_version": {"2c"}, "port_count": {"8"},
		"master_port": {"8"}, "oid": {".1.3.6.1.2.1.105.1.1.1.3.1"}}
	nodeForm := url.Values{"name": {"node-7"}, "switch": {sw1}, "port": {"7"}, "ip": {"10.10.0.7"}, "model": {"RPI4B"}, "serial": {"0000abc7"}}
	nodeEdit := url.Values{"name": {"node-1"}, "switch": {sw1}, "port": {"1"}, "ip": {"10.10.0.101"}, "model": {"RPI4B"}}
	envForm := url.Values{"name": {"ubuntu"}, "type": {"default"}, "image_name": {"ubuntu.img.xz"}, "image_format": {"xz"},
		"ssh_user": {"ubuntu"}, "shell": {"bash"}}
	envEdit := url.Values{"name": {"raspios-lite"}, "type": {"default"}, "image_name": {"raspios.img.gz"}, "ssh_user": {"pi"},
		"shell": {"bash"}, "description": {"changed"}}
	deployForm := url.Values{"name": {"exp2"}, "environment": {id(f.env.ID)}, "system_size": {"0"}}
	return map[string]routeCase{
		"GET /healthz":                         {path: "/healthz", want: want{ok, ok, ok, ok}},
		"GET /static/*":                        {path: "/static/app.css", want: want{ok, ok, ok, ok}},
		"GET /login":                           {path: "/login", want: want{ok, see, see, see}},
		"POST /login":                          {path: "/login", form: url.Values{"email": {"alice@example.com"}, "password": {"wrong"}}, want: want{unauth, unauth, unauth, unauth}},
		"GET /signup":                          {path: "/signup", want: want{ok, see, see, see}},
		"POST /signup":                         {path: "/signup", form: url.Values{"email": {"new@example.org"}, "first_name": {"New"}, "password": {testPassword}, "password_confirm": {testPassword}}, want: want{see, see, see, see}},
		"GET /confirm/:token":                  {path: "/confirm/abc", want: want{ok, ok, ok, ok}},
		"POST /confirm":                        {path: "/confirm", form: url.Values{"token": {"bogus"}}, want: want{bad, bad, bad, bad}},
		"GET /docs/api":                        {path: "/docs/api", want: want{ok, ok, ok, ok}},
		"GET /api/v1/openapi.json":             {path: "/api/v1/openapi.json", want: want{ok, ok, ok, ok}},
		"GET /password-reset":                  {path: "/password-reset", want: want{ok, see, see, see}},
		"POST /password-reset":                 {path: "/password-reset", form: url.Values{"email": {"alice@example.com"}}, want: want{http.StatusConflict, http.StatusConflict, http.StatusConflict, http.StatusConflict}},
		"GET /password-reset/:token":           {path: "/password-reset/abc", want: want{ok, ok, ok, ok}},
		"POST /password-reset/choose":          {path: "/password-reset/choose", form: url.Values{"token": {"bogus"}, "new_password": {"another long password"}, "new_password_confirm": {"another long password"}}, want: want{bad, bad, bad, bad}},
		"POST /logout":                         {path: "/logout", want: userPost, noEffect: true},
		"GET /":                                {path: "/", want: want{see, see, see, see}},
		"GET /resources":                       {path: "/resources", want: userPage},
		"GET /nodes/:id":                       {path: "/nodes/" + id(f.nodes[0].ID), want: userPage},
		"GET /reserve":                         {path: "/reserve", want: userPage},
		"GET /availability":                    {path: "/availability", want: userPage},
		"POST /reserve":                        {path: "/reserve", form: url.Values{"nodes": {id(f.nodes[4].ID)}, "hours": {"2"}}, want: userPost},
		"POST /reservations/:id/extend":        {path: "/reservations/" + r1 + "/extend", form: url.Values{"hours": {"1"}}, want: ownPost},
		"POST /reservations/:id/end":           {path: "/reservations/" + r1 + "/end", want: ownPost},
		"GET /reservations/:id/deploy":         {path: "/reservations/" + r3 + "/deploy", want: ownPage},
		"POST /reservations/:id/deploy":        {path: "/reservations/" + r3 + "/deploy", form: deployForm, want: ownPost},
		"GET /deployments":                     {path: "/deployments", want: userPage},
		"GET /deployments/status.json":         {path: "/deployments/status.json", want: userPage},
		"GET /deployments/events":              {path: "/deployments/events", want: userPage},
		"GET /deployments/:id":                 {path: "/deployments/" + d1, want: ownView},
		"POST /deployments/:id/reboot":         {path: "/deployments/" + d1 + "/reboot", want: ownPost},
		"POST /deployments/:id/redeploy":       {path: "/deployments/" + d1 + "/redeploy", want: ownPost},
		"POST /deployments/:id/destroy":        {path: "/deployments/" + d1 + "/destroy", want: ownPost},
		"POST /deployments/:id/save":           {path: "/deployments/" + d1 + "/save", form: url.Values{"name": {"saved"}}, want: ownPost},
		"GET /account":                         {path: "/account", want: userPage},
		"POST /account/password":               {path: "/account/password", form: url.Values{"old_password": {testPassword}, "new_password": {"another long password"}, "new_password_confirm": {"another long password"}}, want: userPost},
		"POST /account/sshkey":                 {path: "/account/sshkey", form: url.Values{"ssh_key": {sshKey}}, want: userPost},
		"POST /account/tokens":                 {path: "/account/tokens", form: url.Values{"name": {"ci"}, "days": {"30"}}, want: want{forbid, ok, ok, ok}},
		"POST /account/tokens/:id/revoke":      {path: "/account/tokens/" + id(f.aliceToken2.ID) + "/revoke", want: ownPost},
		"GET /admin/users":                     {path: "/admin/users", want: adminPage},
		"POST /admin/users/:id/approve":        {path: "/admin/users/" + id(f.carol.ID) + "/approve", want: adminPost},
		"POST /admin/users/:id/revoke":         {path: "/admin/users/" + id(f.bob.ID) + "/revoke", want: adminPost},
		"POST /admin/users/:id/admin":          {path: "/admin/users/" + id(f.bob.ID) + "/admin", want: adminPost},
		"POST /admin/users/:id/unadmin":        {path: "/admin/users/" + id(f.dave.ID) + "/unadmin", want: adminPost},
		"POST /admin/users/:id/delete":         {path: "/admin/users/" + id(f.bob.ID) + "/delete", want: adminPost},
		"POST /admin/users/:id/password":       {path: "/admin/users/" + id(f.bob.ID) + "/password", want: want{forbid, forbid, forbid, ok}},
		"GET /admin/settings":                  {path: "/admin/settings", want: adminPage},
		"POST /admin/settings":                 {path: "/admin/settings", form: url.Values{"signup_domains": {"example.org"}, "max_hours": {"24"}, "smtp_port": {"587"}}, want: adminPost},
		"GET /admin/switches":                  {path: "/admin/switches", want: adminPage},
		"GET /admin/switches/new":              {path: "/admin/switches/new", want: adminPage},
		"POST /admin/switches":                 {path: "/admin/switches", form: switchForm, want: adminPost},
		"GET /admin/switches/:id":              {path: "/admin/switches/" + sw1, want: adminPage},
		"GET /admin/switches/:id/edit":         {path: "/admin/switches/" + sw1 + "/edit", want: adminPage},
		"POST /admin/switches/:id":             {path: "/admin/switches/" + sw1, form: switchEdit, want: adminPost},
		"POST /admin/switches/:id/delete":      {path: "/admin/switches/" + sw2 + "/delete", want: adminPost},
		"POST /admin/switches/:id/ports/:port": {path: "/admin/switches/" + sw1 + "/ports/5", form: url.Values{"action": {"cycle"}}, want: adminPost},
		"POST /admin/switches/:id/discover":    {path: "/admin/switches/" + sw1 + "/discover", form: url.Values{"ports": {"5-7"}}, want: adminPost},
		"GET /admin/discovery/:id":             {path: "/admin/discovery/" + id(f.discovery.ID), want: adminPage},
		"GET /admin/discovery/:id/status.json": {path: "/admin/discovery/" + id(f.discovery.ID) + "/status.json", want: adminPage},
		"GET /admin/nodes":                     {path: "/admin/nodes", want: adminPage},
		"GET /admin/nodes/new":                 {path: "/admin/nodes/new", want: adminPage},
		"POST /admin/nodes":                    {path: "/admin/nodes", form: nodeForm, want: adminPost},
		"GET /admin/nodes/:id/edit":            {path: "/admin/nodes/" + id(f.nodes[0].ID) + "/edit", want: adminPage},
		"POST /admin/nodes/:id":                {path: "/admin/nodes/" + id(f.nodes[0].ID), form: nodeEdit, want: adminPost},
		"POST /admin/nodes/:id/delete":         {path: "/admin/nodes/" + id(f.nodes[5].ID) + "/delete", want: adminPost},
		"GET /admin/environments":              {path: "/admin/environments", want: adminPage},
		"GET /admin/environments/new":          {path: "/admin/environments/new", want: adminPage},
		"GET /admin/environments/register":     {path: "/admin/environments/register", want: adminPage},
		"POST /admin/environments/register":    {path: "/admin/environments/register", form: url.Values{"name": {"new-env"}, "type": {"default"}, "image_name": {"missing.img.zst"}, "ssh_user": {"pi"}, "shell": {"bash"}}, want: want{forbid, forbid, forbid, bad}},
		"POST /admin/environments":             {path: "/admin/environments", form: envForm, want: adminPost},
		"GET /admin/environments/:id/edit":     {path: "/admin/environments/" + id(f.env.ID) + "/edit", want: adminPage},
		"POST /admin/environments/:id":         {path: "/admin/environments/" + id(f.env.ID), form: envEdit, want: adminPost},
		"POST /admin/environments/:id/delete":  {path: "/admin/environments/" + id(f.env2.ID) + "/delete", want: adminPost},
		"GET /admin/import":                    {path: "/admin/import", want: adminPage},
		"POST /admin/import":                   {path: "/admin/import", files: map[string]string{"sw9.json": origSwitchJSON}, want: want{forbid, forbid, forbid, ok}},
		"GET /admin/deployments":               {path: "/admin/deployments", want: adminPage},
		"POST /admin/deployments/:id/state":    {path: "/admin/deployments/" + d1 + "/state", form: url.Values{"process": {"deploy"}, "state": {"boot_conf"}, "reason": {"stuck"}}, want: adminPost},
		"GET /admin/stats":                     {path: "/admin/stats", want: adminPage},
		"GET /admin/stats/nodes/:id":           {path: "/admin/stats/nodes/" + id(f.nodes[0].ID), want: adminPage},
		"GET /admin/stats/environments/:id":    {path: "/admin/stats/environments/" + id(f.env.ID), want: adminPage},
		"GET /metrics":                         {path: "/metrics", want: adminPage},

		"GET /api/v1/nodes":                                 {path: "/api/v1/nodes", want: apiAll},
		"POST /api/v1/tokens":                               {path: "/api/v1/tokens", body: map[string]any{"email": f.alice.Email, "password": testPassword, "name": "cli"}, want: want{created, created, created, created}},
		"DELETE /api/v1/tokens/current":                     {path: "/api/v1/tokens/current", want: apiAll},
		"GET /api/v1/environments":                          {path: "/api/v1/environments", want: apiAll},
		"GET /api/v1/availability":                          {path: "/api/v1/availability", want: apiAll},
		"GET /api/v1/reservations":                          {path: "/api/v1/reservations", want: apiAll},
		"POST /api/v1/reservations":                         {path: "/api/v1/reservations", body: map[string]any{"node_ids": []uint{f.nodes[4].ID}, "hours": 2}, want: want{unauth, created, created, created}},
		"POST /api/v1/reservations/:id/extend":              {path: "/api/v1/reservations/" + r1 + "/extend", body: map[string]any{"hours": 1}, want: apiOwn},
		"POST /api/v1/reservations/:id/end":                 {path: "/api/v1/reservations/" + r1 + "/end", want: apiOwn},
		"GET /api/v1/deployments":                           {path: "/api/v1/deployments", want: apiAll},
		"POST /api/v1/deployments":                          {path: "/api/v1/deployments", body: map[string]any{"reservation_id": f.r3.ID, "name": "exp2", "environment_id": f.env.ID}, want: want{unauth, created, notFound, notFound}},
		"GET /api/v1/deployments/:id":                       {path: "/api/v1/deployments/" + d1, want: want{unauth, ok, notFound, ok}},
		"POST /api/v1/deployments/:id/destroy":              {path: "/api/v1/deployments/" + d1 + "/destroy", want: want{unauth, accepted, notFound, notFound}},
		"POST /api/v1/deployments/:id/reboot":               {path: "/api/v1/deployments/" + d1 + "/reboot", want: want{unauth, accepted, notFound, notFound}},
		"POST /api/v1/deployments/:id/redeploy":             {path: "/api/v1/deployments/" + d1 + "/redeploy", want: want{unauth, accepted, notFound, notFound}},
		"POST /reservations/:id/nodes/:node/release":        {path: "/reservations/" + r1 + "/nodes/" + id(f.nodes[0].ID) + "/release", want: ownPost},
		"POST /account/notifications":                       {path: "/account/notifications", form: url.Values{"notify": {"true"}}, want: userPost},
		"POST /admin/reservations/:id/end":                  {path: "/admin/reservations/" + r1 + "/end", form: url.Values{"reason": {"maintenance"}}, want: adminPost},
		"POST /api/v1/reservations/:id/nodes/:node/release": {path: "/api/v1/reservations/" + r1 + "/nodes/" + id(f.nodes[0].ID) + "/release", want: apiOwn},
		"POST /api/v1/admin/reservations/:id/end":           {path: "/api/v1/admin/reservations/" + r1 + "/end", body: map[string]any{"reason": "maintenance"}, want: apiAdminWant(ok)},
		"GET /api/v1/events":                                {path: "/api/v1/events", want: apiAll},

		"GET /api/v1/admin/users":                             {path: "/api/v1/admin/users", want: apiAdminWant(ok)},
		"POST /api/v1/admin/users/:id/approve":                {path: "/api/v1/admin/users/" + id(f.carol.ID) + "/approve", want: apiAdminWant(ok)},
		"POST /api/v1/admin/users/:id/revoke":                 {path: "/api/v1/admin/users/" + id(f.bob.ID) + "/revoke", want: apiAdminWant(ok)},
		"POST /api/v1/admin/users/:id/admin":                  {path: "/api/v1/admin/users/" + id(f.bob.ID) + "/admin", want: apiAdminWant(ok)},
		"POST /api/v1/admin/users/:id/unadmin":                {path: "/api/v1/admin/users/" + id(f.dave.ID) + "/unadmin", want: apiAdminWant(ok)},
		"DELETE /api/v1/admin/users/:id":                      {path: "/api/v1/admin/users/" + id(f.bob.ID), want: apiAdminWant(ok)},
		"POST /api/v1/admin/users/:id/password":               {path: "/api/v1/admin/users/" + id(f.bob.ID) + "/password", want: apiAdminWant(ok)},
		"GET /api/v1/admin/quotas":                            {path: "/api/v1/admin/quotas", want: apiAdminWant(ok)},
		"PUT /api/v1/admin/quotas":                            {path: "/api/v1/admin/quotas", body: map[string]any{"nodes": 3, "node_hours": 20}, want: apiAdminWant(ok)},
		"GET /api/v1/admin/switches":                          {path: "/api/v1/admin/switches", want: apiAdminWant(ok)},
		"POST /api/v1/admin/switches":                         {path: "/api/v1/admin/switches", body: formJSON(switchForm, "port_count", "master_port", "oid_offset"), want: apiAdminWant(created)},
		"GET /api/v1/admin/switches/:id":                      {path: "/api/v1/admin/switches/" + sw1, want: apiAdminWant(ok)},
		"PUT /api/v1/admin/switches/:id":                      {path: "/api/v1/admin/switches/" + sw1, body: formJSON(switchEdit, "port_count", "master_port"), want: apiAdminWant(ok)},
		"DELETE /api/v1/admin/switches/:id":                   {path: "/api/v1/admin/switches/" + sw2, want: apiAdminWant(gone)},
		"POST /api/v1/admin/switches/:id/ports/:port/:action": {path: "/api/v1/admin/switches/" + sw1 + "/ports/5/off", want: apiAdminWant(accepted)},
		"POST /api/v1/admin/switches/:id/discover":            {path: "/api/v1/admin/switches/" + sw1 + "/discover", body: map[string]any{"ports": []int{5, 6}}, want: apiAdminWant(accepted)},
		"GET /api/v1/admin/discovery/:id":                     {path: "/api/v1/admin/discovery/" + id(f.discovery.ID), want: apiAdminWant(ok)},
		"GET /api/v1/admin/nodes":                             {path: "/api/v1/admin/nodes", want: apiAdminWant(ok)},
		"POST /api/v1/admin/nodes":                            {path: "/api/v1/admin/nodes", body: map[string]any{"name": "node-7", "switch_id": f.sw.ID, "port": 7, "model": "RPI4B"}, want: apiAdminWant(created)},
		"PUT /api/v1/admin/nodes/:id":                         {path: "/api/v1/admin/nodes/" + id(f.nodes[0].ID), body: map[string]any{"name": "node-1", "switch_id": f.sw.ID, "port": 1, "ip": "10.10.0.101"}, want: apiAdminWant(ok)},
		"DELETE /api/v1/admin/nodes/:id":                      {path: "/api/v1/admin/nodes/" + id(f.nodes[5].ID), want: apiAdminWant(gone)},
		"GET /api/v1/admin/environments":                      {path: "/api/v1/admin/environments", want: apiAdminWant(ok)},
		"POST /api/v1/admin/environments":                     {path: "/api/v1/admin/environments", body: formJSON(envForm), want: apiAdminWant(created)},
		"PUT /api/v1/admin/environments/:id":                  {path: "/api/v1/admin/environments/" + id(f.env.ID), body: formJSON(envEdit), want: apiAdminWant(ok)},
		"DELETE /api/v1/admin/environments/:id":               {path: "/api/v1/admin/environments/" + id(f.env2.ID), want: apiAdminWant(gone)},
		"GET /api/v1/admin/deployments":                       {path: "/api/v1/admin/deployments", want: apiAdminWant(ok)},
		"POST /api/v1/admin/deployments/:id/state":            {path: "/api/v1/admin/deployments/" + d1 + "/state", body: map[string]any{"process": "deploy", "state": "boot_conf", "reason": "stuck"}, want: apiAdminWant(ok)},

		// Port requests: written here, carried out by pitasks.
		"POST /admin/switches/:id/status":          {path: "/admin/switches/" + sw1 + "/status", want: adminPost},
		"GET /admin/port-requests/:id":             {path: "/admin/port-requests/" + id(f.portRead.ID), want: adminPage},
		"GET /admin/port-requests/:id/status.json": {path: "/admin/port-requests/" + id(f.portRead.ID) + "/status.json", want: adminPage},
		"POST /api/v1/admin/switches/:id/status":   {path: "/api/v1/admin/switches/" + sw1 + "/status", want: apiAdminWant(accepted)},
		"GET /api/v1/admin/port-requests/:id":      {path: "/api/v1/admin/port-requests/" + id(f.portRead.ID), want: apiAdminWant(ok)},
	}
}

// formJSON turns a form into a JSON object; the named fields are numbers.
func formJSON(form url.Values, numbers ...string) map[string]any {
	out := map[string]any{}
	for k := range form {
		out[k] = form.Get(k)
	}
	for _, k := range numbers {
		var n int
		fmt.Sscan(form.Get(k), &n)
		out[k] = n
	}
	return out
}

// TestEveryRouteHasARow: a route added without a row in the access table fails here, and so
// does a row whose route went away.
func TestEveryRouteHasARow(t *testing.T) {
	f := newFixture(t)
	cases := f.routeCases()
	seen := map[string]bool{}
	for _, r := range f.s.Routes() {
		key := r.Method + " " + r.Path
		seen[key] = true
		if _, ok := cases[key]; !ok {
			t.Errorf("route %s has no row in routeCases: add one with the expected status for every kind of visitor", key)
		}
		if _, ok := f.s.access[key]; !ok {
			t.Errorf("route %s has no access level", key)
		}
		// Every state change of the pages is a POST; the API may use PUT and DELETE (no cookies there).
		if !strings.HasPrefix(r.Path, "/api/") && r.Method != http.MethodGet && r.Method != http.MethodPost {
			t.Errorf("route %s: pages use GET to read and POST to change", key)
		}
	}
	for key := range cases {
		if !seen[key] {
			t.Errorf("row %s matches no registered route", key)
		}
	}
}

// TestRouteAccess runs every route as an anonymous visitor, the owner of what it touches, another
// user and an admin, each on a fresh database: the status must be the expected one, a refused
// request must change nothing (database, PoE, e-mail), an accepted one must do its work, and a
// GET never changes anything.
func TestRouteAccess(t *testing.T) {
	base := newFixture(t)
	cases := base.routeCases()
	for _, r := range base.s.Routes() {
		key := r.Method + " " + r.Path
		tc, okRow := cases[key]
		if !okRow {
			continue // reported by TestEveryRouteHasARow
		}
		for _, role := range roles {
			t.Run(key+"/"+role, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t)
				api := strings.HasPrefix(r.Path, "/api/")
				var b *browser
				if !api {
					b = f.as(role)
				}
				before := f.fingerprint()
				mails := len(f.mail.Sent())
				var code int
				var body string
				switch {
				case api:
					res := f.api(role, r.Method, tc.path, tc.body)
					code, body = res.Code, res.Body.String()
					ct := res.Header().Get("Content-Type")
					stream := r.Path == "/api/v1/events" && ct == "text/event-stream" // documented as such in openapi.json
					if !strings.HasPrefix(ct, "application/json") && code != http.StatusNoContent && !stream {
						t.Errorf("API answer is not JSON: %q", res.Header().Get("Content-Type"))
					}
					if code >= 400 && !strings.Contains(body, `"error"`) {
						t.Errorf("API error without an error field: %s", body)
					}
				case r.Method == http.MethodGet:
					res := b.get(tc.path)
					code, body = res.Code, res.Body.String()
				default:
					form := url.Values{}
					for k, v := range tc.form {
						form[k] = v
					}
					res := b.post(tc.path, form)
					if tc.files != nil {
						res = b.upload(tc.path, form, tc.files)
					}
					code, body = res.Code, res.Body.String()
				}
				if w := tc.want.of(role); code != w {
					t.Fatalf("status %d, want %d; body: %.300s", code, w, body)
				}
				after := f.fingerprint()
				refused := code >= 400
				switch {
				case r.Method == http.MethodGet && before != after:
					t.Errorf("a GET changed the database")
				case refused && before != after:
					t.Errorf("a refused request changed the database")
				case refused && len(f.mail.Sent()) != mails:
					t.Errorf("a refused request sent mail")
				case !refused && r.Method != http.MethodGet && !tc.noEffect && before == after && code != http.StatusUnauthorized:
					t.Errorf("an accepted %s changed nothing", key)
				}
				for _, leak := range []string{"goroutine ", "runtime/debug", ".go:", testCommunity, testSMTPPass, testSessionKey} {
					if strings.Contains(body, leak) {
						t.Errorf("the answer shows %q", leak)
					}
				}
			})
		}
	}
}
