package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/origdb/origdbtest"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestImportOriginalDBCommand moves a running original site over as its admin would:
// import-cluster with its cluster_desc/, then import-original-db, first as a dry run.
func TestImportOriginalDBCommand(t *testing.T) {
	ctx := context.Background()
	origURL, _ := origdbtest.Database(t)
	dir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dir, "piseduce.db")
	conf := filepath.Join(dir, "seducepp.conf")
	desc, imgDir := origdbtest.ClusterDesc(t)
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[db]\nconnection_url = %s\n[cluster]\nimg_dir = %s\n", dbURL, imgDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-config", conf, "import-cluster", desc}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cmd := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := importOriginalDBCmd(ctx, st, args, &out); err != nil {
			t.Fatalf("import-original-db %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	users := func() int64 {
		var n int64
		storetest.DB(st).Model(&store.User{}).Count(&n)
		return n
	}

	out := cmd("-dry-run", "-time-zone", "UTC", origURL)
	if !strings.Contains(out, "read-only transaction") || !strings.Contains(out, "dry run, nothing written: would be 18 created, 1 updated") ||
		!strings.Contains(out, "deployment 3 node-3: bob@example.org's") || users() != 0 {
		t.Fatalf("dry run (%d users here):\n%s", users(), out)
	}
	if out = cmd("-time-zone", "UTC", origURL); !strings.Contains(out, "imported: 18 created, 1 updated, 0 already imported") || users() != 5 {
		t.Fatalf("import (%d users here):\n%s", users(), out)
	}
	if out = cmd("-time-zone", "UTC", origURL); !strings.Contains(out, "imported: 0 created, 0 updated, 12 already imported") {
		t.Fatalf("second import:\n%s", out)
	}

	// pitasks nodes shows why nothing runs on a held node.
	var b bytes.Buffer
	if err := nodesCmd(ctx, st, []string{"node-5"}, &b); err != nil || !strings.Contains(b.String(), "held: Imported from the original PiSeduce in deploy/delete_partition") {
		t.Errorf("nodes node-5: %v\n%s", err, b.String())
	}
	b.Reset()
	if err := importOriginalDBCmd(ctx, st, []string{"-time-zone", "Mars/Olympus", origURL}, &b); err == nil || !strings.Contains(err.Error(), "-time-zone") {
		t.Errorf("an unknown zone: %v", err)
	}
	if err := importOriginalDBCmd(ctx, st, nil, &b); err == nil || !strings.Contains(err.Error(), "pitasks import-original-db: missing argument") {
		t.Errorf("no URL: %v\n%s", err, b.String())
	}
}
