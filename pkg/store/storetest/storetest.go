// Package storetest opens throwaway databases for tests: a SQLite file in the test's temp
// folder, or a fresh database on the MariaDB at PISEDUCE_TEST_MYSQL (default
// root@127.0.0.1:3306), dropped when the test ends.
package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/internal/rawdb"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// Dialects are the databases every store test runs on.
var Dialects = []string{"sqlite", "mysql"}

// mysqlServer is "user:pass@host:port" of the test server.
func mysqlServer() string {
	if s := os.Getenv("PISEDUCE_TEST_MYSQL"); s != "" {
		return s
	}
	return "root@127.0.0.1:3306"
}

// URL returns the connection URL of a new empty database of the given dialect, dropped at the
// end of the test. On MariaDB it skips (or, in CI, fails) when the server is unreachable.
func URL(t testing.TB, dialect string) string {
	t.Helper()
	switch dialect {
	case "sqlite":
		return "sqlite://" + t.TempDir() + "/piseduce.db"
	case "mysql":
		server := mysqlServer()
		admin, err := sql.Open("mysql", dsnFor(server, ""))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err = admin.PingContext(ctx)
			cancel()
		}
		testenv.Need(t, err == nil, fmt.Sprintf("MariaDB at %s (%v)", server, err))
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		name := "piseduce_test_" + hex.EncodeToString(b)
		if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4"); err != nil {
			t.Fatalf("create test database: %v", err)
		}
		t.Cleanup(func() {
			_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name)
			admin.Close()
		})
		return "mysql://" + server + "/" + name
	default:
		t.Fatalf("unknown dialect %q", dialect)
		return ""
	}
}

// Open returns a migrated store on a new empty database, closed at the end of the test.
func Open(t testing.TB, dialect string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), URL(t, dialect))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// DB is the gorm handle of s, for tests that set up or check rows in ways the programs never
// do (a row forced into a state, a table dropped, a count): the same queries on the same
// databases, kept out of the programs, which only call the store's methods.
func DB(s *store.Store) *gorm.DB { return rawdb.Of(s) }

func dsnFor(server, db string) string {
	user, host := "root", server
	for i := len(server) - 1; i >= 0; i-- {
		if server[i] == '@' {
			user, host = server[:i], server[i+1:]
			break
		}
	}
	return fmt.Sprintf("%s@tcp(%s)/%s?timeout=3s", user, host, db)
}

// Cluster is a small cluster written by Seed: one switch, its nodes, an environment and a user
// holding all nodes in one reservation.
type Cluster struct {
	Switch      store.Switch
	Nodes       []store.Node
	Environment store.Environment
	User        store.User
	Reservation store.Reservation
}

// Seed writes a cluster of n nodes whose reservation runs from an hour ago to an hour from now.
func Seed(t testing.TB, s *store.Store, n int) *Cluster {
	t.Helper()
	db := DB(s)
	c := &Cluster{
		Switch: store.Switch{Name: "sw1", IP: "127.0.0.1", SNMPVersion: "2c", Community: "private",
			PortCount: n + 1, MasterPort: n + 1, OID: ".1.3.6.1.2.1.105.1.1.1.3.1"},
		Environment: store.Environment{Name: "tiny", Type: store.EnvDefault, ImageName: "tiny.img.gz",
			ImageFormat: "gz", SSHUser: "pi", Shell: "bash"},
		User: store.User{Email: "user@example.com", PasswordHash: "x", FirstName: "Ada", Authorized: true, EmailConfirmed: true},
	}
	must(t, db.Create(&c.Switch).Error)
	must(t, db.Create(&c.Environment).Error)
	must(t, db.Create(&c.User).Error)
	nodes := make([]store.Node, n)
	for i := range nodes {
		nodes[i] = store.Node{Name: fmt.Sprintf("node-%d", i+1), SwitchID: c.Switch.ID, Port: i + 1,
			Serial: fmt.Sprintf("%08x", 0xa0000000+i), Model: "RPI4B"}
	}
	if n > 0 {
		must(t, db.CreateInBatches(&nodes, 200).Error)
	}
	c.Nodes = nodes
	now := time.Now().UTC()
	c.Reservation = store.Reservation{UserID: c.User.ID, StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour)}
	must(t, db.Omit("Nodes").Create(&c.Reservation).Error)
	return c
}

// Deploy asks for deploy requests on the first n nodes of c.
func (c *Cluster) Deploy(t testing.TB, s *store.Store, n int) []store.Deployment {
	t.Helper()
	ds := make([]store.Deployment, n)
	for i := range ds {
		ds[i] = store.Deployment{ReservationID: c.Reservation.ID, NodeID: c.Nodes[i].ID, UserID: c.User.ID,
			EnvironmentID: c.Environment.ID, Name: "test"}
	}
	must(t, s.CreateDeployments(context.Background(), ds))
	return ds
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ReadOnlyURL returns the URL of the MariaDB database of url for a new user that may only
// read it (dropped at the end of the test): what it does cannot write.
func ReadOnlyURL(t testing.TB, url string) string {
	t.Helper()
	_, dsn, err := store.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", dsnFor(mysqlServer(), ""))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	user, pass := "ro_"+hex.EncodeToString(b), "pw-"+hex.EncodeToString(b)
	// localhost and 127.0.0.1 too: an anonymous user of either would match first.
	hosts := []string{"%", "localhost", "127.0.0.1"}
	t.Cleanup(func() {
		for _, h := range hosts {
			_, _ = admin.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", user, h))
		}
		admin.Close()
	})
	for _, h := range hosts {
		for _, q := range []string{fmt.Sprintf("CREATE USER '%s'@'%s' IDENTIFIED BY '%s'", user, h, pass),
			fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'%s'", cfg.DBName, user, h)} {
			if _, err := admin.Exec(q); err != nil {
				t.Fatalf("read-only user: %v", err)
			}
		}
	}
	return fmt.Sprintf("mysql://%s:%s@%s/%s", user, pass, cfg.Addr, cfg.DBName)
}

// Checksum is the SHA-256 of the SQLite database file of url.
func Checksum(t testing.TB, url string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(strings.TrimPrefix(url, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// WantUnchanged fails the test if the SQLite database of url is not as it was when its
// Checksum was before, or if its write-ahead log holds anything (SQLite may create the empty
// -wal and -shm files it needs to read a WAL database).
func WantUnchanged(t testing.TB, url string, before [32]byte) {
	t.Helper()
	if Checksum(t, url) != before {
		t.Fatalf("%s changed", url)
	}
	if b, err := os.ReadFile(strings.TrimPrefix(url, "sqlite://") + "-wal"); err == nil && len(b) > 0 {
		t.Fatalf("%d bytes were written to the write-ahead log of %s", len(b), url)
	}
}

// CountQueries counts every query s makes (reads and raw statements) from now to the end of
// the test, for tests and load tests that measure how much the database is asked.
func CountQueries(t testing.TB, s *store.Store) *atomic.Int64 {
	t.Helper()
	n := new(atomic.Int64)
	count := func(*gorm.DB) { n.Add(1) }
	cb := DB(s).Callback()
	name := fmt.Sprintf("storetest:count:%p", n)
	for _, err := range []error{cb.Query().After("gorm:query").Register(name, count),
		cb.Raw().After("gorm:raw").Register(name, count), cb.Row().After("gorm:row").Register(name, count)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		cb.Query().Remove(name)
		cb.Raw().Remove(name)
		cb.Row().Remove(name)
	})
	return n
}
