package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// loadSQL runs the statements of a dump (testdata/legacy-DIALECT.sql) on a database that was
// never migrated.
func loadSQL(t *testing.T, url, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenUnmigrated(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// One connection: the dump's SET and PRAGMA statements hold for the ones after them.
	err = storetest.DB(s).Connection(func(conn *gorm.DB) error {
		var stmt strings.Builder
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "--") || strings.TrimSpace(line) == "" {
				continue
			}
			stmt.WriteString(line + "\n")
			if strings.HasSuffix(strings.TrimSpace(line), ";") {
				if err := conn.Exec(stmt.String()).Error; err != nil {
					return fmt.Errorf("%s: %w", stmt.String(), err)
				}
				stmt.Reset()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// legacy is a database as store.Open left it before versioned migrations (testdata).
func legacy(t *testing.T, dialect string) string {
	url := storetest.URL(t, dialect)
	loadSQL(t, url, filepath.Join("testdata", "legacy-"+dialect+".sql"))
	return url
}

func open(t *testing.T, url string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func migrationsApplied(t *testing.T, s *store.Store) []int {
	t.Helper()
	var ms []store.SchemaMigration
	check(t, storetest.DB(s).Order("version").Find(&ms).Error)
	v := make([]int, len(ms))
	for i, m := range ms {
		v[i] = m.Version
	}
	return v
}

func wantAllMigrations(t *testing.T, s *store.Store) {
	t.Helper()
	got := migrationsApplied(t, s)
	want := make([]int, store.LatestSchema())
	for i := range want {
		want[i] = i + 1
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("migrations applied: %v, want %v, each once", got, want)
	}
}

// TestMigrateOnce: daemons starting at the same time on a new database: one migrates, the
// others wait for it and find the schema current.
func TestMigrateOnce(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			url := storetest.URL(t, dialect)
			const daemons = 4
			start := make(chan struct{})
			errs := make(chan error, daemons)
			for range daemons {
				go func() {
					<-start
					s, err := store.Open(context.Background(), url)
					if err == nil {
						s.Close()
					}
					errs <- err
				}()
			}
			close(start)
			for range daemons {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			wantAllMigrations(t, open(t, url))
		})
	}
}

// TestMigrationWaits: while another daemon holds the migration lock (MariaDB) or SQLite's
// write lock, a starting daemon waits, then migrates.
func TestMigrationWaits(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			url := storetest.URL(t, dialect)
			other, err := store.OpenUnmigrated(context.Background(), url)
			check(t, err)
			defer other.Close()
			var release func() error
			if dialect == "mysql" {
				conn, err := storetest.DB(other).DB()
				check(t, err)
				c, err := conn.Conn(context.Background())
				check(t, err)
				defer c.Close()
				var got sql.NullInt64
				check(t, c.QueryRowContext(context.Background(), "SELECT GET_LOCK(CONCAT('piseduce.migrate.', DATABASE()), 10)").Scan(&got))
				if got.Int64 != 1 {
					t.Fatal("could not take the migration lock")
				}
				release = func() error {
					_, err := c.ExecContext(context.Background(), "SELECT RELEASE_LOCK(CONCAT('piseduce.migrate.', DATABASE()))")
					return err
				}
			} else {
				tx := storetest.DB(other).Begin() // immediate: holds the write lock
				check(t, tx.Exec("CREATE TABLE other_daemon (id integer)").Error)
				release = func() error { return tx.Commit().Error }
			}
			done := make(chan error, 1)
			go func() {
				s, err := store.Open(context.Background(), url)
				if err == nil {
					s.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				t.Fatalf("Open returned while another daemon held the lock: %v", err)
			case <-time.After(500 * time.Millisecond):
			}
			check(t, release())
			select {
			case err := <-done:
				check(t, err)
			case <-time.After(2 * time.Minute):
				t.Fatal("Open still waiting after the lock was released")
			}
			wantAllMigrations(t, open(t, url))
		})
	}
}

// TestOldDatabase: a database from before versioned migrations is upgraded, its rows intact.
func TestOldDatabase(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			url := legacy(t, dialect)
			ctx := context.Background()
			if sc, err := store.InspectSchema(ctx, url); err != nil || sc.Version != 0 || sc.Latest != store.LatestSchema() {
				t.Fatalf("before: %+v %v", sc, err)
			}
			s := open(t, url)
			wantAllMigrations(t, s)
			at := time.Date(2026, 11, 26, 17, 7, 3, 250_000_000, time.UTC)
			u, err := s.UserByEmail(ctx, "ada@example.org")
			check(t, err)
			if u.LastName != "Lovelace" || !u.Admin || !u.Authorized || !u.CreatedAt.Equal(at) {
				t.Errorf("user: %+v", u)
			}
			var d store.Deployment
			check(t, storetest.DB(s).Preload("Node").Preload("Environment").First(&d).Error)
			if d.State != "env_copy" || d.Generation != 3 || !d.NextCheckAt.Equal(at.Add(2*time.Second)) ||
				!d.LeaseUntil.Equal(at.Add(30*time.Second)) || d.Node.Name != "pi-1" || d.Environment.SectorStart != 532480 || d.StepData != `{"k":"v"}` || d.CaptureName != "" {
				t.Errorf("deployment: %+v", d)
			}
			// A save_env request of before migration 6 had the environment's name in the step
			// data: it moves to its own columns, and the step data still reads as save_env's.
			var capture store.Deployment
			check(t, storetest.DB(s).First(&capture, 2).Error)
			var data process.SaveEnvData
			check(t, json.Unmarshal([]byte(capture.StepData), &data))
			if capture.CaptureName != "ada-tools" || capture.CaptureDescription != `with "my" tools` ||
				data != (process.SaveEnvData{File: "ada-tools-20261126.img.zst", Format: "zst", Size: 4096, SHA256: "ab12", RootStart: 532480}) {
				t.Errorf("save_env deployment: capture %q %q, step data %+v", capture.CaptureName, capture.CaptureDescription, data)
			}
			if d.Node.CardDevice != store.DefaultCardDevice { // the nodes there were have SD cards
				t.Errorf("node card device %q", d.Node.CardDevice)
			}
			var r store.Reservation
			check(t, storetest.DB(s).Preload("Nodes").First(&r).Error)
			if len(r.Nodes) != 2 || !r.EndsAt.Equal(at.Add(48*time.Hour)) {
				t.Errorf("reservation: %+v", r)
			}
			var run store.DiscoveryRun
			check(t, storetest.DB(s).First(&run).Error)
			if run.StartedAt == nil || !run.StartedAt.Equal(at) || run.EndedAt == nil {
				t.Errorf("discovery run: %+v", run)
			}
			sw, err := s.SwitchByName(ctx, "poe-rack1")
			check(t, err)
			// Switches from before power driver kinds are SNMP switches.
			if sw.V3PrivPass != "priv-pass-1" || sw.OIDOffset != 48 || sw.Driver != "snmp" || sw.Power.Command.On != nil {
				t.Errorf("switch: %+v", sw)
			}
			// And it takes new rows.
			check(t, s.CreateUser(ctx, &store.User{Email: "grace@example.org", PasswordHash: "x"}))
		})
	}
}

// TestMigrationsCoverModels: a database at schema version 1 (the legacy tables) gets every
// column of every model from the migrations after it. It fails when a field was added to a
// model without a migration.
func TestMigrationsCoverModels(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			url := legacy(t, dialect)
			raw, err := store.OpenUnmigrated(context.Background(), url)
			check(t, err)
			check(t, storetest.DB(raw).Migrator().CreateTable(&store.SchemaMigration{}))
			check(t, storetest.DB(raw).Create(&store.SchemaMigration{Version: 1, Name: "the legacy tables"}).Error)
			raw.Close()
			s := open(t, url)
			for _, m := range store.Models() {
				stmt := &gorm.Statement{DB: storetest.DB(s)}
				check(t, stmt.Parse(m))
				if !storetest.DB(s).Migrator().HasTable(m) {
					t.Errorf("no table %s after the migrations: append one for model %s (pkg/store/migrations.go)", stmt.Table, stmt.Schema.Name)
					continue
				}
				for _, f := range stmt.Schema.Fields {
					if f.DBName != "" && !f.IgnoreMigration && !storetest.DB(s).Migrator().HasColumn(m, f.DBName) {
						t.Errorf("no column %s.%s after the migrations: append one for %s.%s (pkg/store/migrations.go)",
							stmt.Table, f.DBName, stmt.Schema.Name, f.Name)
					}
				}
			}
		})
	}
}

// TestSchemaNewer: a database migrated by a newer program is refused, and left as it was.
func TestSchemaNewer(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			url := storetest.URL(t, dialect)
			s, err := store.Open(context.Background(), url)
			check(t, err)
			newer := store.LatestSchema() + 1
			check(t, storetest.DB(s).Create(&store.SchemaMigration{Version: newer, Name: "deployments.from_the_future"}).Error)
			s.Close()
			var before [32]byte
			if dialect == "sqlite" {
				before = storetest.Checksum(t, url)
			}
			for name, try := range map[string]func() error{
				"Open": func() error {
					s, err := store.Open(context.Background(), url)
					if err == nil {
						s.Close()
					}
					return err
				},
				"InspectSchema": func() error { _, err := store.InspectSchema(context.Background(), url); return err },
			} {
				err := try()
				if !errors.Is(err, store.ErrSchemaNewer) {
					t.Fatalf("%s: %v, want ErrSchemaNewer", name, err)
				}
				for _, want := range []string{fmt.Sprintf("schema version %d", newer), fmt.Sprintf("up to %d", newer-1),
					`"deployments.from_the_future"`, "run the newer PiSeduce"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: %q does not say %q", name, err, want)
					}
				}
			}
			if dialect == "sqlite" {
				storetest.WantUnchanged(t, url, before)
			}
		})
	}
}

// TestInspectSchemaWritesNothing: inspecting (pitasks check) neither creates nor changes
// anything, even where migrations are pending.
func TestInspectSchemaWritesNothing(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nothing-here", "piseduce.db")
		if _, err := store.InspectSchema(ctx, "sqlite://"+missing); !errors.Is(err, store.ErrNoDatabase) {
			t.Fatalf("missing file: %v", err)
		}
		if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("inspecting a missing database created its folder: %v", err)
		}
		url := legacy(t, "sqlite")
		before := storetest.Checksum(t, url)
		sc, err := store.InspectSchema(ctx, url)
		if err != nil || sc.Version != 0 || sc.Latest != store.LatestSchema() {
			t.Fatalf("InspectSchema = %+v, %v", sc, err)
		}
		storetest.WantUnchanged(t, url, before)
	})
	t.Run("mysql", func(t *testing.T) {
		url := legacy(t, "mysql")
		ro := storetest.ReadOnlyURL(t, url)
		sc, err := store.InspectSchema(ctx, ro)
		if err != nil || sc.Version != 0 || sc.Latest != store.LatestSchema() {
			t.Fatalf("InspectSchema as a read-only user = %+v, %v", sc, err)
		}
		// The user really may not write: migrating as it fails.
		if s, err := store.Open(ctx, ro); err == nil {
			s.Close()
			t.Fatal("a read-only user migrated the database")
		}
		sc, err = store.InspectSchema(ctx, url)
		if err != nil || sc.Version != 0 {
			t.Fatalf("after: %+v, %v", sc, err)
		}
	})
}
