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
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("store: not found")

// Store wraps the database. DB is exported for packages that build their own queries.
type Store struct {
	DB      *gorm.DB
	Dialect string // "sqlite" or "mysql"
}

// sqliteBusyTimeout is how long a SQLite statement waits for another connection's write lock.
const sqliteBusyTimeout = 10 * time.Second

// Open connects to connURL (mysql://user:pass@host[:port]/db or sqlite:///path/file.db)
// and migrates the schema.
func Open(ctx context.Context, connURL string) (*Store, error) {
	dialect, dsn, err := ParseURL(connURL)
	if err != nil {
		return nil, err
	}
	cfg := &gorm.Config{Logger: logger.Discard, TranslateError: true}
	var dialector gorm.Dialector
	switch dialect {
	case "sqlite":
		if dir := filepath.Dir(dsn); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("store: create database folder: %w", err)
			}
		}
		dialector = sqliteDialector(dsn, false)
	case "mysql":
		dialector = mysql.Open(dsn)
	}
	db, err := gorm.Open(dialector, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", redactURL(connURL), err)
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
		return nil, fmt.Errorf("store: connect %s: %w", redactURL(connURL), err)
	}
	s := &Store{DB: db, Dialect: dialect}
	if err := db.WithContext(ctx).AutoMigrate(append(allModels(), webModels()...)...); err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	return s, nil
}

// Close releases the connections.
func (s *Store) Close() error {
	sqlDB, err := s.DB.DB()
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
		dsn := fmt.Sprintf("%s:%s@tcp(%s)/%s?parseTime=true&charset=utf8mb4&loc=UTC&timeout=10s",
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
