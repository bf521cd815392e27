package version

import (
	"runtime"
	"strings"
	"testing"
)

// TestGet: a test binary has no linker values and no VCS stamp: every field still says
// something, and String names them all. (The linker's values are tested on the packaged
// binaries, admin/package_test.go.)
func TestGet(t *testing.T) {
	i := Get()
	if i.GoVersion != runtime.Version() || i.Version == "" || i.Commit == "" || i.Date == "" {
		t.Errorf("Get() = %+v", i)
	}
	s := Info{Version: "1.2.0", Commit: "abc123", Date: "2030-01-02T03:04:05Z", GoVersion: "go1.26"}.String()
	if want := "1.2.0 (commit abc123, built 2030-01-02T03:04:05Z, go1.26)"; s != want {
		t.Errorf("String() = %q, want %q", s, want)
	}
	if !strings.Contains(i.String(), i.Commit) {
		t.Errorf("String() %q lacks the commit", i.String())
	}
}
