package web

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/store"
)

func TestImportClusterDesc(t *testing.T) {
	imgDir := t.TempDir()
	os.WriteFile(filepath.Join(imgDir, "tiny_core.img.gz"), []byte("an image"), 0o644)
	f := newFixture(t, func(c *config.Config) { c.Cluster.ImgDir = imgDir })
	ctx := context.Background()
	admin := f.as("admin")
	admin.get("/admin/import")
	good := map[string]string{
		// main.json as the original rewrites it: with comments and its switches.
		"main.json": `{"pimaster": {"ip": "192.168.1.1", "user": "root"}, "first_node_ip": "192.168.1.10", "email_signup": true,
			"email_filters": ["@uni.example", "lab.example"], "comments": "WARNING: Do NOT forget the ending /",
			"env_cfg_dir": "/root/cluster_desc/environments/", "img_dir": "/root/img/", "switches": {"sw9": ` + origSwitchJSON + `}}`,
		"sw9.json":           origSwitchJSON,
		"node-20.json":       `{"name": "node-20", "port_number": 1, "ip": "192.168.1.20", "switch": "sw9", "model": "RPI3Bplus", "id": "a1b2c3d4"}`,
		"nodes/node-21.json": `{"name": "node-21", "port_number": 2, "ip": "192.168.1.21", "switch": "sw9", "model": "RPI4B", "id": "E5F6A7B8", "public_ip": "pi21.example.org", "public_port": "22021", "card_device": "/dev/nvme0n1"}`,
		"nodes/node-22.json": `{"name": "node-22", "port_number": 3, "ip": "192.168.1.22", "switch": "sw9"}`,
		"tiny.json": `{"type": "default", "name": "tiny_core", "desc": ["Tiny Core Linux,", "a small system"], "img_name": "tiny_core.img.gz",
			"img_size": 123456789, "sector_start": 122880, "ssh_user": "tc", "shell": "sh", "web": false, "script_test": "true", "kernel": "4.19.13-piCore-v7"}`,
		"environments/boot_test.json": `{"type": "default", "name": "boot_test", "img_name": "", "ssh_user": "root", "shell": "bash"}`,
		"environments/buster.json":    `{"type": "default", "name": "buster", "img_name": "buster.img.gz", "ssh_user": "root", "shell": "bash"}`,
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	// Bad files: nothing is imported, and the error names the file and the key, or both nodes.
	before := f.fingerprint()
	for _, tc := range []struct {
		files map[string]string
		code  int
		want  []string
	}{
		{with(map[string]string{"evil.json": `{"type": "default", "name": "evil", "desc": "x", "img_name": "../../etc/shadow", "ssh_user": "root", "shell": "bash"}`}),
			http.StatusBadRequest, []string{"evil.json", `field "img_name"`}},
		{with(map[string]string{"nodes/node-22.json": `{"name": "node-22", "port_number": 3, "ip": "192.168.1.21", "switch": "sw9"}`}),
			http.StatusBadRequest, []string{"nodes/node-22.json: node node-22: IP 192.168.1.21 is already node node-21's"}},
		{with(map[string]string{"nodes/node-22.json": `{"name": "node-22", "port_number": 3, "switch": "sw9", "mac_address": "x", "Mac": "b8:27:eb:00:00:01"}`}),
			http.StatusBadRequest, []string{"node-22.json", `unknown key "Mac" (did you mean "mac"?)`}},
	} {
		res := admin.upload("/admin/import", nil, tc.files)
		body := html.UnescapeString(res.Body.String())
		if res.Code != tc.code {
			t.Errorf("status %d, want %d: %s", res.Code, tc.code, body)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("the page lacks %q", w)
			}
		}
		if f.fingerprint() != before {
			t.Fatal("a refused import changed the database")
		}
	}
	res := admin.upload("/admin/import", nil, good)
	body := html.UnescapeString(res.Body.String())
	if res.Code != http.StatusOK || !strings.Contains(body, "1 switches, 3 nodes, 2 environments: 6 created, 0 updated, 0 unchanged.") {
		t.Fatalf("good upload: %d %s", res.Code, body)
	}
	for _, want := range []string{
		"environments/buster.json: environment buster not imported: there is no file buster.img.gz in img_dir",
		"nodes/node-22.json: node node-22 has no serial (id) yet",
		"environments/boot_test.json: environment boot_test has no image: kept for boot tests",
		"main.json: comments, switches",
		"environments/tiny.json: kernel",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the summary lacks %q", want)
		}
	}
	nodes, _ := f.st.Nodes(ctx)
	got := map[string]store.Node{}
	for _, n := range nodes {
		got[n.Name] = n
	}
	if n := got["node-21"]; n.Switch.Name != "sw9" || n.Serial != "e5f6a7b8" || n.Model != "RPI4B" || n.IP != "192.168.1.21" ||
		n.PublicIP != "pi21.example.org" || n.PublicPort != 22021 || n.CardDevice != "/dev/nvme0n1" {
		t.Errorf("node-21: %+v", n)
	}
	tiny, err := f.st.EnvironmentByName(ctx, "tiny_core")
	if err != nil || tiny.Description != "Tiny Core Linux,\na small system" || tiny.SSHUser != "tc" || tiny.SectorStart != 122880 {
		t.Errorf("tiny: %+v, %v", tiny, err)
	}
	if st, _ := f.s.settings(ctx); strings.Join(st.SignupDomains, ",") != "uni.example,lab.example" {
		t.Errorf("domains: %v", st.SignupDomains)
	}
	// The boot test environment is never offered for deployment.
	if page := f.api("user", http.MethodGet, "/api/v1/environments", nil).Body.String(); strings.Contains(page, "boot_test") || !strings.Contains(page, "tiny_core") {
		t.Errorf("environments offered by the API: %s", page)
	}
	if page := f.as("user").get(fmt.Sprintf("/reservations/%d/deploy", f.r1.ID)).Body.String(); strings.Contains(page, "boot_test") || !strings.Contains(page, "tiny_core") {
		t.Errorf("environments offered by the deploy form: %s", page)
	}
	// The same files again change nothing; without main.json the sign-up rules stay.
	delete(good, "main.json")
	before = f.fingerprint()
	res = admin.upload("/admin/import", nil, good)
	if res.Code != http.StatusOK || !strings.Contains(res.Body.String(), "0 created, 0 updated, 6 unchanged") {
		t.Fatalf("second upload: %d %s", res.Code, res.Body.String())
	}
	if f.fingerprint() != before {
		t.Error("importing the same files again changed the database")
	}
	if st, _ := f.s.settings(ctx); strings.Join(st.SignupDomains, ",") != "uni.example,lab.example" {
		t.Errorf("domains after an upload without main.json: %v", st.SignupDomains)
	}
}
