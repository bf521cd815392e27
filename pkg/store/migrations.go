package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/piseduce/piseduce/pkg/power/powerconf"
)

// migrations is the schema's history: entry i (from 1) brings a database from schema version
// i-1 to i. A database made before versioned migrations (tables but no schema_migrations) is
// at version 0, and the first entry brings it to today's tables.
//
// To add a column (or an index, or a table): add the field to its model, then append one line
// naming the model(s), e.g.
//
//	{"deployments.step_data: typed step data", autoMigrate(&Deployment{})},
//
// Append only: never edit, reorder or remove an entry once it is merged. An entry must be
// safe to run again (autoMigrate is): a daemon that dies halfway runs it again at its next
// start. TestMigrationsCoverModels fails when a model has a column no entry adds.
func migrations() []migration {
	return []migration{
		{"the tables of PiSeduce as AutoMigrate made them before versioned migrations", autoMigrate(append(allModels(), webModels()...)...)},
		{"deployments.hold: rows imported from the original that pitasks leaves alone", autoMigrate(&Deployment{})},
		{"deployments.queued, reservations.time_zone: the wait for a worker; the zone a reservation was entered in", autoMigrate(&Deployment{}, &Reservation{})},
		{"api_tokens.expires_at, read_only: tokens made before tokens expired last 90 days from the upgrade", tokensExpire},
		{"nodes.public_ip, public_port; switches.snmp_port stored as used (0 becomes 161)", publicAddresses},
		{"port_requests, discovery_runs.lease_until: the web's port requests, and leases on what pitasks runs for the web", autoMigrate(&PortRequest{}, &DiscoveryRun{})},
		{"switches.driver, power: the power driver's kind (snmp for existing switches), other kinds' settings; only SNMP switches' addresses are unique", powerDrivers},
		{"deployments.capture_name, capture_description: a save_env request's own columns, out of the step data", captureColumns},
		{"users.must_change_password: one-time passwords given by an admin or pitasks", autoMigrate(&User{})},
		{"nodes.card_device: the disk a node's system is deployed on (" + DefaultCardDevice + " for the nodes there were)", cardDevices},
		{"environments.os_family: how the image configures itself at first boot (plain until measured or set)", autoMigrate(&Environment{})},
		{"pitasks_heartbeats: each pitasks process's last tick and what it holds (worker health, lease takeover)", autoMigrate(&Heartbeat{})},
		{"reservations.ended_by, ended_at, end_reason; deployments.released; users.notify_since; notifications: admins end reservations, users release nodes, e-mail notifications",
			autoMigrate(&Reservation{}, &Deployment{}, &User{}, &Notification{})},
		{"deployments.silent_since, node_recovered: a node that stops answering is power-cycled once per run", autoMigrate(&Deployment{})},
		{"deployments.waiting_since: a state waiting for a boot slot stops its clock", autoMigrate(&Deployment{})},
		{"deployments.waiting_for: what a waiting state waits for (a boot or a copy slot)", autoMigrate(&Deployment{})},
	}
}

func cardDevices(db *gorm.DB) error {
	if err := db.AutoMigrate(&Node{}); err != nil {
		return err
	}
	return db.Exec("UPDATE nodes SET card_device = ? WHERE card_device IS NULL OR card_device = ''", DefaultCardDevice).Error
}

func tokensExpire(db *gorm.DB) error {
	if err := db.AutoMigrate(&APIToken{}); err != nil {
		return err
	}
	return db.Model(&APIToken{}).Where("expires_at IS NULL").Update("expires_at", time.Now().UTC().Add(APITokenTTL)).Error
}

func publicAddresses(db *gorm.DB) error {
	if err := db.AutoMigrate(&Node{}); err != nil {
		return err
	}
	return db.Exec("UPDATE switches SET snmp_port = ? WHERE snmp_port = 0", powerconf.DefaultPort).Error
}

func powerDrivers(db *gorm.DB) error {
	if err := db.AutoMigrate(&Switch{}); err != nil {
		return err
	}
	// uq_switches_snmp_address (keys.go) replaces it: command switches may share an address.
	if db.Migrator().HasIndex("switches", "uq_switches_address") {
		return db.Migrator().DropIndex("switches", "uq_switches_address")
	}
	return nil
}

// captureColumns moves the name and description of the environment a save_env request makes
// out of the step data (the scratch column, where the web wrote them in the request) into
// their own columns; the rest of the JSON is save_env's step data as it was.
func captureColumns(db *gorm.DB) error {
	if err := db.AutoMigrate(&Deployment{}); err != nil {
		return err
	}
	var rows []struct {
		ID      uint
		Scratch string
	}
	if err := db.Model(&Deployment{}).Select("id, scratch").Where("capture_name = '' AND scratch LIKE ?", "%capture_name%").
		Scan(&rows).Error; err != nil {
		return err
	}
	for _, r := range rows {
		var c struct {
			Name        string `json:"capture_name"`
			Description string `json:"capture_description"`
		}
		if json.Unmarshal([]byte(r.Scratch), &c) != nil || c.Name == "" {
			continue // not a capture request: nothing to move
		}
		if err := db.Model(&Deployment{}).Where("id = ?", r.ID).
			Updates(map[string]any{"capture_name": c.Name, "capture_description": c.Description}).Error; err != nil {
			return err
		}
	}
	return nil
}

type migration struct {
	name  string
	apply func(*gorm.DB) error
}

// autoMigrate brings the tables of models to their structs: new tables, columns and indexes.
func autoMigrate(models ...any) func(*gorm.DB) error {
	return func(db *gorm.DB) error { return db.AutoMigrate(models...) }
}

// SchemaMigration records one applied migration.
type SchemaMigration struct {
	Version   int    `gorm:"primaryKey;autoIncrement:false"`
	Name      string `gorm:"size:255;not null"`
	AppliedAt time.Time
}

// migrationWait bounds how long a daemon waits for another one's migration to end.
const migrationWait = 10 * time.Minute

// ErrSchemaNewer is returned when the database was migrated by a newer program.
var ErrSchemaNewer = errors.New("store: the database schema is newer than this program")

// Schema is where a database's schema stands for this program.
type Schema struct {
	Version int // migrations applied (0: a new database, or one from before versioned migrations)
	Latest  int // migrations this program knows
	// Warnings: rows that keep a unique index out (two nodes sharing an IP…), as Store.Warnings.
	Warnings []string
}

// migrate brings the schema to the latest version. Only one daemon migrates: under a lock
// (MariaDB GET_LOCK; SQLite an immediate write transaction), a second one starting at the
// same time waits, then finds the schema current. A current schema costs one read.
func (s *Store) migrate(ctx context.Context) error {
	all := migrations()
	v, err := s.schemaVersion(ctx, s.db)
	if err != nil {
		return err
	}
	if v == len(all) {
		return nil
	}
	if err := s.checkNotNewer(ctx, s.db, v); err != nil {
		return err
	}
	return s.withMigrationLock(ctx, func(db *gorm.DB) error {
		if !db.Migrator().HasTable(&SchemaMigration{}) {
			if err := db.Migrator().CreateTable(&SchemaMigration{}); err != nil {
				return fmt.Errorf("store: create schema_migrations: %w", err)
			}
		}
		v, err := s.schemaVersion(ctx, db)
		if err != nil {
			return err
		}
		if err := s.checkNotNewer(ctx, db, v); err != nil {
			return err
		}
		for i := v; i < len(all); i++ {
			m := all[i]
			if err := m.apply(db); err != nil {
				return fmt.Errorf("store: migration %d (%s): %w", i+1, m.name, err)
			}
			if err := db.Create(&SchemaMigration{Version: i + 1, Name: m.name, AppliedAt: time.Now().UTC()}).Error; err != nil {
				return fmt.Errorf("store: record migration %d: %w", i+1, err)
			}
		}
		return nil
	})
}

// schemaVersion is the last migration applied (0 without a schema_migrations table).
func (s *Store) schemaVersion(ctx context.Context, db *gorm.DB) (int, error) {
	db = db.WithContext(ctx)
	if !db.Migrator().HasTable(&SchemaMigration{}) {
		return 0, nil
	}
	var v sql.NullInt64
	if err := db.Model(&SchemaMigration{}).Select("MAX(version)").Scan(&v).Error; err != nil {
		return 0, fmt.Errorf("store: read the schema version: %w", err)
	}
	return int(v.Int64), nil
}

// checkNotNewer refuses a database at version v if this program does not know v.
func (s *Store) checkNotNewer(ctx context.Context, db *gorm.DB, v int) error {
	latest := len(migrations())
	if v <= latest {
		return nil
	}
	var newer []SchemaMigration // their names only help the message: an error reading them is no matter
	db.WithContext(ctx).Where("version > ?", latest).Order("version").Find(&newer)
	names := make([]string, len(newer))
	for i, m := range newer {
		names[i] = fmt.Sprintf("%d %q", m.Version, m.Name)
	}
	return fmt.Errorf("%w: %s is at schema version %d, this program knows versions up to %d (newer migrations: %s); "+
		"run the newer PiSeduce that migrated it, or restore a backup from before that upgrade",
		ErrSchemaNewer, s.target, v, latest, strings.Join(names, ", "))
}

// withMigrationLock runs fn on one connection while this process alone may migrate.
func (s *Store) withMigrationLock(ctx context.Context, fn func(*gorm.DB) error) error {
	return s.db.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		conn = conn.Session(&gorm.Session{NewDB: true}) // each call a new statement, on this connection
		if s.Dialect == "sqlite" {
			return s.sqliteMigration(conn, fn)
		}
		// MariaDB commits each DDL statement by itself: a named lock on this connection (the
		// server releases it if the daemon dies) keeps other daemons out.
		var got sql.NullInt64
		if err := conn.Raw("SELECT GET_LOCK(CONCAT('piseduce.migrate.', DATABASE()), ?)", int(migrationWait.Seconds())).Scan(&got).Error; err != nil {
			return fmt.Errorf("store: wait for the migration lock of %s: %w", s.target, err)
		}
		if got.Int64 != 1 {
			return fmt.Errorf("store: another daemon has been migrating %s for %s: not waiting longer", s.target, migrationWait)
		}
		defer conn.Exec("SELECT RELEASE_LOCK(CONCAT('piseduce.migrate.', DATABASE()))")
		return fn(conn)
	})
}

// sqliteMigration runs fn in one immediate transaction: it takes SQLite's write lock at BEGIN
// (waiting up to migrationWait for another daemon's migration), and DDL is transactional.
// Foreign keys are off around it, as SQLite's procedure for changing a table says: a table
// rebuilt with them on would cascade its implicit DELETE to the rows that point to it. The
// transaction commits only if it leaves no more broken references than it found.
func (s *Store) sqliteMigration(conn *gorm.DB, fn func(*gorm.DB) error) error {
	for _, q := range []string{"PRAGMA foreign_keys = OFF", fmt.Sprintf("PRAGMA busy_timeout = %d", migrationWait.Milliseconds())} {
		if err := conn.Exec(q).Error; err != nil {
			return fmt.Errorf("store: %s: %w", q, err)
		}
	}
	defer conn.Exec(fmt.Sprintf("PRAGMA busy_timeout = %d", sqliteBusyTimeout.Milliseconds()))
	defer conn.Exec("PRAGMA foreign_keys = ON")
	return conn.Transaction(func(tx *gorm.DB) error {
		broken := func() (int, error) {
			var rows []map[string]any
			err := tx.Raw("PRAGMA foreign_key_check").Scan(&rows).Error
			return len(rows), err
		}
		before, err := broken()
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			return err
		}
		after, err := broken()
		if err != nil {
			return err
		}
		if after > before {
			return fmt.Errorf("store: the migration would leave %d rows whose foreign keys point nowhere: not applied", after-before)
		}
		return nil
	})
}
