package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestCheckWritesNothing: pitasks check reads the database and writes nothing: the SQLite
// file keeps its SHA-256, and a MariaDB user that may only read is enough. It says when
// migrations are pending, and fails on a schema newer than the program.
func TestCheckWritesNothing(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, url string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := checkCmd(ctx, "seducepp.conf", url, &out)
		return out.String(), err
	}
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "data", "piseduce.db")
		url := "sqlite://" + file
		out, err := check(t, url)
		if err != nil || !strings.Contains(out, "does not exist yet") {
			t.Fatalf("no database yet: %v %q", err, out)
		}
		if _, err := os.Stat(filepath.Dir(file)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("check created the database folder: %v", err)
		}
		s, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		before := storetest.Checksum(t, url)
		// Through run(), as an admin types it.
		conf := filepath.Join(dir, "seducepp.conf")
		if err := os.WriteFile(conf, []byte("[db]\nconnection_url = "+url+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := run([]string{"-config", conf, "check"}); err != nil {
			t.Fatal(err)
		}
		latest := latestSchema(t, url)
		out, err = check(t, url)
		if err != nil || !strings.Contains(out, fmt.Sprintf("database sqlite reachable, schema version %d (current)", latest)) {
			t.Fatalf("check: %v %q", err, out)
		}
		storetest.WantUnchanged(t, url, before)
	})
	t.Run("mysql read-only user", func(t *testing.T) {
		url := storetest.URL(t, "mysql")
		ro := storetest.ReadOnlyURL(t, url)
		latest := latestSchema(t, url)
		out, err := check(t, ro)
		if err != nil || !strings.Contains(out, fmt.Sprintf("schema version 0 (%d migration(s) pending, applied when a daemon starts)", latest)) {
			t.Fatalf("new database: %v %q", err, out)
		}
		s, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if out, err = check(t, ro); err != nil || !strings.Contains(out, fmt.Sprintf("database mysql reachable, schema version %d (current)", latest)) {
			t.Fatalf("migrated database: %v %q", err, out)
		}
		if !strings.Contains(out, "workers: no pitasks has run on this database yet") {
			t.Fatalf("fresh database, workers: %q", out)
		}
		// A pitasks that stopped ticking a minute ago is a problem; one that ticks is not.
		now := time.Now().UTC()
		if err := s.Beat(ctx, &store.Heartbeat{Owner: "old", TickMS: 2000, LastTick: now.Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if out, err = check(t, ro); err == nil || !strings.Contains(out, "warning: no pitasks is running: the last tick was 1m") {
			t.Fatalf("stopped pitasks: %v %q", err, out)
		}
		if err := s.Beat(ctx, &store.Heartbeat{Owner: "new", TickMS: 2000, LastTick: now}); err != nil {
			t.Fatal(err)
		}
		if out, err = check(t, ro); err != nil || !strings.Contains(out, "workers: 1 pitasks running") {
			t.Fatalf("running pitasks: %v %q", err, out)
		}
		if err := storetest.DB(s).Create(&store.SchemaMigration{Version: latest + 1, Name: "from a newer PiSeduce"}).Error; err != nil {
			t.Fatal(err)
		}
		if _, err = check(t, ro); !errors.Is(err, store.ErrSchemaNewer) || !strings.Contains(err.Error(), fmt.Sprintf("%q", "from a newer PiSeduce")) {
			t.Fatalf("newer schema: %v", err)
		}
	})
}

// latestSchema is the number of migrations the program knows.
func latestSchema(t *testing.T, url string) int {
	t.Helper()
	sc, err := store.InspectSchema(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return sc.Latest
}
