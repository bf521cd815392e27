package store

// webModels lists the tables that only the web interface uses.
func webModels() []any { return []any{} }
