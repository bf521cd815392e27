package web

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/process"
)

// TestActionsFollowTheStates: for the deployment of every situation (every state of every
// process, lost, failed, held, reservations over…), its owner's live status, API view and
// page offer exactly the actions process.Allowed allows, and the API and the page's handlers
// refuse the others with its reason, changing nothing. The page and the API also say what the
// state means (its description in pkg/process).
func TestActionsFollowTheStates(t *testing.T) {
	sx := newSituations(t)
	alice := sx.as("user")
	ctx := context.Background()
	seen := map[process.Action]map[bool]int{}
	for _, a := range process.Actions {
		seen[a] = map[bool]int{}
	}
	for _, sit := range sx.list {
		if sit.dep == nil || sit.owner != "user" {
			continue
		}
		d, err := sx.st.Deployment(ctx, sit.dep.ID)
		if err != nil {
			t.Fatal(err)
		}
		base := fmt.Sprintf("/deployments/%d", d.ID)
		var v apijson.Deployment
		if err := json.Unmarshal(sx.api("user", http.MethodGet, "/api/v1"+base, nil).Body.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		shown := map[process.Action]bool{process.ActReboot: v.CanReboot, process.ActRedeploy: v.CanRedeploy,
			process.ActDestroy: v.CanDestroy, process.ActSave: v.CanSave}
		page := alice.get(base).Body.String()
		// The state's description, from pkg/process, is what the page and the API say it means.
		if p, err := process.Get(d.Process); err == nil {
			st, _ := p.State(d.State)
			if v.Description != st.Description || (st.Description != "" && !strings.Contains(page, html.EscapeString(st.Description))) {
				t.Errorf("%s: description %q in the API, want %q on the page too", sit.name, v.Description, st.Description)
			}
		}
		for _, a := range process.Actions {
			r := process.Allowed(d.Situation(sx.now), a)
			seen[a][r == nil]++
			where := fmt.Sprintf("%s (%s/%s): %s", sit.name, d.Process, d.State, a)
			if shown[a] != (r == nil) {
				t.Errorf("%s: the API view says %v, process.Allowed %v", where, shown[a], r)
			}
			path := base + "/" + string(a)
			if got := strings.Contains(page, `action="`+path+`"`); got != (r == nil) {
				t.Errorf("%s: the page shows its form %v, process.Allowed says %v", where, got, r)
			}
			if r == nil {
				continue
			}
			if a == process.ActSave {
				res := alice.post(path, map[string][]string{"name": {"refused-" + d.Node.Name}})
				if res.Code != http.StatusSeeOther || !strings.Contains(alice.get(base).Body.String(), html.EscapeString(r.Reason)) {
					t.Errorf("%s: POST %s answered %d without saying %q", where, path, res.Code, r.Reason)
				}
			} else if res := sx.api("user", http.MethodPost, "/api/v1"+path, nil); res.Code != http.StatusConflict ||
				!strings.Contains(res.Body.String(), r.Reason) {
				t.Errorf("%s: POST /api/v1%s = %d %s, want 409 saying %q", where, path, res.Code, res.Body.String(), r.Reason)
			}
			after, err := sx.st.Deployment(ctx, d.ID)
			if err != nil || after.Generation != d.Generation || after.Process != d.Process || after.State != d.State {
				t.Errorf("%s: a refused request changed the deployment: %s/%s, generation %d → %d", where,
					after.Process, after.State, d.Generation, after.Generation)
			}
		}
	}
	for _, a := range process.Actions {
		if seen[a][true] == 0 || seen[a][false] == 0 {
			t.Errorf("%s: allowed in %d situations, refused in %d: the situations do not test it both ways", a, seen[a][true], seen[a][false])
		}
	}
}
