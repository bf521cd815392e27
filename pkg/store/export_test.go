package store

import "context"

// OpenUnmigrated connects without migrating, for tests that build an old database.
func OpenUnmigrated(ctx context.Context, connURL string) (*Store, error) {
	return connect(ctx, connURL, false)
}

// Models lists every model the migrations create.
func Models() []any { return append(allModels(), webModels()...) }

// LatestSchema is the number of migrations this program knows.
func LatestSchema() int { return len(migrations()) }
