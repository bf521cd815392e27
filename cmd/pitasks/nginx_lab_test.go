package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/publish/nginxtest"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// webScript is a user's init script that serves a page naming the node on port 80 (busybox's
// httpd, from the host through the lab's card system).
const webScript = "#!/bin/sh\nset -e\nmkdir -p /srv/www\nhostname > /srv/www/index.html\n" +
	"busybox httpd -p 80 -h /srv/www </dev/null >/dev/null 2>&1\n"

// TestNginxPublishesDeployedLabNodes: pitasks' nginx configuration, loaded by a real nginx,
// lets a user outside reach deployed lab nodes through 127.0.0.1:PUBLIC_PORT with their key
// (the node's pinned host key checked) and reach a web environment's page by its host name;
// nginx is reloaded only when the files change; once a node is destroyed its port no longer
// answers and its host name gets a 404, while the other node stays published.
func TestNginxPublishesDeployedLabNodes(t *testing.T) {
	// A busy machine boots the lab's nodes slowly: they are not lost for that.
	h := deploytest.StartWith(t, lab.Options{Nodes: 2}, deploytest.Config{SSHLost: 5 * time.Minute})
	ng := nginxtest.Start(t)
	ctx := context.Background()

	ports := map[int]bool{}
	for len(ports) < 3 {
		ports[testenv.FreePort(t)] = true
	}
	var free []int
	for p := range ports {
		free = append(free, p)
	}
	httpPort := free[2]
	for i := range h.Nodes {
		h.Nodes[i].PublicPort = free[i]
		if err := h.Store.UpdateNode(ctx, &h.Nodes[i]); err != nil {
			t.Fatal(err)
		}
	}
	web := h.Env
	web.ID, web.Name, web.Web = 0, "pilab-web", true
	if err := h.Store.CreateEnvironment(ctx, &web); err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Nginx.StreamConf, cfg.Nginx.HTTPConf, cfg.Nginx.Reload = ng.StreamConf, ng.HTTPConf, ng.Reload()
	cfg.Nginx.Listen, cfg.Nginx.HTTPPort, cfg.Nginx.HTTPDomain = "127.0.0.1", httpPort, "nodes.test"
	n := &nginxSync{cfg: cfg, st: h.Store, log: slog.New(slog.NewTextHandler(h.Log, nil))}
	sync := func() {
		t.Helper()
		if err := n.sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	reloads := func() int {
		b, _ := os.ReadFile(ng.Dir + "/error.log")
		return strings.Count(string(b), "(SIGHUP) received")
	}
	answers := func(port int) bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}

	sync() // nothing deployed: nothing published
	nginxtest.WaitFor(t, time.Minute, "nginx reloaded once for the first files", func() bool { return reloads() == 1 })
	for _, nd := range h.Nodes {
		if answers(nd.PublicPort) {
			t.Fatalf("%s's public port answers before it is deployed", nd.Name)
		}
	}

	ds := h.Deploy(h.Nodes, deploytest.Request{Env: &web, SizeMiB: 100, Script: webScript})
	h.RunUntil(ds, 10*time.Minute, process.Deployed)
	sync()
	for _, nd := range h.Nodes {
		nginxtest.WaitFor(t, time.Minute, nd.Name+" published", func() bool { return answers(nd.PublicPort) })
		c := dialPublished(t, h, nd)
		if got := sshRun(t, c, "hostname"); got != nd.Name {
			t.Errorf("ssh -p %d %s@127.0.0.1 reached %q, want %s", nd.PublicPort, web.SSHUser, got, nd.Name)
		}
		c.Close()
		if code, body := httpGet(t, httpPort, nd.Name+".nodes.test"); code != http.StatusOK || strings.TrimSpace(body) != nd.Name {
			t.Errorf("http://%s.nodes.test:%d/: %d %q, want the node's page", nd.Name, httpPort, code, body)
		}
	}
	if code, _ := httpGet(t, httpPort, "node-9.nodes.test"); code != http.StatusNotFound {
		t.Errorf("a host name of no node: %d, want 404", code)
	}
	// Nothing changed: the files stay, nginx is not reloaded.
	before := reloads()
	sync()
	sync()
	if got := reloads(); got != before || before != 2 {
		t.Errorf("reloads %d then %d, want 2 (the empty files, then the deployed nodes) and no more", before, got)
	}

	// node-1 destroyed: its port and site go, node-2 stays.
	gone, kept := h.Nodes[0], h.Nodes[1]
	if err := h.Store.RequestProcess(ctx, ds[0].ID, process.Destroy); err != nil {
		t.Fatal(err)
	}
	sync() // destroying: no longer published
	h.RunUntil(ds[:1], 5*time.Minute, process.Destroyed)
	sync()
	nginxtest.WaitFor(t, time.Minute, gone.Name+"'s public port closed", func() bool { return !answers(gone.PublicPort) })
	if code, body := httpGet(t, httpPort, gone.Name+".nodes.test"); code != http.StatusNotFound {
		t.Errorf("destroyed %s's site: %d %q, want 404", gone.Name, code, body)
	}
	c := dialPublished(t, h, kept)
	if got := sshRun(t, c, "hostname"); got != kept.Name {
		t.Errorf("%s after %s was destroyed: reached %q", kept.Name, gone.Name, got)
	}
	c.Close()
	if code, body := httpGet(t, httpPort, kept.Name+".nodes.test"); code != http.StatusOK || strings.TrimSpace(body) != kept.Name {
		t.Errorf("%s's site after %s was destroyed: %d %q", kept.Name, gone.Name, code, body)
	}
}

// dialPublished logs into node n through nginx as the user outside would: ssh -p PUBLIC_PORT
// pi@127.0.0.1 with their key, the host key checked against the one pitasks pinned.
func dialPublished(t *testing.T, h *deploytest.Harness, n store.Node) *ssh.Client {
	t.Helper()
	key, found, err := h.Store.HostKey(context.Background(), remote.RoleSystem, n.ID)
	if err != nil || !found {
		t.Fatalf("no pinned host key for %s: %v", n.Name, err)
	}
	pk, err := remote.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.PublicPort)), &ssh.ClientConfig{User: h.Env.SSHUser,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(h.UserKey)}, HostKeyCallback: ssh.FixedHostKey(pk), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("ssh -p %d %s@127.0.0.1 (%s): %v", n.PublicPort, h.Env.SSHUser, n.Name, err)
	}
	return c
}

func sshRun(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	return strings.TrimSpace(string(out))
}

// httpGet asks nginx on 127.0.0.1:port for / of host.
func httpGet(t *testing.T, port int, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET http://%s:%d/: %v", host, port, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
