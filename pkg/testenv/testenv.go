// Package testenv decides what a test does when a real part it needs (root, snmpd, sshd,
// MariaDB, Chromium…) is missing: on a developer's laptop it skips loudly; in CI
// (PISEDUCE_REQUIRE_ALL=1, set by .ci/run) a skip would hide a gap, so it fails.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether missing real parts must fail the tests.
func Strict() bool { return os.Getenv("PISEDUCE_REQUIRE_ALL") == "1" }

// Need skips (or, in strict mode, fails) t unless ok; what names the missing part.
func Need(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if Strict() {
		t.Fatalf("required for this test and missing: %s", what)
	}
	t.Skipf("SKIPPED, missing: %s (set PISEDUCE_REQUIRE_ALL=1 to make this fatal)", what)
}

// NeedRoot needs the test to run as root (namespaces, loop devices, sshd).
func NeedRoot(t testing.TB) {
	t.Helper()
	Need(t, os.Geteuid() == 0, "root")
}

// NeedCommand needs every named program on PATH and returns the path of the first.
func NeedCommand(t testing.TB, names ...string) string {
	t.Helper()
	first := ""
	for _, n := range names {
		p, err := exec.LookPath(n)
		Need(t, err == nil, "program "+n)
		if first == "" {
			first = p
		}
	}
	return first
}

// FreePort returns a TCP port of 127.0.0.1 that nobody listens on now: for a server a test
// starts, or as an address where nothing answers.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
