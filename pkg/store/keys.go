package store

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"
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
	// snmpOnly: only the rows of SNMP switches are keyed (a command switch has no SNMP agent).
	snmpOnly bool
}

func uniqueKeys() []uniqueKey {
	return []uniqueKey{
		{index: "uq_nodes_ip", table: "nodes", columns: []string{"ip"}, optional: true, size: 64},
		{index: "uq_nodes_mac", table: "nodes", columns: []string{"mac"}, optional: true, size: 17},
		{index: "uq_nodes_serial", table: "nodes", columns: []string{"serial"}, optional: true, size: 16},
		{index: "uq_switches_snmp_address", table: "switches", columns: []string{"ip", "snmp_port"}, snmpOnly: true, size: 80},
	}
}

// ensureKeys creates the unique indexes that are missing, under the migration lock. Rows that
// already break one are reported (naming both) instead: the index is created on the first
// start after they are fixed. Once every index exists this only reads.
func (s *Store) ensureKeys(ctx context.Context) ([]string, error) {
	missing, warnings, err := s.missingKeys(ctx, s.db)
	if err != nil || len(missing) == 0 {
		return warnings, err
	}
	err = s.withMigrationLock(ctx, func(db *gorm.DB) error {
		missing, warnings, err = s.missingKeys(ctx, db) // another daemon may have made them
		if err != nil {
			return err
		}
		for _, k := range missing {
			for _, stmt := range k.ddl(s.Dialect) {
				if err := db.Exec(stmt).Error; err != nil {
					return fmt.Errorf("store: unique index %s: %w", k.index, err)
				}
			}
		}
		return nil
	})
	return warnings, err
}

// missingKeys reads which unique indexes are missing: those the data allows, and a warning for
// each one that rows sharing a value keep out.
func (s *Store) missingKeys(ctx context.Context, db *gorm.DB) (missing []uniqueKey, warnings []string, err error) {
	db = db.WithContext(ctx)
	for _, k := range uniqueKeys() {
		if db.Migrator().HasIndex(k.table, k.index) {
			continue
		}
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
		if k.snmpOnly {
			q += " WHERE a.driver = 'snmp' AND b.driver = 'snmp'"
		}
		var dup []struct{ A, B, V string }
		if err := db.Raw(q + " LIMIT 1").Scan(&dup).Error; err != nil {
			return nil, nil, fmt.Errorf("store: looking for duplicates in %s: %w", k.table, err)
		}
		if len(dup) > 0 {
			warnings = append(warnings, fmt.Sprintf("%s %s and %s share %s %s: change one (the database cannot refuse such duplicates until then)",
				k.table, label(dup[0].A), label(dup[0].B), strings.Join(k.columns, ":"), dup[0].V))
			continue
		}
		missing = append(missing, k)
	}
	return missing, warnings, nil
}

// ddl is what creates the index, if it does not exist yet.
func (k uniqueKey) ddl(dialect string) []string {
	cols := strings.Join(k.columns, ", ")
	switch {
	case k.snmpOnly && dialect == "mysql":
		// MariaDB has no partial index: a virtual column, NULL for other drivers, is keyed.
		return []string{
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS snmp_address_key VARCHAR(%d) AS (IF(driver = 'snmp', CONCAT_WS(':', %s), NULL)) VIRTUAL", k.table, k.size, cols),
			fmt.Sprintf("CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (snmp_address_key)", k.index, k.table),
		}
	case k.snmpOnly:
		return []string{fmt.Sprintf("CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (%s) WHERE driver = 'snmp'", k.index, k.table, cols)}
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
