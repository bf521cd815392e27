package store

import (
	"context"
	"fmt"
	"strings"
)

// stampedTables are the tables what pifrontend shows is made of, with the columns whose
// maximum moves when a row is written: every write through gorm sets updated_at, a new row
// raises the largest id, a deleted one lowers the count.
var stampedTables = []struct{ table, columns string }{
	{"deployments", "COUNT(*), MAX(id), MAX(updated_at)"},
	{"reservations", "COUNT(*), MAX(id), MAX(updated_at)"},
	{"reservation_nodes", "COUNT(*), MAX(node_id), MAX(reservation_id)"},
	{"nodes", "COUNT(*), MAX(id), MAX(updated_at)"},
	{"switches", "COUNT(*), MAX(id), MAX(updated_at)"},
	{"environments", "COUNT(*), MAX(id), MAX(updated_at)"},
	{"users", "COUNT(*), MAX(id), MAX(updated_at)"},
	{"sessions", "COUNT(*), MAX(id), MAX(expires_at)"},
	{"api_tokens", "COUNT(*), MAX(id), MAX(expires_at)"},
}

var changeStampQuery = func() string {
	parts := make([]string, len(stampedTables))
	for i, t := range stampedTables {
		parts[i] = fmt.Sprintf("SELECT '%s', %s FROM %s", t.table, t.columns, t.table)
	}
	return strings.Join(parts, " UNION ALL ")
}()

// ChangeStamp is a cheap summary of the tables pages are made of (one query, a few index
// scans): it differs from the last one whenever pitasks or pifrontend has created, changed or
// deleted a row in them since. Caches in pifrontend compare it instead of re-reading what it
// summarises. Two changes of the same row within the database's time resolution may leave
// it unchanged, so a cache must still expire on its own (pifrontend's do within a tick).
func (s *Store) ChangeStamp(ctx context.Context) (string, error) {
	rows, err := s.db.WithContext(ctx).Raw(changeStampQuery).Rows()
	if err != nil {
		return "", fmt.Errorf("store: unable to read the change stamp: %w", err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var table string
		var count int64
		var a, c any
		if err := rows.Scan(&table, &count, &a, &c); err != nil {
			return "", fmt.Errorf("store: unable to read the change stamp: %w", err)
		}
		fmt.Fprintf(&b, "%s:%d:%v:%v;", table, count, a, c)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("store: unable to read the change stamp: %w", err)
	}
	return b.String(), nil
}
