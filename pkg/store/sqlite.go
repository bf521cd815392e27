package store

import (
	"fmt"
	"net/url"

	"github.com/ncruces/go-sqlite3/gormlite"
	"gorm.io/gorm"
)

// sqliteTimeFormat is how times are stored: the format of the databases made before this
// driver (glebarez/sqlite), so old and new rows compare as text in the same order.
const sqliteTimeFormat = "2006-01-02 15:04:05.999999999-07:00"

// sqliteDialector opens the SQLite file at path (ncruces/go-sqlite3: SQLite compiled to Go). Transactions
// are immediate: they take the write lock at BEGIN, waiting up to the busy timeout, rather
// than failing when they first write after another process (the other daemon) did.
// readOnly opens the file read-only: SQLite may create the empty -wal and -shm files it
// needs to read a WAL database, and writes nothing.
func sqliteDialector(path string, readOnly bool) gorm.Dialector {
	q := url.Values{}
	q.Set("_timefmt", sqliteTimeFormat)
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	if readOnly {
		q.Set("mode", "ro")
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
		for _, p := range []string{"journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
			q.Add("_pragma", p)
		}
	}
	return gormlite.Open((&url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: q.Encode()}).String())
}
