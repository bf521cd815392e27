package clusterdesc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// testdata/original is a site as the original leaves it: main.json rewritten by its admin page
// (with the "switches" object), switches written by "add switch", nodes by "analyze ports"
// (node-10 without id, node-11 without model and id), node-2 from spring 2020 (public_ip,
// public_port as a string, model RPI3B+), environments with the "kernel" key of that time, the
// boot_test environment without image, and one saved by a user ("save as environment": a name
// with a space, written without indent).

// originalImages are the image files of testdata/original that are in img_dir (tiny_core's is
// not: the original skips that environment, and so does the import).
func originalImages(t *testing.T) string {
	dir := t.TempDir()
	for _, name := range []string{"2020-02-13-raspbian-buster-lite.img.tar.gz", "my buster.img.gz"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("an image"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mapFS copies the folder dir into a MapFS, to change a file or two.
func mapFS(t *testing.T, dir string) fstest.MapFS {
	m := fstest.MapFS{}
	err := filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			m[filepath.ToSlash(rel)] = &fstest.MapFile{Data: b}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReadOriginalSite(t *testing.T) {
	d, err := Read("testdata/original")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, n := range d.Nodes {
		nodes = append(nodes, n.Name)
	}
	if got := strings.Join(nodes, " "); got != "node-1 node-2 node-3 node-4 node-5 node-6 node-7 node-8 node-9 node-10 node-11" {
		t.Errorf("nodes in the order %s", got)
	}
	if len(d.Switches) != 2 || len(d.Environments) != 4 {
		t.Fatalf("read %d switches, %d environments", len(d.Switches), len(d.Environments))
	}
	var ignored []string
	for _, ig := range d.Ignored {
		ignored = append(ignored, ig.File+":"+ig.Key)
	}
	sort.Strings(ignored)
	want := "environments/my_buster.json:kernel environments/raspbian_buster.json:kernel environments/tiny_core.json:kernel main.json:comments main.json:switches"
	if got := strings.Join(ignored, " "); got != want {
		t.Errorf("ignored %s\nwant    %s", got, want)
	}
	if n := d.Nodes[1]; n.PublicIP != "pi2.seduce.fr" || n.PublicPort != 22002 || n.Model != "RPI3B+" {
		t.Errorf("node-2 = %+v", n)
	}
}

// rowTimes is every switch, node and environment row's updated_at.
func rowTimes(t *testing.T, s *store.Store) map[string]time.Time {
	out := map[string]time.Time{}
	for _, table := range []string{"switches", "nodes", "environments"} {
		var rows []struct {
			Name      string
			UpdatedAt time.Time
		}
		if err := storetest.DB(s).Table(table).Select("name, updated_at").Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			out[table+"/"+r.Name] = r.UpdatedAt
		}
	}
	return out
}

func TestImportOriginalSite(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			ctx := context.Background()
			imgDir := originalImages(t)
			d, err := Read("testdata/original")
			if err != nil {
				t.Fatal(err)
			}
			sum, err := Import(ctx, s, d, imgDir)
			if err != nil {
				t.Fatal(err)
			}
			if sum.String() != "16 created, 0 updated, 0 unchanged" || sum.Switches != 2 || sum.Nodes != 11 || sum.Environments != 3 {
				t.Errorf("first import: %s; %d switches, %d nodes, %d environments", sum, sum.Switches, sum.Nodes, sum.Environments)
			}
			if len(sum.Skipped) != 1 || !strings.Contains(sum.Skipped[0], "environments/tiny_core.json: environment tiny_core not imported: there is no file piCore-10.0beta12b.img.gz in img_dir") {
				t.Errorf("skipped: %q", sum.Skipped)
			}
			notes := strings.Join(sum.Notes, "\n")
			for _, want := range []string{
				"nodes/node-10.json: node node-10 has no serial (id) yet: it cannot be deployed",
				"nodes/node-11.json: node node-11 has no serial (id) yet",
				"environments/boot_test.json: environment boot_test has no image: kept for boot tests, never offered for deployment",
				"main.json: pimaster (192.168.1.62: [cluster] pimaster_ip here), first_node_ip (192.168.1.51: [cluster] first_node_ip here), img_dir (/root/environments/: [cluster] img_dir here) are taken from seducepp.conf",
				"images are looked for in img_dir " + imgDir + ", not in /root/environments/",
			} {
				if !strings.Contains(notes, want) {
					t.Errorf("notes lack %q:\n%s", want, notes)
				}
			}
			if got := strings.Join(sum.Ignored, "; "); got != "main.json: comments, switches; environments/my_buster.json: kernel; environments/raspbian_buster.json: kernel; environments/tiny_core.json: kernel" {
				t.Errorf("ignored: %s", got)
			}

			n2, err := s.NodeByName(ctx, "node-2")
			if err != nil || n2.PublicIP != "pi2.seduce.fr" || n2.PublicPort != 22002 || n2.Model != "RPI3B+" || n2.Serial != "071f11f3" || n2.Switch.Name != "main_switch" {
				t.Errorf("node-2 = %+v, %v", n2, err)
			}
			n11, err := s.NodeByName(ctx, "node-11")
			if err != nil || n11.Serial != "" || n11.Model != "" || n11.Switch.Name != "rack2" || n11.Port != 4 || n11.IP != "192.168.1.61" {
				t.Errorf("node-11 = %+v, %v", n11, err)
			}
			rack, err := s.SwitchByName(ctx, "rack2")
			if err != nil || rack.SNMPPort != 161 || rack.SNMPVersion != "2c" || rack.MasterPort != 0 || rack.PortCount != 16 {
				t.Errorf("rack2 = %+v, %v", rack, err)
			}
			saved, err := s.EnvironmentByName(ctx, "my buster")
			if err != nil || saved.Type != store.EnvUser || saved.OwnerID != 0 || saved.ImageFormat != "gz" || saved.SSHUser != "pi" ||
				saved.ImageSize != 2041582080 || saved.Description != "Raspbian Buster Lite\n(2020-02-13)" {
				t.Errorf("my buster = %+v, %v", saved, err)
			}
			if bt, err := s.EnvironmentByName(ctx, "boot_test"); err != nil || bt.ImageName != "" || bt.Deployable() {
				t.Errorf("boot_test = %+v, %v", bt, err)
			}
			if buster, err := s.EnvironmentByName(ctx, "raspbian_buster"); err != nil || buster.ImageFormat != "tar.gz" || buster.DecompressOn != "node" {
				t.Errorf("raspbian_buster = %+v, %v", buster, err)
			}
			if v, _ := s.Setting(ctx, store.SettingSignupDomains); v != "mines-nantes.fr\nimt-atlantique.fr\ninria.fr" {
				t.Errorf("signup domains = %q", v)
			}
			if v, _ := s.Setting(ctx, store.SettingEmailSignup); v != "false" {
				t.Errorf("email signup = %q", v)
			}

			// What discovery or an admin set since, and the files do not say, stays.
			n1, _ := s.NodeByName(ctx, "node-1")
			n1.MAC = "dc:a6:32:00:00:01"
			if err := s.UpdateNode(ctx, n1); err != nil {
				t.Fatal(err)
			}
			before := rowTimes(t, s)
			// Importing again changes nothing: no row is written.
			time.Sleep(1100 * time.Millisecond) // a write now would show in updated_at, even at MariaDB's precision
			sum, err = Import(ctx, s, d, imgDir)
			if err != nil {
				t.Fatal(err)
			}
			if sum.String() != "0 created, 0 updated, 16 unchanged" {
				t.Errorf("second import: %s", sum)
			}
			after := rowTimes(t, s)
			if len(after) != 16 {
				t.Errorf("%d rows", len(after))
			}
			for k, v := range before {
				if !after[k].Equal(v) {
					t.Errorf("%s touched: updated_at %s, then %s", k, v, after[k])
				}
			}
			if n1, _ := s.NodeByName(ctx, "node-1"); n1.MAC != "dc:a6:32:00:00:01" {
				t.Errorf("the import dropped node-1's MAC: %+v", n1)
			}

			// One file changed: that row only.
			fsys := mapFS(t, "testdata/original")
			fsys["nodes/node-3.json"].Data = []byte(`{"name": "node-3", "port_number": 3, "ip": "192.168.1.99", "switch": "main_switch", "model": "RPI4B", "id": "a67c64a3"}`)
			d2, err := ReadFS(fsys, "cluster_desc")
			if err != nil {
				t.Fatal(err)
			}
			if sum, err = Import(ctx, s, d2, imgDir); err != nil || sum.String() != "0 created, 1 updated, 15 unchanged" {
				t.Errorf("one file changed: %s, %v", sum, err)
			}
			after2 := rowTimes(t, s)
			for k, v := range after {
				if changed := !after2[k].Equal(v); changed != (k == "nodes/node-3") {
					t.Errorf("%s: updated_at changed = %v", k, changed)
				}
			}
		})
	}
}

// TestLoaderVariants: every form of file the original's loader accepts imports.
func TestLoaderVariants(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	ctx := context.Background()
	imgDir := originalImages(t)
	cases := []struct {
		name  string
		files map[string]string
		check func(t *testing.T, sum Summary)
	}{
		{"the original's shipped main.json, placeholders and all", map[string]string{"main.json": `{
    "pimaster": {
        "ip": "PIMASTERIP",
        "user": "root"
    },
    "first_node_ip": "FIRSTNODEIP",
    "email_signup": true,
    "email_filters": [
        "@mines-nantes.fr",
        "@imt-atlantique.fr",
        "@inria.fr"
    ],
    "comments": "WARNING: Do NOT forget the ending /",
    "env_cfg_dir": "/root/seduce_pp/cluster_desc/environments/",
    "img_dir": "/root/environments/"
}`}, func(t *testing.T, sum Summary) {
			if !strings.Contains(strings.Join(sum.Notes, "\n"), "pimaster (PIMASTERIP: [cluster] pimaster_ip here)") {
				t.Errorf("notes: %q", sum.Notes)
			}
			if v, _ := s.Setting(ctx, store.SettingEmailSignup); v != "true" {
				t.Errorf("email_signup = %s", v)
			}
		}},
		{"a spring 2020 main.json (controller, switch)", map[string]string{"main.json": `{"controller": {"ip": "192.168.1.62", "user": "root"},
			"switch": {"address": "192.168.1.23", "username": "admin", "password": "seduce"},
			"comments": "WARNING: Do NOT forget the ending /", "env_cfg_dir": "/root/seduce_pp/cluster_desc/environments/", "img_dir": "/root/environments/"}`},
			func(t *testing.T, sum Summary) {
				if sum.Ignored[0] != "main.json: comments, controller, switch" {
					t.Errorf("ignored: %q", sum.Ignored)
				}
			}},
		{"public_port as a number, and no switch key in main.json", map[string]string{
			"main.json":         `{"pimaster": {"ip": "192.168.1.62", "user": "root"}, "email_signup": false, "email_filters": []}`,
			"nodes/node-2.json": `{"name": "node-2", "port_number": 2, "ip": "192.168.1.52", "switch": "main_switch", "model": "RPI4B", "id": "071f11f3", "public_ip": "192.0.2.2", "public_port": 22002}`},
			func(t *testing.T, sum Summary) {
				if n, _ := s.NodeByName(ctx, "node-2"); n.PublicIP != "192.0.2.2" || n.PublicPort != 22002 {
					t.Errorf("node-2 = %+v", n)
				}
			}},
		{"a description as one string, an environment without desc nor web", map[string]string{
			"environments/raspbian_buster.json": `{"type": "default", "name": "raspbian_buster", "desc": "one line\nand another",
				"img_name": "2020-02-13-raspbian-buster-lite.img.tar.gz", "img_size": 1849688064, "sector_start": 532480, "ssh_user": "root", "shell": "bash"}`},
			func(t *testing.T, sum Summary) {
				if e, _ := s.EnvironmentByName(ctx, "raspbian_buster"); e.Description != "one line\nand another" {
					t.Errorf("raspbian_buster = %+v", e)
				}
			}},
		{"a key nobody reads", map[string]string{
			"nodes/node-4.json": `{"name": "node-4", "port_number": 4, "ip": "192.168.1.54", "switch": "main_switch", "model": "RPI4B", "id": "a67c64a4", "colour": "red"}`},
			func(t *testing.T, sum Summary) {
				if !strings.Contains(strings.Join(sum.Ignored, "\n"), "nodes/node-4.json: colour") {
					t.Errorf("ignored: %q", sum.Ignored)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := mapFS(t, "testdata/original")
			for name, content := range tc.files {
				fsys[name] = &fstest.MapFile{Data: []byte(content)}
			}
			d, err := ReadFS(fsys, "cluster_desc")
			if err != nil {
				t.Fatal(err)
			}
			sum, err := Import(ctx, s, d, imgDir)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, sum)
		})
	}
}

func TestErrorsNameFileAndKey(t *testing.T) {
	node := func(extra string) string {
		return `{"name": "node-2", "port_number": 2, "ip": "192.168.1.52", "switch": "main_switch", "model": "RPI4B", "id": "071f11f3"` + extra + `}`
	}
	cases := []struct{ file, content, want string }{
		// Ours, misspelt: refused, naming the key meant.
		{"switches/main_switch.json", `{"name": "main_switch", "ip": "192.168.1.23", "community": "private", "port_nb": 8, "master_port": 8,
			"oid": "1.3.6.1.2.1.105.1.1.1.3.1", "oid_offset": 48, "snmp_prot": 1161}`, `switches/main_switch.json: unknown key "snmp_prot" (did you mean "snmp_port"?)`},
		{"nodes/node-2.json", node(`, "Mac": "b8:27:eb:00:00:02"`), `nodes/node-2.json: unknown key "Mac" (did you mean "mac"?)`},
		{"nodes/node-2.json", node(`, "public-ip": "pi2.seduce.fr"`), `unknown key "public-ip" (did you mean "public_ip"?)`},
		{"nodes/node-2.json", `{"name": "node-2", "port_numbr": 2, "ip": "192.168.1.52", "switch": "main_switch"}`, `unknown key "port_numbr" (did you mean "port_number"?)`},
		{"environments/boot_test.json", `{"type": "hidden", "name": "boot_test", "img_nmae": ""}`, `environments/boot_test.json: unknown key "img_nmae" (did you mean "img_name"?)`},
		{"main.json", `{"email_filter": ["inria.fr"]}`, `main.json: unknown key "email_filter" (did you mean "email_filters"?)`},
		// Values, judged by the store's validation, named by the files' keys.
		{"nodes/node-2.json", `{"name": "node-2", "port_number": "two", "ip": "1.2.3.4", "switch": "main_switch"}`, `nodes/node-2.json: field "port_number": want int, got JSON string`},
		{"nodes/node-2.json", `{"name": "node-2", "port_number": 9, "ip": "1.2.3.4", "switch": "main_switch"}`, `nodes/node-2.json: field "port_number": 9 is not a port of switch main_switch (1 to 8)`},
		{"nodes/node-2.json", `{"name": "node-2", "port_number": 8, "ip": "1.2.3.4", "switch": "main_switch"}`, `field "port_number": 8 is the pimaster's own port`},
		{"nodes/node-2.json", `{"name": "node-2", "port_number": 2, "ip": "1.2.3.4", "switch": "nope"}`, `field "switch": no switch "nope" in switches/`},
		{"nodes/node-2.json", `{"name": "node-2", "port_number": 2, "ip": "1.2.3.4"}`, `nodes/node-2.json: field "switch": missing`},
		{"nodes/node-2.json", node(`, "public_port": "ssh"`), `nodes/node-2.json: public_port: "ssh" is not a port number`},
		{"nodes/node-2.json", `{"name": "node-2", "port_number": 2, "ip": "1.2.3.4", "switch": "main_switch", "id": "10000000071f11f3"}`, `field "id": "10000000071f11f3" is not a node serial: the last 8 hex digits`},
		{"nodes/node-2.json", `{"name": "node-2", "port_number": 2, "ip": "192.168.1.300", "switch": "main_switch"}`, `field "ip": "192.168.1.300" is not an IPv4 address`},
		{"nodes/node-2.json", `{"name": "node\u202e-2", "port_number": 2, "switch": "main_switch"}`, `field "name": holds a bidirectional control character (U+202E)`},
		{"nodes/node-2.json", `{"name": "node-1", "port_number": 2, "switch": "main_switch"}`, `field "name": node node-1 is described twice`},
		{"nodes/node-2.json", `{"name": "node-2"`, `nodes/node-2.json: unexpected EOF`},
		{"nodes/node-2.json", `["node-2"]`, `nodes/node-2.json: want a JSON object, got JSON array`},
		{"nodes/node-2.json", node(``) + `{}`, `nodes/node-2.json: unexpected data after the JSON object`},
		{"switches/main_switch.json", `{"name": "main_switch", "ip": "192.168.1.23", "community": "private", "port_nb": 8, "master_port": 8, "oid": "1.3.6.x", "oid_offset": 48}`, `field "oid": oid: "1.3.6.x" is not a numeric OID`},
		{"switches/main_switch.json", `{"name": "main_switch", "ip": "192.168.1.23", "community": "private", "port_nb": 2000, "master_port": 8, "oid": "1.3.6.1.2.1.105.1.1.1.3.1"}`, `field "port_nb": ports must be from 1 to 1024`},
		{"switches/main_switch.json", `{"name": "main_switch", "ip": "192.168.1.23", "port_nb": 8, "master_port": 8, "oid": "1.3.6.1.2.1.105.1.1.1.3.1"}`, `field "community": SNMP v2c needs a community`},
		{"environments/tiny_core.json", `{"type": "default", "name": "tiny_core", "img_name": "../../etc/shadow", "ssh_user": "tc", "shell": "sh"}`, `field "img_name": "../../etc/shadow" is not a plain file name`},
		{"environments/tiny_core.json", `{"type": "default", "name": "tiny_core", "img_name": "a.img", "ssh_user": "tc", "shell": "sh; rm -rf /"}`, `field "shell": "sh; rm -rf /" must be a program name`},
		{"environments/tiny_core.json", `{"type": "public", "name": "tiny_core", "img_name": "a.img", "ssh_user": "tc", "shell": "sh"}`, `field "type": "public" is not one of default, user, hidden`},
		{"environments/tiny_core.json", `{"type": "default", "name": "tiny_core", "ssh_user": "tc", "shell": "sh"}`, `field "img_name": missing`},
		{"environments/tiny_core.json", `{"type": "default", "name": "tiny_core", "desc": 3, "img_name": "a.img"}`, `environments/tiny_core.json: desc: want a string or a list of strings`},
		{"main.json", `{"email_filters": ["inria.fr", "a b"]}`, `main.json: field "email_filters": "a b" is not a domain`},
		// The command driver's settings, named by their keys in the file.
		{"switches/main_switch.json", `{"name": "main_switch", "port_nb": 8, "master_port": 8, "driver": "ipmi"}`, `field "driver": unknown driver "ipmi" (want snmp or command)`},
		{"switches/main_switch.json", `{"name": "main_switch", "port_nb": 8, "master_port": 8, "driver": "command"}`, `field "command.on": the command driver needs this command`},
		{"switches/main_switch.json", `{"name": "main_switch", "port_nb": 8, "master_port": 8, "driver": "command",
			"command": {"on": ["uhubctl", "-a", "on"], "off": ["/usr/sbin/uhubctl"], "status": ["/usr/sbin/uhubctl"]}}`, `field "command.on": the program "uhubctl" must be an absolute`},
		{"switches/main_switch.json", `{"name": "main_switch", "port_nb": 8, "master_port": 8, "driver": "command",
			"command": {"on": ["/usr/sbin/uhubctl"], "off": ["/usr/sbin/uhubctl"], "status": ["/usr/sbin/uhubctl"], "stauts_on": "power"}}`, `unknown field "stauts_on"`},
		{"switches/main_switch.json", `{"name": "main_switch", "port_nb": 8, "master_port": 8, "driver": "command",
			"command": {"on": ["/usr/sbin/uhubctl"], "off": ["/usr/sbin/uhubctl"], "status": ["/usr/sbin/uhubctl"], "status_on": "("}}`, `field "command.status_on": give both status_on and status_off`},
	}
	for _, tc := range cases {
		fsys := mapFS(t, "testdata/original")
		fsys[tc.file] = &fstest.MapFile{Data: []byte(tc.content)}
		_, err := ReadFS(fsys, "cluster_desc")
		if err == nil || !strings.Contains(err.Error(), "cluster_desc/"+tc.file) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s = %s:\n  error %v\n  want %q", tc.file, tc.content, err, tc.want)
		}
	}
}

// TestDuplicatesRefusedWholly: files that give two nodes one IP, MAC or serial are refused,
// naming both nodes, and nothing is written.
func TestDuplicatesRefusedWholly(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			ctx := context.Background()
			imgDir := originalImages(t)
			for _, tc := range []struct{ node3, want string }{
				{`"ip": "192.168.1.52"`, "nodes/node-3.json: node node-3: IP 192.168.1.52 is already node node-2's"},
				{`"ip": "192.168.1.53", "id": "071F11F3"`, "nodes/node-3.json: node node-3: serial 071f11f3 is already node node-2's"},
			} {
				fsys := mapFS(t, "testdata/original")
				fsys["nodes/node-3.json"].Data = []byte(`{"name": "node-3", "port_number": 3, "switch": "main_switch", ` + tc.node3 + `}`)
				d, err := ReadFS(fsys, "cluster_desc")
				if err != nil {
					t.Fatal(err)
				}
				_, err = Import(ctx, s, d, imgDir)
				if err == nil || err.Error() != "clusterdesc: "+tc.want || !errors.Is(err, store.ErrDuplicate) {
					t.Errorf("err = %v, want %q", err, tc.want)
				}
				if n := len(rowTimes(t, s)); n != 0 {
					t.Errorf("half an import landed: %d rows", n)
				}
			}
		})
	}
}

func TestFailedImportWritesNothing(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			d, err := Read("testdata/original")
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// A node already registered on port 3 under another name: node-3 cannot go there.
			sw := store.Switch{Name: "main_switch", IP: "127.0.0.1", OID: "1.3.6.1.2.1.105.1.1.1.3.1", Community: "c", PortCount: 8}
			if err := s.CreateSwitch(ctx, &sw); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateNode(ctx, &store.Node{Name: "old", SwitchID: sw.ID, Port: 3}); err != nil {
				t.Fatal(err)
			}
			_, err = Import(ctx, s, d, originalImages(t))
			if err == nil || err.Error() != "clusterdesc: nodes/node-3.json: node node-3: port 3 of switch main_switch is already node old's" {
				t.Fatalf("err = %v, want it to name node-3 and old", err)
			}
			var n, e int64
			storetest.DB(s).Model(&store.Node{}).Count(&n)
			storetest.DB(s).Model(&store.Environment{}).Count(&e)
			got, _ := s.Switch(ctx, sw.ID)
			if n != 1 || e != 0 || got.IP != "127.0.0.1" {
				t.Fatalf("half an import landed: %d nodes, %d environments, switch ip %s", n, e, got.IP)
			}
		})
	}
}

func TestWriteReadsBack(t *testing.T) {
	d, err := Read("testdata/original")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := d.Write(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Nodes) != 11 || back.Nodes[1].PublicPort != 22002 || back.Nodes[10].ID != "" || back.Switches[0].OIDOffset != 48 ||
		back.Environments[0].Name != "boot_test" || len(back.Ignored) != 0 {
		t.Fatalf("read back %+v", back)
	}
}

func TestMisspelt(t *testing.T) {
	known := jsonKeys(&Node{})
	for k, want := range map[string]string{"MAC": "mac", "public-port": "public_port", "swich": "switch", "modle": "model",
		"colour": "", "kernel": "", "comments": "", "": "", "location": ""} {
		if got := misspelt(k, known); got != want {
			t.Errorf("misspelt(%q) = %q, want %q", k, got, want)
		}
	}
}

// FuzzDecode feeds any bytes to every file kind: a clear error or a valid description, never
// a panic.
func FuzzDecode(f *testing.F) {
	for _, p := range []string{"main.json", "switches/main_switch.json", "nodes/node-2.json", "environments/my_buster.json"} {
		b, err := os.ReadFile(filepath.Join("testdata/original", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p, b)
	}
	f.Fuzz(func(t *testing.T, kind string, b []byte) {
		fsys := fstest.MapFS{"main.json": {Data: []byte(`{}`)}}
		switch {
		case strings.HasPrefix(kind, "switches"), strings.HasPrefix(kind, "nodes"), strings.HasPrefix(kind, "environments"):
			dir, _, _ := strings.Cut(kind, "/")
			fsys[dir+"/x.json"] = &fstest.MapFile{Data: b}
			if dir == "nodes" {
				fsys["switches/main_switch.json"] = &fstest.MapFile{Data: []byte(`{"name": "main_switch", "ip": "192.168.1.23",
					"community": "private", "port_nb": 8, "master_port": 8, "oid": "1.3.6.1.2.1.105.1.1.1.3.1", "oid_offset": 48}`)}
			}
		default:
			fsys["main.json"] = &fstest.MapFile{Data: b}
		}
		d, err := ReadFS(fsys, "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "clusterdesc: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		if err := d.Validate("again"); err != nil {
			t.Fatalf("accepted a description that does not validate: %v", err)
		}
	})
}

// TestImportCommandSwitch: a switch file may name the command driver and its programs; the
// switch is stored with them, a second import changes nothing, and the original's switches
// beside it stay SNMP.
func TestImportCommandSwitch(t *testing.T) {
	hub := `{"name": "rack2", "port_nb": 4, "master_port": 0, "driver": "command", "command": {
		"on": ["/usr/sbin/uhubctl", "-l", "1-1", "-p", "{port}", "-a", "on"],
		"off": ["/usr/sbin/uhubctl", "-l", "1-1", "-p", "{port}", "-a", "off"],
		"status": ["/usr/sbin/uhubctl", "-l", "1-1", "-p", "{port}"],
		"status_on": "Port {port}: \\S+ power", "status_off": "Port {port}: \\S+ off", "timeout": 10}}`
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			ctx := context.Background()
			fsys := mapFS(t, "testdata/original")
			fsys["switches/rack2.json"] = &fstest.MapFile{Data: []byte(hub)}
			d, err := ReadFS(fsys, "cluster_desc")
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				sum, err := Import(ctx, s, d, originalImages(t))
				if err != nil {
					t.Fatal(err)
				}
				if i == 1 && sum.String() != "0 created, 0 updated, 16 unchanged" {
					t.Errorf("second import: %s, want all unchanged", sum)
				}
			}
			sw, err := s.SwitchByName(ctx, "rack2")
			if err != nil {
				t.Fatal(err)
			}
			k := sw.Power.Command
			if sw.Driver != "command" || strings.Join(k.On, " ") != "/usr/sbin/uhubctl -l 1-1 -p {port} -a on" ||
				len(k.Off) != 7 || len(k.Status) != 5 || k.StatusOn != `Port {port}: \S+ power` || k.Timeout != 10 {
				t.Fatalf("stored %s %+v", sw.Driver, k)
			}
			if main, err := s.SwitchByName(ctx, "main_switch"); err != nil || main.Driver != "snmp" || main.Community != "private" {
				t.Fatalf("main_switch: %v, %+v", err, main)
			}
		})
	}
}
