package publish_test

import (
	"os"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/publish"
	"github.com/piseduce/piseduce/pkg/publish/nginxtest"
	"github.com/piseduce/piseduce/pkg/store"
)

var nodes = []store.PublishedNode{
	{Name: "node-1", IP: "10.10.0.11", PublicPort: 22001},
	{Name: "Node-2", IP: " 10.10.0.12", PublicPort: 22002, Web: true},
	{Name: "node-3", IP: "10.10.0.13", PublicPort: 22003, Web: true},
}

func TestStreamAndHTTP(t *testing.T) {
	o := publish.Options{Listen: "192.0.2.1", HTTPPort: 8080, HTTPDomain: "nodes.example.org"}
	s, err := publish.Stream(nodes, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"listen 192.0.2.1:22001;\n\tproxy_pass 10.10.0.11:22;", "listen 192.0.2.1:22002;\n\tproxy_pass 10.10.0.12:22;",
		"listen 192.0.2.1:22003;\n\tproxy_pass 10.10.0.13:22;"} {
		if !strings.Contains(string(s), want) {
			t.Errorf("stream lacks %q:\n%s", want, s)
		}
	}
	h, err := publish.HTTP(nodes, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server_name _;\n\treturn 404;", "server_name node-2.nodes.example.org;", "proxy_pass http://10.10.0.12:80;",
		"server_name node-3.nodes.example.org;", "proxy_pass http://10.10.0.13:80;"} {
		if !strings.Contains(string(h), want) {
			t.Errorf("http lacks %q:\n%s", want, h)
		}
	}
	// The catch-all comes first: it is the port's default server.
	if strings.Index(string(h), "server_name _;") > strings.Index(string(h), "server_name node-2") {
		t.Errorf("the catch-all is not the first server:\n%s", h)
	}
	if strings.Contains(string(h), "10.10.0.11") {
		t.Errorf("node-1 (not web) is published over HTTP:\n%s", h)
	}
	// Nothing published: only the header, so nginx listens on none of these ports.
	for _, f := range []func([]store.PublishedNode, publish.Options) ([]byte, error){publish.Stream, publish.HTTP} {
		b, err := f(nil, o)
		if err != nil || strings.Contains(string(b), "server") {
			t.Errorf("no node: %q, %v", b, err)
		}
	}
	if b, _ := publish.HTTP(nodes, publish.Options{HTTPPort: 80}); strings.Contains(string(b), "server") {
		t.Errorf("HTTP published without a domain:\n%s", b)
	}
	if b, _ := publish.Stream(nodes[:1], publish.Options{HTTPPort: 80}); !strings.Contains(string(b), "listen 22001;") {
		t.Errorf("without a listen address nginx listens on all:\n%s", b)
	}
}

// TestRefusesWhatIsNotConfiguration: a value that could add a directive never reaches the file.
func TestRefusesWhatIsNotConfiguration(t *testing.T) {
	o := publish.Options{HTTPPort: 80, HTTPDomain: "nodes.example.org"}
	for _, tc := range []struct {
		n    store.PublishedNode
		says string
	}{
		{store.PublishedNode{Name: "node-9;", IP: "10.10.0.19", PublicPort: 22009}, `node "node-9;"`},
		{store.PublishedNode{Name: "node-9", IP: "10.10.0.19; include /etc/shadow", PublicPort: 22009}, "is not an IPv4 address"},
		{store.PublishedNode{Name: "node-9", IP: "10.10.0.19", PublicPort: 22}, "22 is not a public port"},
		{store.PublishedNode{Name: "node-9", IP: "10.10.0.19", PublicPort: 22001}, "public port 22001 is also node node-1's"},
	} {
		if _, err := publish.Stream(append(nodes[:1:1], tc.n), o); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%+v: %v, want %q", tc.n, err, tc.says)
		}
	}
	for _, bad := range []publish.Options{{HTTPPort: 80, HTTPDomain: "x.org; return 200"}, {HTTPPort: 80, Listen: "all"}, {HTTPPort: 0}} {
		if _, err := publish.HTTP(nodes, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestNginxAcceptsTheFiles: the real nginx (Debian's, with its stream module) loads both files.
func TestNginxAcceptsTheFiles(t *testing.T) {
	n := nginxtest.Configure(t)
	o := publish.Options{Listen: "127.0.0.1", HTTPPort: 8080, HTTPDomain: "nodes.example.org"}
	s, err := publish.Stream(nodes, o)
	if err != nil {
		t.Fatal(err)
	}
	h, err := publish.HTTP(nodes, o)
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{n.StreamConf: s, n.HTTPConf: h} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Test(); err != nil {
		t.Fatal(err)
	}
}

func TestCommandAndURL(t *testing.T) {
	if got := publish.SSHCommand("pi", "pimaster.example.org", 22001); got != "ssh -p 22001 pi@pimaster.example.org" {
		t.Errorf("ssh command %q", got)
	}
	for _, tc := range []struct {
		o    publish.Options
		want string
	}{
		{publish.Options{HTTPPort: 80, HTTPDomain: "nodes.example.org"}, "http://node-2.nodes.example.org/"},
		{publish.Options{HTTPPort: 8080, HTTPDomain: "nodes.example.org"}, "http://node-2.nodes.example.org:8080/"},
		{publish.Options{HTTPPort: 80}, ""},
	} {
		if got := publish.WebURL("Node-2", tc.o); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.o, got, tc.want)
		}
	}
}
