package store_test

import (
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/testenv"
)

const module = "github.com/piseduce/piseduce"

// databaseImports are gorm and the SQL drivers: only the store may speak to our database.
var databaseImports = []string{
	"gorm.io/",
	"github.com/go-sql-driver/mysql",
	"github.com/ncruces/go-sqlite3",
	"github.com/glebarez/",
	"modernc.org/sqlite",
}

// foreignDatabase are the packages outside the store that may import a driver, each with why.
var foreignDatabase = map[string]string{
	module + "/pkg/origdb": "reads the original PiSeduce's MariaDB database (its schema, read-only) to import it: not ours",
}

// TestStoreIsClosed: no package outside pkg/store and its test support imports gorm or a SQL
// driver, in its program or its tests; every query is a named method of the store.
func TestStoreIsClosed(t *testing.T) {
	goCmd := testenv.NeedCommand(t, "go")
	out, err := exec.Command(goCmd, "list", "-f",
		"{{.ImportPath}} {{join .Imports \" \"}} {{join .TestImports \" \"}} {{join .XTestImports \" \"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var bad []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		p := f[0]
		if p == module+"/pkg/store" || strings.HasPrefix(p, module+"/pkg/store/") || foreignDatabase[p] != "" {
			continue
		}
		for _, imp := range f[1:] {
			for _, db := range databaseImports {
				if strings.HasPrefix(imp, db) {
					bad = append(bad, p+" imports "+imp)
				}
			}
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("%s: add a named method to pkg/store (or, in a test, use storetest)", b)
	}
	if len(strings.Split(string(out), "\n")) < 20 {
		t.Fatalf("go list found too few packages to prove anything:\n%s", out)
	}
}
