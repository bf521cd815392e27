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
	admin := f.as("admin")
	admin.get("/admin/import")
	files := map[string]string{
		"main.json": `{"pimaster": {"ip": "192.168.1.1", "user": "root"}, "first_node_ip": "192.168.1.10", "email_signup": true,
			"email_filters": ["@uni.example", "lab.example"], "env_cfg_dir": "/root/cluster_desc/environments/", "img_dir": "/root/img/"}`,
		"sw9.json":     origSwitchJSON,
		"node-20.json": `{"name": "node-20", "port_number": 1, "ip": "192.168.1.20", "switch": "sw9", "model": "RPI3Bplus", "id": "00000000a1b2c3d4"}`,
		"node-21.json": `{"name": "node-21", "port_number": 2, "ip": "192.168.1.21", "switch": "sw9", "model": "RPI4B", "id": "e5f6a7b8"}`,
		"node-22.json": `{"name": "node-22", "port_number": 3, "switch": "nope", "model": "RPI4B", "id": "e5f6a7b9"}`,
		"node-1.json":  `{"name": "node-1", "port_number": 1, "ip": "10.10.0.201", "switch": "sw1", "model": "RPI4B", "id": "0000abc1"}`,
		"tiny.json": `{"type": "default", "name": "tiny_core", "desc": ["Tiny Core Linux,", "a small system"], "img_name": "tiny_core.img.gz",
			"img_size": 123456789, "sector_start": 122880, "ssh_user": "tc", "shell": "sh", "web": false, "script_test": "true"}`,
		"evil.json": `{"type": "default", "name": "evil", "desc": "x", "img_name": "../../../etc/shadow", "ssh_user": "root", "shell": "bash"}`,
		"junk.json": `[1, 2]`,
	}
	res := admin.upload("/admin/import", nil, files)
	body := res.Body.String()
	if res.Code != http.StatusOK || !strings.Contains(body, "4 added, 1 updated") {
		t.Fatalf("%d %s", res.Code, body)
	}
	for _, want := range []string{"node-22.json", "unknown switch", "evil.json", "junk.json"} {
		if !strings.Contains(body, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	ctx := context.Background()
	nodes, _ := f.st.Nodes(ctx)
	got := map[string]store.Node{}
	for _, n := range nodes {
		got[n.Name] = n
	}
	if n := got["node-20"]; n.Switch.Name != "sw9" || n.Serial != "a1b2c3d4" || n.Model != "RPI3Bplus" || n.IP != "192.168.1.20" {
		t.Errorf("node-20: %+v", n)
	}
	if got["node-1"].IP != "10.10.0.201" {
		t.Error("node-1 not updated")
	}
	envs, _ := f.st.Environments(ctx)
	var tiny *store.Environment
	for i := range envs {
		if envs[i].Name == "tiny_core" {
			tiny = &envs[i]
		}
		if envs[i].Name == "evil" {
			t.Error("an environment with a path as image was imported")
		}
	}
	if tiny == nil || tiny.Description != "Tiny Core Linux,\na small system" || tiny.SSHUser != "tc" || tiny.ImageFormat != "gz" || tiny.SectorStart != 122880 {
		t.Errorf("tiny: %+v", tiny)
	}
	sws, _ := f.st.Switches(ctx)
	if len(sws) != 3 || sws[2].Community != "private" || sws[2].MasterPort != 8 {
		t.Errorf("switches: %+v", sws)
	}
	if st, _ := f.s.settings(ctx); strings.Join(st.SignupDomains, ",") != "uni.example,lab.example" {
		t.Errorf("domains: %v", st.SignupDomains)
	}
}
