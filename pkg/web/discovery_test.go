package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestDiscoveryPage: the admin asks for a discovery; pitasks (simulated through the store
// methods it calls) claims it and writes its progress; the page's feed shows it.
func TestDiscoveryPage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin := f.as("admin")
	sw := fmt.Sprint(f.sw.ID)
	admin.get("/admin/switches/" + sw)
	for _, bad := range []string{"8", "0", "9", "3-1", "x"} {
		res := admin.post("/admin/switches/"+sw+"/discover", url.Values{"ports": {bad}})
		if res.Code != http.StatusSeeOther || res.Header().Get("Location") != "/admin/switches/"+sw {
			t.Fatalf("ports %q: %d %s", bad, res.Code, res.Header().Get("Location"))
		}
	}
	res := admin.post("/admin/switches/"+sw+"/discover", url.Values{"ports": {"7, 5-6"}})
	loc := res.Header().Get("Location")
	if res.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/admin/discovery/") {
		t.Fatalf("request: %d %s", res.Code, loc)
	}
	if res := admin.post("/admin/switches/"+sw+"/discover", nil); res.Header().Get("Location") != "/admin/switches/"+sw {
		t.Fatal("a second discovery on the same switch was accepted")
	}
	page := admin.get(loc).Body.String()
	if !strings.Contains(page, "Waiting for pitasks") || !strings.Contains(page, "5,6,7") {
		t.Fatalf("page: %s", page)
	}
	run, err := f.st.ClaimDiscovery(ctx, "pitasks-test", time.Now(), time.Minute)
	if err != nil || run == nil {
		t.Fatal(run, err)
	}
	f.st.AppendDiscoveryOutput(ctx, run.ID, "port 5: powered on, waiting for DHCP")
	f.st.AppendDiscoveryOutput(ctx, run.ID, `port 5: <b>node-7</b> registered`)
	var v discoveryView
	json.Unmarshal(admin.get(loc+"/status.json").Body.Bytes(), &v)
	if v.State != "running" || !strings.Contains(v.Output, "node-7") || !v.Active {
		t.Fatalf("feed: %+v", v)
	}
	f.st.FinishDiscovery(ctx, run.ID, "pitasks-test", nil, time.Now())
	page = admin.get(loc).Body.String()
	if !strings.Contains(page, "&lt;b&gt;node-7&lt;/b&gt;") || strings.Contains(page, "data-live") {
		t.Fatal("finished run page: output not escaped or still live")
	}
}
