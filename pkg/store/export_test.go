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

// Observe takes d's snapshot of its observed columns, as ClaimDue does.
func Observe(d *Deployment) { observe(d) }

// ObservedColumns names the columns only pitasks writes.
func ObservedColumns() []string {
	var out []string
	for _, c := range observedColumns {
		out = append(out, c.name)
	}
	return out
}

// ObservedChanges are the observed columns a save of d would write, with their values.
func ObservedChanges(d *Deployment) map[string]any {
	w := planObserved(&Save{D: d})
	out := map[string]any{}
	for i, c := range observedColumns {
		if w.cols&(1<<i) != 0 {
			out[c.name] = c.get(d)
		}
	}
	return out
}
