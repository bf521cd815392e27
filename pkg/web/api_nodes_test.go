package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/store"
)

// nodesPage is GET path as role (with If-None-Match: tag when not ""): the answer, its nodes
// and next_cursor.
func (f *fixture) nodesPage(role, path, tag string) (*httptest.ResponseRecorder, []apijson.Node, string) {
	f.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens[role])
	if tag != "" {
		req.Header.Set("If-None-Match", tag)
	}
	rec := f.serve(req)
	if rec.Code != http.StatusOK {
		return rec, nil, ""
	}
	var body struct {
		Nodes []apijson.Node
		Next  string `json:"next_cursor"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		f.t.Fatalf("%s: %v", path, err)
	}
	return rec, body.Nodes, body.Next
}

func nodeNames(ns []apijson.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

// waitNodes asks for the whole list until ok holds for it: what pitasks (or another
// pifrontend) writes shows within a tick.
func (f *fixture) waitNodes(what string, ok func([]apijson.Node) bool) {
	f.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, ns, _ := f.nodesPage("admin", "/api/v1/nodes", ""); ok(ns) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("a minute after the write, the nodes still do not show %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAPINodesPages: limit and cursor walk the nodes in pages that together are the unpaged
// list, in its order (switch, then port); a node added or removed between two pages neither
// shifts nor repeats the others; a bad limit or cursor is a 400.
func TestAPINodesPages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, all, next := f.nodesPage("admin", "/api/v1/nodes", "")
	if next != "" || len(all) != len(f.nodes) {
		t.Fatalf("unpaged: %v, next_cursor %q", nodeNames(all), next)
	}
	for i := 1; i < len(all); i++ {
		if a, b := all[i-1], all[i]; a.Switch == b.Switch && a.Port >= b.Port {
			t.Errorf("%s (port %d) before %s (port %d)", a.Name, a.Port, b.Name, b.Port)
		}
	}
	walk := func(limit int, between func(page int)) []string {
		t.Helper()
		var paged []string
		path := fmt.Sprintf("/api/v1/nodes?limit=%d", limit)
		for page := 0; ; page++ {
			if page > len(all)+2 {
				t.Fatal("the pages do not end")
			}
			rec, ns, next := f.nodesPage("user", path, "")
			if rec.Code != http.StatusOK || len(ns) > limit {
				t.Fatalf("%s: %d, %d nodes", path, rec.Code, len(ns))
			}
			paged = append(paged, nodeNames(ns)...)
			if next == "" {
				return paged
			}
			between(page)
			path = fmt.Sprintf("/api/v1/nodes?limit=%d&cursor=%s", limit, next)
		}
	}
	if got := walk(4, func(int) {}); !slices.Equal(got, nodeNames(all)) {
		t.Errorf("pages of 4 give %v, the whole list %v", got, nodeNames(all))
	}

	// After the first page (node-1, node-2): node-5 is removed, node-7 is added after the
	// cursor and node-0 before it, on a switch sorted first.
	sw0 := store.Switch{Name: "sw0", IP: "192.0.2.9", SNMPVersion: "2c", Community: testCommunity, PortCount: 4,
		OID: ".1.3.6.1.2.1.105.1.1.1.3.1"}
	got := walk(2, func(page int) {
		if page != 0 {
			return
		}
		if err := f.st.DeleteNode(ctx, f.nodes[4].ID); err != nil {
			t.Fatal(err)
		}
		if err := f.st.CreateSwitch(ctx, &sw0); err != nil {
			t.Fatal(err)
		}
		for _, n := range []store.Node{{Name: "node-7", SwitchID: f.sw.ID, Port: 7, IP: "10.10.0.7", Serial: "0000abc7", Model: "RPI4B"},
			{Name: "node-0", SwitchID: sw0.ID, Port: 1, IP: "10.10.0.99", Serial: "0000abc0", Model: "RPI4B"}} {
			if err := f.st.CreateNode(ctx, &n); err != nil {
				t.Fatal(err)
			}
		}
		f.waitNodes("node-7", func(ns []apijson.Node) bool { return len(ns) == len(f.nodes)+1 })
	})
	if want := []string{"node-1", "node-2", "node-3", "node-4", "node-6", "node-7"}; !slices.Equal(got, want) {
		t.Errorf("with nodes added and removed between pages: %v, want %v", got, want)
	}
	if _, ns, _ := f.nodesPage("user", "/api/v1/nodes", ""); ns[0].Name != "node-0" {
		t.Errorf("sw0's node is not first: %v", nodeNames(ns))
	}

	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "cursor=nope", "cursor=MS94Lw"} {
		if rec := f.api("user", http.MethodGet, "/api/v1/nodes?"+q, nil); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, rec.Code)
		}
	}
}

// TestAPINodesETag: the list answers 304 to its own ETag only (another user sending it gets
// their own answer); the tag no longer holds once a node changes in the database, or once
// a reservation ends with nothing written. Though every user's answer comes from one cache,
// a reservation's id goes only to its holder and to admins.
func TestAPINodesETag(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	reservations := func(ns []apijson.Node) map[string]uint {
		out := map[string]uint{}
		for _, n := range ns {
			if n.ReservationID != 0 {
				out[n.Name] = n.ReservationID
			}
		}
		return out
	}
	rec, ns, _ := f.nodesPage("user", "/api/v1/nodes", "")
	tag := rec.Header().Get("ETag")
	if tag == "" {
		t.Fatal("no ETag")
	}
	if got, want := reservations(ns), map[string]uint{"node-1": f.r1.ID, "node-2": f.r1.ID, "node-4": f.r3.ID}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alice sees the reservations %v, want hers only %v", got, want)
	}
	if rec, _, _ := f.nodesPage("user", "/api/v1/nodes", tag); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("alice with her own ETag: %d, %d bytes; want 304, none", rec.Code, rec.Body.Len())
	}
	rec, ns, _ = f.nodesPage("other", "/api/v1/nodes", tag)
	if rec.Code != http.StatusOK {
		t.Fatalf("bob with alice's ETag: %d, want 200 and his own", rec.Code)
	}
	if got, want := reservations(ns), map[string]uint{"node-3": f.r2.ID}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bob sees the reservations %v, want his only %v", got, want)
	}
	if _, ns, _ := f.nodesPage("admin", "/api/v1/nodes", ""); len(reservations(ns)) != 4 {
		t.Errorf("the admin sees the reservations %v, want all four nodes'", reservations(ns))
	}

	// pitasks (or an admin on another pifrontend) changes a node.
	n := f.nodes[5]
	n.IP = "10.10.0.66"
	if err := f.st.UpdateNode(ctx, &n); err != nil {
		t.Fatal(err)
	}
	f.waitNodes("the new IP", func(ns []apijson.Node) bool {
		return slices.ContainsFunc(ns, func(n apijson.Node) bool { return n.IP == "10.10.0.66" })
	})
	rec, _, _ = f.nodesPage("user", "/api/v1/nodes", tag)
	tag2 := rec.Header().Get("ETag")
	if rec.Code != http.StatusOK || tag2 == tag {
		t.Fatalf("after a node changed, alice's old ETag: %d, new ETag %q", rec.Code, tag2)
	}

	// The reservations end: nothing is written, yet the nodes are free at once.
	f.now = f.now.Add(3 * time.Hour)
	rec, ns, _ = f.nodesPage("user", "/api/v1/nodes", tag2)
	if rec.Code != http.StatusOK {
		t.Fatalf("after the reservations ended, alice's ETag: %d", rec.Code)
	}
	for _, n := range ns {
		if n.Held || n.ReservationID != 0 {
			t.Errorf("%s still held (reservation %d) after its reservation ended", n.Name, n.ReservationID)
		}
	}
}
