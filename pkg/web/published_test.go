package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestDeploymentPageShowsThePublicCommand: once nginx publishes nodes ([nginx]), the page of a
// deployed node with a public port gives the exact command from outside, and for a web
// environment its public address; a node not deployed, or without publishing, shows none.
func TestDeploymentPageShowsThePublicCommand(t *testing.T) {
	sx := newSituations(t)
	ctx := context.Background()
	bob := sx.as("other")
	deployed, working := sx.named(t, "someone else's deployed node"), sx.named(t, "a state of the original's deploy")
	for i, sit := range []situation{deployed, working} {
		n := sit.node
		n.PublicPort = 22042 + i
		if err := sx.st.UpdateNode(ctx, &n); err != nil {
			t.Fatal(err)
		}
	}
	env := sx.env
	env.Web = true
	if err := sx.st.UpdateEnvironment(ctx, &env); err != nil {
		t.Fatal(err)
	}
	page := func(sit situation) string {
		t.Helper()
		res := bob.get(fmt.Sprintf("/deployments/%d", sit.dep.ID))
		if res.Code != http.StatusOK {
			t.Fatalf("GET deployment %s: %d", sit.name, res.Code)
		}
		return res.Body.String()
	}
	web := "http://" + deployed.node.Name + ".nodes.example.org/"
	if body := page(deployed); strings.Contains(body, "ssh -p") || strings.Contains(body, web) {
		t.Error("the public command shows while nginx publishes nothing")
	}
	sx.cfg.Nginx.StreamConf, sx.cfg.Nginx.PublicAddress = "/etc/nginx/piseduce/stream.conf", "pimaster.example.org"
	sx.cfg.Nginx.HTTPConf, sx.cfg.Nginx.HTTPDomain = "/etc/nginx/piseduce/http.conf", "nodes.example.org"
	body := page(deployed)
	for _, want := range []string{"<pre class=\"js-public-ssh\">ssh -p 22042 pi@pimaster.example.org</pre>", `href="` + web + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the deployed node's page lacks %q", want)
		}
	}
	if body := page(working); strings.Contains(body, "ssh -p") || strings.Contains(body, ".nodes.example.org") {
		t.Error("a node not deployed (so not published) shows a public command")
	}
}
