package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/testenv"
)

// TestLinksNoDaemon: the command line shares the API's JSON objects with pifrontend
// (pkg/apijson) but links none of its web framework, store or drivers.
func TestLinksNoDaemon(t *testing.T) {
	goCmd := testenv.NeedCommand(t, "go")
	out, err := exec.Command(goCmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !strings.Contains(string(out), "/pkg/apijson\n") {
		t.Fatalf("piseduce does not link pkg/apijson; go list -deps:\n%s", out)
	}
	for _, p := range deps {
		for _, bad := range []string{"github.com/labstack/echo", "gorm.io/", "/pkg/store", "/pkg/web", "/pkg/engine", "/pkg/power"} {
			if strings.Contains(p, bad) {
				t.Errorf("piseduce links %s", p)
			}
		}
	}
}
