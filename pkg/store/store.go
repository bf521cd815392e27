// Package store keeps PiSeduce's state in a relational database through gorm: the same code
// on the embedded SQLite default and on MariaDB.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ncruces/go-sqlite3"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/piseduce/piseduce/pkg/store/internal/rawdb"
)

// The test support package reaches the handle through rawdb, which only pkg/store/... may import.
func init() { rawdb.Of = func(s any) *gorm.DB { return s.(*Store).db } }

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("store: not found")

// Store wraps the database. Its handle is unexported: every query is a named method of this
// package, so that what the programs ask of the database is all here (tests reach the handle
// through storetest.DB).
type Store struct {
	db      *gorm.DB
	Dialect string // "sqlite" or "mysql"
	// Warnings are what Open found wrong in the data and could not fix itself (two nodes
	// sharing an IP address…); the daemons log them and "pitasks check" lists them.
	Warnings []string
	target   string // the connection URL without its password, for messages

	scanOnce sync.Once // builds scanners, or scanErr
	scanners *claimScanners
	scanErr  error
}

// sqliteBusyTimeout is how long a SQLite statement waits for another connection's write lock.
const sqliteBusyTimeout = 10 * time.Second

// Open connects to connURL (mysql://user:pass@host[:port]/db or sqlite:///path/file.db)
// and migrates the schema (see migrations.go).
func Open(ctx context.Context, connURL string) (*Store, error) {
	s, err := connect(ctx, connURL, false)
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.Warnings, err = s.ensureKeys(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ErrNoDatabase is returned by InspectSchema for a SQLite file that does not exist yet.
var ErrNoDatabase = errors.New("store: the database does not exist yet")

// InspectSchema says where the schema of the database at connURL stands, and writes
// nothing: SQLite is opened read-only, MariaDB only read. It fails with ErrSchemaNewer for a
// database migrated by a newer program.
func InspectSchema(ctx context.Context, connURL string) (Schema, error) {
	latest := len(migrations())
	s, err := connect(ctx, connURL, true)
	if err != nil {
		return Schema{Latest: latest}, err
	}
	defer s.Close()
	v, err := s.schemaVersion(ctx, s.db)
	if err != nil {
		return Schema{Latest: latest}, err
	}
	sc := Schema{Version: v, Latest: latest}
	if err := s.checkNotNewer(ctx, s.db, v); err != nil {
		return sc, err
	}
	if v == latest {
		_, sc.Warnings, err = s.missingKeys(ctx, s.db)
	}
	return sc, err
}

// connect opens the database; readOnly: without creating or changing anything.
func connect(ctx context.Context, connURL string, readOnly bool) (*Store, error) {
	dialect, dsn, err := ParseURL(connURL)
	if err != nil {
		return nil, err
	}
	target := redactURL(connURL)
	cfg := &gorm.Config{Logger: logger.Discard, TranslateError: true}
	var dialector gorm.Dialector
	switch dialect {
	case "sqlite":
		if readOnly {
			if _, err := os.Stat(dsn); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil, fmt.Errorf("%w: %s", ErrNoDatabase, dsn)
				}
				return nil, fmt.Errorf("store: %w", err)
			}
		} else if dir := filepath.Dir(dsn); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("store: create database folder: %w", err)
			}
		}
		dialector = sqliteDialector(dsn, readOnly)
	case "mysql":
		dialector = mysql.Open(dsn)
	}
	db, err := gorm.Open(dialector, cfg)
	// A new SQLite file is put in WAL mode by the first daemon to open it; another opening
	// it at that moment is told "locked" at once, busy timeout or not: it tries again.
	for deadline := time.Now().Add(sqliteBusyTimeout); dialect == "sqlite" && errors.Is(err, sqlite3.BUSY) && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("store: open %s: %w", target, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		db, err = gorm.Open(sqliteDialector(dsn, readOnly), cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", target, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	if dialect == "sqlite" {
		// One writer at a time: a single connection avoids SQLITE_BUSY between our own goroutines.
		sqlDB.SetMaxOpenConns(1)
	} else {
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(10)
		sqlDB.SetConnMaxLifetime(5 * time.Minute)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: connect %s: %w", target, err)
	}
	return &Store{db: db, Dialect: dialect, target: target}, nil
}

// InTx runs fn with a Store whose every call is part of one transaction: all or nothing.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return fn(&Store{db: tx, Dialect: s.Dialect})
	})
}

// Ping says whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close releases the connections.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// ParseURL turns the configured connection URL into a gorm dialect and DSN.
func ParseURL(connURL string) (dialect, dsn string, err error) {
	u, err := url.Parse(connURL)
	if err != nil {
		return "", "", fmt.Errorf("store: bad connection_url %q: %v", redactURL(connURL), err)
	}
	switch u.Scheme {
	case "sqlite":
		// sqlite:///abs/path.db or sqlite://./relative.db
		p := u.Host + u.Path
		if p == "" {
			return "", "", fmt.Errorf("store: connection_url %q names no database file", redactURL(connURL))
		}
		return "sqlite", p, nil
	case "mysql":
		db := strings.TrimPrefix(u.Path, "/")
		if u.Host == "" || db == "" || u.User == nil {
			return "", "", fmt.Errorf("store: connection_url %q: want mysql://user:password@host[:port]/database", redactURL(connURL))
		}
		host := u.Host
		if u.Port() == "" {
			host += ":3306"
		}
		pass, _ := u.User.Password()
		// The driver's DSN form is user:pass@tcp(host)/db; the password may hold any character.
		// interpolateParams: a statement with arguments is sent once, its values escaped by the
		// driver (utf8mb4 is a safe charset for it), not prepared, executed and closed: one round
		// trip instead of three (TestValuesRoundTrip).
		dsn := fmt.Sprintf("%s:%s@tcp(%s)/%s?parseTime=true&charset=utf8mb4&loc=UTC&timeout=10s&interpolateParams=true",
			u.User.Username(), pass, host, db)
		return "mysql", dsn, nil
	default:
		return "", "", fmt.Errorf("store: connection_url %q: scheme must be mysql:// or sqlite://", redactURL(connURL))
	}
}

// redactURL hides the password of a connection URL so it can be logged.
func redactURL(connURL string) string {
	u, err := url.Parse(connURL)
	if err != nil {
		return "<unparsable url>"
	}
	if u.User == nil {
		return connURL
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// notFound maps gorm's not-found error to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}
