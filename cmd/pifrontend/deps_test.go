package main

import (
	"os/exec"
	"sort"
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

// knownLeaks are the imports that still pull one of them into pifrontend, each with why. The
// test fails when one is gone, so that it is struck off here: the list only shrinks.
var knownLeaks = map[string]string{
	"pkg/web -> golang.org/x/crypto/ssh": "users' SSH public keys are parsed and normalized with ssh.ParseAuthorizedKey",
}

// TestFrontendOnlyWritesRequests: apart from knownLeaks, `go list -deps ./cmd/pifrontend`
// holds no SNMP, SSH, engine, deploy, netboot, power, discovery or requests package.
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
	// Walk from pifrontend, not through the known leaks.
	used := map[string]bool{}
	reached := map[string]string{} // package → the package that imports it
	queue := []string{module + "cmd/pifrontend"}
	reached[queue[0]] = ""
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, imp := range imports[p] {
			if edge := short(p) + " -> " + short(imp); knownLeaks[edge] != "" {
				used[edge] = true
				continue
			}
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
	var gone []string
	for edge := range knownLeaks {
		if !used[edge] {
			gone = append(gone, edge)
		}
	}
	sort.Strings(gone)
	for _, edge := range gone {
		t.Errorf("%s no longer leaks into pifrontend: strike it off knownLeaks", edge)
	}
}
