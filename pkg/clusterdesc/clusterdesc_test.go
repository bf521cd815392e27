package clusterdesc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

func TestReadOriginalLayout(t *testing.T) {
	d, err := Read("testdata/cluster_desc")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Switches) != 1 || len(d.Nodes) != 3 || len(d.Environments) != 1 {
		t.Fatalf("read %d switches, %d nodes, %d environments", len(d.Switches), len(d.Nodes), len(d.Environments))
	}
	if sw := d.Switches[0]; sw.OIDOffset != 48 || sw.MasterPort != 8 || sw.Community != "private" {
		t.Fatalf("switch = %+v", sw)
	}
	if e := d.Environments[0]; e.SectorStart != 532480 || len(e.Desc) != 2 || e.SSHUser != "pi" {
		t.Fatalf("environment = %+v", e)
	}
}

func TestImportIsIdempotent(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			d, err := Read("testdata/cluster_desc")
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			sum, err := Import(ctx, s, d)
			if err != nil {
				t.Fatal(err)
			}
			if sum != (Summary{Created: 5}) {
				t.Fatalf("first import: %s", sum)
			}
			sum, err = Import(ctx, s, d)
			if err != nil {
				t.Fatal(err)
			}
			if sum != (Summary{Updated: 5}) {
				t.Fatalf("second import: %s", sum)
			}
			var nodes []store.Node
			s.DB.Preload("Switch").Order("name").Find(&nodes)
			if len(nodes) != 3 || nodes[2].Name != "node-3" || nodes[2].Port != 3 || nodes[2].Serial != "a67c64b3" ||
				nodes[2].Switch.Name != "main_switch" || nodes[2].Switch.OIDOffset != 48 {
				t.Fatalf("nodes = %+v", nodes)
			}
			var envs []store.Environment
			s.DB.Find(&envs)
			if len(envs) != 1 || envs[0].ImageFormat != "gz" || envs[0].Description != "A tiny Raspbian-like system\nfor tests" {
				t.Fatalf("environments = %+v", envs)
			}
			if v, _ := s.Setting(ctx, store.SettingSignupDomains); v != "example.com\nimt-atlantique.fr" {
				t.Fatalf("signup domains = %q", v)
			}
		})
	}
}

func TestFailedImportWritesNothing(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			d, err := Read("testdata/cluster_desc")
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// A node already registered on port 3 under another name: node-3 cannot go there.
			sw := store.Switch{Name: "main_switch", IP: "127.0.0.1", OID: "1.3", Community: "c", PortCount: 8}
			if err := s.DB.Create(&sw).Error; err != nil {
				t.Fatal(err)
			}
			if err := s.DB.Create(&store.Node{Name: "old", SwitchID: sw.ID, Port: 3}).Error; err != nil {
				t.Fatal(err)
			}
			if _, err := Import(ctx, s, d); err == nil || !strings.Contains(err.Error(), "node node-3") {
				t.Fatalf("err = %v, want it to name node-3", err)
			}
			var n, e int64
			s.DB.Model(&store.Node{}).Count(&n)
			s.DB.Model(&store.Environment{}).Count(&e)
			var got store.Switch
			s.DB.First(&got, sw.ID)
			if n != 1 || e != 0 || got.IP != "127.0.0.1" {
				t.Fatalf("half an import landed: %d nodes, %d environments, switch ip %s", n, e, got.IP)
			}
		})
	}
}

func TestErrorsNameFileAndField(t *testing.T) {
	base := func() fstest.MapFS {
		m := fstest.MapFS{}
		filepath.WalkDir("testdata/cluster_desc", func(p string, de os.DirEntry, err error) error {
			if err == nil && !de.IsDir() {
				b, _ := os.ReadFile(p)
				m[strings.TrimPrefix(p, "testdata/cluster_desc/")] = &fstest.MapFile{Data: b}
			}
			return nil
		})
		return m
	}
	cases := []struct{ file, content, want string }{
		{"nodes/node-2.json", `{"name":"node-2","port_number":"two","ip":"1.2.3.4","switch":"main_switch","model":"x","id":"a67c64b2"}`, `nodes/node-2.json: field "port_number": want int, got JSON string`},
		{"nodes/node-2.json", `{"name":"node-2","port_number":9,"ip":"1.2.3.4","switch":"main_switch","model":"x","id":"a67c64b2"}`, `nodes/node-2.json: field "port_number": 9 is not a port of switch main_switch`},
		{"nodes/node-2.json", `{"name":"node-2","port_number":8,"ip":"1.2.3.4","switch":"main_switch","model":"x","id":"a67c64b2"}`, `is the pimaster's own port`},
		{"nodes/node-2.json", `{"name":"node-2","port_number":1,"ip":"1.2.3.4","switch":"main_switch","model":"x","id":"a67c64b2"}`, `port 1 of main_switch is already node node-1`},
		{"nodes/node-2.json", `{"name":"node-2","port_number":2,"ip":"1.2.3.4","switch":"nope","model":"x","id":"a67c64b2"}`, `field "switch": no switch "nope"`},
		{"nodes/node-2.json", `{"name":"node-2","port_number":2,"ip":"1.2.3.4","switch":"main_switch","model":"x","id":"zz"}`, `field "id": "zz" is not an 8-hex-digit serial`},
		{"nodes/node-2.json", `{"name":"node-2","port_number":2,"ip":"1.2.3.4","switch":"main_switch","model":"x","id":"a67c64b2","colour":"red"}`, `unknown field "colour"`},
		{"nodes/node-2.json", `{"name":"node-2"`, `nodes/node-2.json: unexpected EOF`},
		{"switches/main_switch.json", `{"name":"main_switch","ip":"10.10.0.1","community":"private","port_nb":8,"master_port":8,"oid":"1.3.6.x","oid_offset":48}`, `field "oid": "1.3.6.x" is not a numeric OID`},
		{"environments/tiny_lite.json", `{"type":"default","name":"tiny_lite","desc":"d","img_name":"../../etc/shadow","img_size":1,"sector_start":1,"ssh_user":"pi","shell":"bash","web":false,"script_test":""}`, `field "img_name": "../../etc/shadow" must be a plain file name`},
		{"environments/tiny_lite.json", `{"type":"default","name":"tiny_lite","desc":"d","img_name":"a.img","img_size":1,"sector_start":1,"ssh_user":"pi","shell":"bash; rm -rf /","web":false,"script_test":""}`, `field "shell"`},
		{"environments/tiny_lite.json", `{"type":"public","name":"tiny_lite","desc":"d","img_name":"a.img","img_size":1,"sector_start":1,"ssh_user":"pi","shell":"bash","web":false,"script_test":""}`, `field "type": "public" is not one of`},
		{"main.json", `{"pimaster":{"ip":"pimaster"}}`, `main.json: field "pimaster.ip"`},
	}
	for _, tc := range cases {
		fsys := base()
		fsys[tc.file] = &fstest.MapFile{Data: []byte(tc.content)}
		_, err := ReadFS(fsys, "cluster_desc")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s = %s:\n  error %v\n  want %q", tc.file, tc.content, err, tc.want)
		}
	}
}

func TestWriteReadsBack(t *testing.T) {
	d, err := Read("testdata/cluster_desc")
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
	if len(back.Nodes) != 3 || back.Nodes[1].ID != "a67c64b2" || back.Switches[0].OIDOffset != 48 {
		t.Fatalf("read back %+v", back)
	}
}

// FuzzDecode feeds any bytes to every file kind: a clear error or a valid description, never
// a panic.
func FuzzDecode(f *testing.F) {
	for _, p := range []string{"main.json", "switches/main_switch.json", "nodes/node-1.json", "environments/tiny_lite.json"} {
		b, err := os.ReadFile(filepath.Join("testdata/cluster_desc", p))
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
