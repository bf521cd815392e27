package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/piseduce/piseduce/pkg/power"
)

// The unique indexes behind the duplicate checks of inventory.go, for what gorm's tags cannot
// say: an empty IP, MAC or serial means "not known yet", and two unknowns do not collide.
// SQLite has partial indexes; MariaDB has none, so there the index is on a virtual column
// that is NULL for an empty value (NULLs never collide).

type uniqueKey struct {
	index, table string
	columns      []string
	// optional: one column whose empty values are left out.
	optional bool
	size     int
}

func uniqueKeys() []uniqueKey {
	return []uniqueKey{
		{index: "uq_nodes_ip", table: "nodes", columns: []string{"ip"}, optional: true, size: 64},
		{index: "uq_nodes_mac", table: "nodes", columns: []string{"mac"}, optional: true, size: 17},
		{index: "uq_nodes_serial", table: "nodes", columns: []string{"serial"}, optional: true, size: 16},
		{index: "uq_switches_address", table: "switches", columns: []string{"ip", "snmp_port"}},
	}
}

// migrateKeys creates the unique indexes. Rows that already break one are reported (naming
// both) instead: the index is created on the first start after they are fixed.
func (s *Store) migrateKeys(ctx context.Context) ([]string, error) {
	db := s.DB.WithContext(ctx)
	// A switch's SNMP port is stored as used, so that 0 and 161 are the same address.
	if err := db.Exec("UPDATE switches SET snmp_port = ? WHERE snmp_port = 0", power.DefaultPort).Error; err != nil {
		return nil, err
	}
	var warnings []string
	for _, k := range uniqueKeys() {
		on := make([]string, len(k.columns))
		for i, c := range k.columns {
			on[i] = fmt.Sprintf("a.%s = b.%s", c, c)
		}
		q := fmt.Sprintf("SELECT a.name AS a, b.name AS b, %s AS v FROM %s a JOIN %s b ON %s AND a.id < b.id",
			"a."+strings.Join(k.columns, " || ':' || a."), k.table, k.table, strings.Join(on, " AND "))
		if s.Dialect == "mysql" {
			q = fmt.Sprintf("SELECT a.name AS a, b.name AS b, CONCAT_WS(':', a.%s) AS v FROM %s a JOIN %s b ON %s AND a.id < b.id",
				strings.Join(k.columns, ", a."), k.table, k.table, strings.Join(on, " AND "))
		}
		if k.optional {
			q += fmt.Sprintf(" WHERE a.%s <> ''", k.columns[0])
		}
		var dup []struct{ A, B, V string }
		if err := db.Raw(q + " LIMIT 1").Scan(&dup).Error; err != nil {
			return nil, fmt.Errorf("store: looking for duplicates in %s: %w", k.table, err)
		}
		if len(dup) > 0 {
			warnings = append(warnings, fmt.Sprintf("%s %s and %s share %s %s: change one (the database cannot refuse such duplicates until then)",
				k.table, label(dup[0].A), label(dup[0].B), strings.Join(k.columns, ":"), dup[0].V))
			continue
		}
		for _, stmt := range k.ddl(s.Dialect) {
			if err := db.Exec(stmt).Error; err != nil {
				return nil, fmt.Errorf("store: unique index %s: %w", k.index, err)
			}
		}
	}
	return warnings, nil
}

// ddl is what creates the index, if it does not exist yet.
func (k uniqueKey) ddl(dialect string) []string {
	cols := strings.Join(k.columns, ", ")
	switch {
	case !k.optional:
		return []string{fmt.Sprintf("CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (%s)", k.index, k.table, cols)}
	case dialect == "mysql":
		key := k.columns[0] + "_key"
		return []string{
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s VARCHAR(%d) AS (NULLIF(%s, '')) VIRTUAL", k.table, key, k.size, cols),
			fmt.Sprintf("CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (%s)", k.index, k.table, key),
		}
	}
	return []string{fmt.Sprintf("CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (%s) WHERE %s <> ''", k.index, k.table, cols, cols)}
}
