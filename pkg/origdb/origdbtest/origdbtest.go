// Package origdbtest builds, for tests, a running original PiSeduce site: its MariaDB
// database (the original's schema, rows written the way the original writes them) and the
// cluster_desc/ folder that import-cluster brings over first.
package origdbtest

import (
	"database/sql"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

var (
	//go:embed testdata/schema.sql
	schema string
	//go:embed testdata/rows.sql
	rows string
)

// Image of the environments of ClusterDesc: 2 GB, root partition from sector 532480.
const (
	ImageSize   = 2_000_000_000
	SectorStart = 532480
	// Nodes is the number of nodes of ClusterDesc: node-1 … node-12.
	Nodes = 12
)

// Passwords of the users of testdata/rows.sql.
const (
	AlicePassword = "alice-old-secret" // a cost-12 hash, as Flask-Bcrypt makes them
	BobPassword   = "bob old password"
	CarolPassword = "carol password"
)

// Database creates the original's database on the test MariaDB (dropped at the end of the
// test): latin1 by default, the tables of testdata/schema.sql, the rows of testdata/rows.sql,
// then the extra statements, in one session. It returns its URL and a connection to it.
func Database(t testing.TB, extra ...string) (string, *sql.DB) {
	t.Helper()
	u := storetest.URL(t, "mysql")
	_, dsn, err := store.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn+"&multiStatements=true")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one session: a SET in extra holds for what follows
	t.Cleanup(func() { db.Close() })
	name := u[strings.LastIndex(u, "/")+1:]
	stmts := []string{"ALTER DATABASE `" + name + "` CHARACTER SET latin1", schema, rows}
	for _, s := range append(stmts, extra...) {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("original database: %v\n%s", err, s)
		}
	}
	return u, db
}

// ClusterDesc writes the original's cluster_desc/ folder in a temporary folder and returns
// it with the img_dir of its images: a switch, node-1 … node-12, the default environment
// raspbian_buster and the user environments bob_env (being saved by bob in
// testdata/rows.sql) and old_env. The images are empty files: import-cluster only needs them
// to be there.
func ClusterDesc(t testing.TB) (dir, imgDir string) {
	t.Helper()
	dir, imgDir = t.TempDir(), t.TempDir()
	files := map[string]string{
		"main.json": `{"pimaster": {"ip": "10.123.0.1", "user": "root"}, "email_signup": false, "email_filters": []}`,
		"switches/sw1.json": fmt.Sprintf(`{"name": "sw1", "ip": "10.123.0.2", "community": "private", "port_nb": %d,
			"master_port": %d, "oid": "1.3.6.1.2.1.105.1.1.1.3.1", "oid_offset": 0}`, Nodes+1, Nodes+1),
	}
	for i := 1; i <= Nodes; i++ {
		files[fmt.Sprintf("nodes/node-%d.json", i)] = fmt.Sprintf(
			`{"name": "node-%d", "port_number": %d, "ip": "10.123.0.%d", "switch": "sw1", "model": "RPI4B", "id": "%08x"}`,
			i, i, 10+i, 0xa0000000+i)
	}
	for _, e := range []struct{ name, typ string }{{"raspbian_buster", "default"}, {"bob_env", "user"}, {"old_env", "user"}} {
		files["environments/"+e.name+".json"] = fmt.Sprintf(
			`{"type": %q, "name": %q, "desc": ["test"], "img_name": "%s.img.gz", "img_size": %d, "sector_start": %d,
			"ssh_user": "pi", "shell": "bash", "web": false, "script_test": ""}`, e.typ, e.name, e.name, ImageSize, SectorStart)
		if err := os.WriteFile(filepath.Join(imgDir, e.name+".img.gz"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, imgDir
}
