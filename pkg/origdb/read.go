// Package origdb moves a running original PiSeduce site's database over: its users (with their
// Flask-Bcrypt password hashes, so they log in with their old passwords), the owners of its
// user environments, and its current deployments as reservations until their end date. The
// original's MariaDB is only read, in a read-only transaction; our side is written in one
// transaction, all or nothing. Switches, nodes and environments come first, from its
// cluster_desc/ folder (pkg/clusterdesc).
package origdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/piseduce/piseduce/pkg/store"
)

// User is a row of the original's user table. Hash is its _password column: a Flask-Bcrypt
// hash ($2b$12$…), kept as it is.
type User struct {
	ID                          int64
	Email, Hash                 string
	FirstName, LastName, SSHKey string
	EmailConfirmed, Authorized  bool
	Admin                       bool
}

// Deployment is a row of the original's deployment table. The original names the node and
// the environment by name; Duration (hours) and SystemSize ("8" for the whole card, else MB
// more than the image) are text; SystemPassword is the OS password in clear; TempInfo holds
// progress, the state a lost node was lost in, or the name of the environment save_env makes.
type Deployment struct {
	ID                          int64
	UserID                      int64
	State, Process              string
	Environment, NodeName, Name string
	OSUpdate                    bool
	Duration, SystemSize        string
	SystemPassword              string
	PublicKey, InitScript       string
	StartDate, EndDate, Updated *time.Time
	TempInfo                    string
}

// Snapshot is what Read took from the original's database.
type Snapshot struct {
	Users []User
	// Deployments are the current ones: every row not destroyed.
	Deployments []Deployment
}

// Read opens the original's database at connURL (mysql://user:password@host[:port]/db) and
// reads its users and current deployments inside a read-only transaction: nothing but SELECTs,
// so a user with the SELECT privilege only is enough. The original stores local times without
// a zone: loc says which zone they are in (the original's pimaster's).
func Read(ctx context.Context, connURL string, loc *time.Location) (*Snapshot, error) {
	dialect, dsn, err := store.ParseURL(connURL)
	if err != nil {
		return nil, err
	}
	if dialect != "mysql" {
		return nil, errors.New("origdb: the original's database is a MariaDB: give a mysql://user:password@host[:port]/database URL")
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("origdb: %w", err)
	}
	cfg.Loc = loc
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("origdb: %w", err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	where := cfg.Addr + "/" + cfg.DBName
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("origdb: open the original's database %s: %w", where, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	snap := &Snapshot{}
	if snap.Users, err = readUsers(ctx, tx); err != nil {
		return nil, fmt.Errorf("origdb: %s: table user: %w", where, err)
	}
	if snap.Deployments, err = readDeployments(ctx, tx); err != nil {
		return nil, fmt.Errorf("origdb: %s: table deployment: %w", where, err)
	}
	return snap, nil
}

func readUsers(ctx context.Context, tx *sql.Tx) ([]User, error) {
	rows, err := tx.QueryContext(ctx, "SELECT id, email, _password, firstname, lastname, ssh_key, "+
		"email_confirmed, user_authorized, is_admin FROM `user` ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var email, hash, first, last, key sql.NullString
		var confirmed, authorized, admin sql.NullBool
		if err := rows.Scan(&u.ID, &email, &hash, &first, &last, &key, &confirmed, &authorized, &admin); err != nil {
			return nil, err
		}
		u.Email, u.Hash, u.FirstName, u.LastName, u.SSHKey = email.String, hash.String, first.String, last.String, key.String
		u.EmailConfirmed, u.Authorized, u.Admin = confirmed.Bool, authorized.Bool, admin.Bool
		out = append(out, u)
	}
	return out, rows.Err()
}

func readDeployments(ctx context.Context, tx *sql.Tx) ([]Deployment, error) {
	rows, err := tx.QueryContext(ctx, "SELECT id, user_id, state, process, environment, node_name, name, os_update, "+
		"duration, system_size, system_pwd, public_key, init_script, start_date, end_date, updated_at, temp_info "+
		"FROM deployment WHERE state IS NULL OR state <> 'destroyed' ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Deployment
	for rows.Next() {
		var d Deployment
		var state, proc, env, node, name, duration, size, pwd, key, script, info sql.NullString
		var osUpdate sql.NullBool
		var start, end, updated sql.NullTime
		if err := rows.Scan(&d.ID, &d.UserID, &state, &proc, &env, &node, &name, &osUpdate, &duration, &size,
			&pwd, &key, &script, &start, &end, &updated, &info); err != nil {
			return nil, err
		}
		d.State, d.Process, d.Environment, d.NodeName, d.Name = state.String, proc.String, env.String, node.String, name.String
		d.OSUpdate, d.Duration, d.SystemSize, d.SystemPassword = osUpdate.Bool, duration.String, size.String, pwd.String
		d.PublicKey, d.InitScript, d.TempInfo = key.String, script.String, info.String
		d.StartDate, d.EndDate, d.Updated = timePtr(start), timePtr(end), timePtr(updated)
		out = append(out, d)
	}
	return out, rows.Err()
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	return &t.Time
}
