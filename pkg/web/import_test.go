package web

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/store"
)

func TestImportClusterDesc(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin := f.as("admin")
	admin.get("/admin/import")
	good := map[string]string{
		"main.json": `{"pimaster": {"ip": "192.168.1.1", "user": "root"}, "first_node_ip": "192.168.1.10", "email_signup": true,
			"email_filters": ["uni.example", "lab.example"], "env_cfg_dir": "/root/cluster_desc/environments/", "img_dir": "/root/img/"}`,
		"sw9.json":           origSwitchJSON,
		"node-20.json":       `{"name": "node-20", "port_number": 1, "ip": "192.168.1.20", "switch": "sw9", "model": "RPI3Bplus", "id": "a1b2c3d4"}`,
		"nodes/node-21.json": `{"name": "node-21", "port_number": 2, "ip": "192.168.1.21", "switch": "sw9", "model": "RPI4B", "id": "E5F6A7B8"}`,
		"tiny.json": `{"type": "default", "name": "tiny_core", "desc": ["Tiny Core Linux,", "a small system"], "img_name": "tiny_core.img.gz",
			"img_size": 123456789, "sector_start": 122880, "ssh_user": "tc", "shell": "sh", "web": false, "script_test": "true"}`,
	}
	// One bad file: nothing is imported, and the error names the file.
	bad := map[string]string{"evil.json": `{"type": "default", "name": "evil", "desc": "x", "img_name": "../../etc/shadow", "ssh_user": "root", "shell": "bash"}`}
	for k, v := range good {
		bad[k] = v
	}
	before := f.fingerprint()
	res := admin.upload("/admin/import", nil, bad)
	if res.Code != http.StatusBadRequest || !strings.Contains(res.Body.String(), "evil.json") || !strings.Contains(res.Body.String(), "img_name") {
		t.Fatalf("bad upload: %d %s", res.Code, res.Body.String())
	}
	if f.fingerprint() != before {
		t.Fatal("a refused import changed the database")
	}
	res = admin.upload("/admin/import", nil, good)
	if res.Code != http.StatusOK || !strings.Contains(res.Body.String(), "1 switches, 2 nodes, 1 environments: 4 created, 0 updated") {
		t.Fatalf("good upload: %d %s", res.Code, res.Body.String())
	}
	nodes, _ := f.st.Nodes(ctx)
	got := map[string]store.Node{}
	for _, n := range nodes {
		got[n.Name] = n
	}
	if n := got["node-21"]; n.Switch.Name != "sw9" || n.Serial != "e5f6a7b8" || n.Model != "RPI4B" || n.IP != "192.168.1.21" {
		t.Errorf("node-21: %+v", n)
	}
	envs, _ := f.st.Environments(ctx)
	var tiny *store.Environment
	for i := range envs {
		if envs[i].Name == "tiny_core" {
			tiny = &envs[i]
		}
	}
	if tiny == nil || tiny.Description != "Tiny Core Linux,\na small system" || tiny.SSHUser != "tc" || tiny.SectorStart != 122880 {
		t.Errorf("tiny: %+v", tiny)
	}
	if st, _ := f.s.settings(ctx); strings.Join(st.SignupDomains, ",") != "uni.example,lab.example" {
		t.Errorf("domains: %v", st.SignupDomains)
	}
	// The same files again change nothing; without main.json the sign-up rules stay.
	delete(good, "main.json")
	res = admin.upload("/admin/import", nil, good)
	if res.Code != http.StatusOK || !strings.Contains(res.Body.String(), "0 created, 4 updated") {
		t.Fatalf("second upload: %d %s", res.Code, res.Body.String())
	}
	if st, _ := f.s.settings(ctx); strings.Join(st.SignupDomains, ",") != "uni.example,lab.example" {
		t.Errorf("domains after an upload without main.json: %v", st.SignupDomains)
	}
}
