package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/testenv"
)

const module = "github.com/piseduce/piseduce/"

// notInFrontend are the packages that talk to switches and nodes, or run pitasks' work: the
// frontend only writes requests, pitasks carries them out.
var notInFrontend = []string{
	"github.com/gosnmp/gosnmp",
	"golang.org/x/crypto/ssh",
	module + "pkg/engine",
	module + "pkg/deploy",
	module + "pkg/netboot",
	module + "pkg/power",
	module + "pkg/discovery",
	module + "pkg/remote",
	module + "pkg/requests",
}

// frontendMay are the packages under notInFrontend that pifrontend needs and that link none of
// the rest: a switch's power settings and their validation, without the drivers.
var frontendMay = map[string]bool{
	module + "pkg/power/powerconf": true,
}

// TestFrontendOnlyWritesRequests: `go list -deps ./cmd/pifrontend` holds no SNMP, SSH, engine,
// deploy, netboot, power (but its settings), discovery or requests package.
func TestFrontendOnlyWritesRequests(t *testing.T) {
	goCmd := testenv.NeedCommand(t, "go")
	out, err := exec.Command(goCmd, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	short := func(p string) string { return strings.TrimPrefix(p, module) }
	reached := map[string]string{} // package → the package that imports it
	queue := []string{module + "cmd/pifrontend"}
	reached[queue[0]] = ""
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, imp := range imports[p] {
			if _, seen := reached[imp]; !seen {
				reached[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	for _, bad := range notInFrontend {
		for p := range reached {
			if p != bad && !strings.HasPrefix(p, bad+"/") || frontendMay[p] {
				continue
			}
			chain := []string{short(p)}
			for q := reached[p]; q != ""; q = reached[q] {
				chain = append([]string{short(q)}, chain...)
			}
			t.Errorf("pifrontend links %s: %s", p, strings.Join(chain, " -> "))
		}
	}
}
