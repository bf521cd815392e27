package web

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestOnMariaDB runs the pages and the API on MariaDB: every GET route for every visitor, then
// concurrent reservations of the same node through the API, of which exactly one wins.
func TestOnMariaDB(t *testing.T) {
	f := newFixtureOn(t, storetest.Open(t, "mysql"))
	browsers := map[string]*browser{}
	for _, role := range roles {
		browsers[role] = f.as(role)
	}
	for key, tc := range f.routeCases() {
		if !strings.HasPrefix(key, "GET ") {
			continue
		}
		for _, role := range roles {
			var code int
			if strings.HasPrefix(tc.path, "/api/") {
				code = f.api(role, http.MethodGet, tc.path, nil).Code
			} else {
				code = browsers[role].get(tc.path).Code
			}
			if want := tc.want.of(role); code != want {
				t.Errorf("%s as %s: %d, want %d", key, role, code, want)
			}
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			role := []string{"user", "other", "admin"}[i%3]
			res := f.api(role, http.MethodPost, "/api/v1/reservations", map[string]any{"node_ids": []uint{f.nodes[4].ID, f.nodes[5].ID}, "hours": 1})
			mu.Lock()
			codes[res.Code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[http.StatusCreated] != 1 || codes[http.StatusConflict] != 19 {
		t.Fatalf("concurrent reservations: %v", codes)
	}
}
