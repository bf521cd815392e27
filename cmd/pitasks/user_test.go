package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

// pitasks runs this test binary as pitasks with args; it returns stdout, stderr and the exit status.
func pitasks(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PITASKS_AS_MAIN=1")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		status = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), status
}

var oneTimeRE = regexp.MustCompile(`(?m)^one-time password: (\S+)$`)

// TestUserCommand: -h and wrong command lines need no configuration (exit 0 and 2); on a real
// database, create-admin and reset-password print a one-time password that logs in and must be
// changed, and a reset ends the account's sessions and API tokens.
func TestUserCommand(t *testing.T) {
	for _, args := range [][]string{{"user", "-h"}, {"user", "--help"}} {
		out, _, status := pitasks(t, append([]string{"-config", "/nonexistent/seducepp.conf"}, args...)...)
		if status != 0 || !strings.Contains(out, "usage: pitasks user create-admin EMAIL") {
			t.Errorf("pitasks %v: status %d\n%s", args, status, out)
		}
	}
	for _, args := range [][]string{{"user"}, {"user", "create-admin"}, {"user", "frobnicate", "a@example.org"},
		{"user", "create-admin", "not an e-mail"}, {"user", "-x", "create-admin", "a@example.org"},
		{"user", "reset-password", "a@example.org", "extra"}} {
		_, errOut, status := pitasks(t, append([]string{"-config", "/nonexistent/seducepp.conf"}, args...)...)
		if status != 2 || !strings.Contains(errOut, "usage: pitasks user") {
			t.Errorf("pitasks %v: status %d, want 2\n%s", args, status, errOut)
		}
	}

	dir := t.TempDir()
	cfg, _ := testConfig(t, dir)
	out, errOut, status := pitasks(t, "-config", cfg, "user", "create-admin", "Root@Lab.example.org")
	m := oneTimeRE.FindStringSubmatch(out)
	if status != 0 || m == nil {
		t.Fatalf("create-admin: status %d\n%s%s", status, out, errOut)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "piseduce.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByEmail(ctx, "root@lab.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !u.Admin || !u.Authorized || !u.EmailConfirmed || !u.MustChangePassword || !auth.CheckPassword(u.PasswordHash, m[1]) {
		t.Fatalf("the new admin: %+v", u)
	}
	if _, errOut, status := pitasks(t, "-config", cfg, "user", "create-admin", "root@lab.example.org"); status != 1 || !strings.Contains(errOut, "already has an account") {
		t.Errorf("create-admin twice: status %d\n%s", status, errOut)
	}
	if _, errOut, status := pitasks(t, "-config", cfg, "user", "reset-password", "nobody@lab.example.org"); status != 1 || !strings.Contains(errOut, "no account has the e-mail") {
		t.Errorf("reset-password of nobody: status %d\n%s", status, errOut)
	}

	// The admin chose a password and made a token; a reset ends both.
	hash, err := auth.HashPassword("the admin's own password")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetUserPassword(ctx, u.ID, hash, ""); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.CreateSession(ctx, &store.Session{Hash: "session", UserID: u.ID, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAPIToken(ctx, &store.APIToken{UserID: u.ID, Hash: "token", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	out, errOut, status = pitasks(t, "-config", cfg, "user", "reset-password", "root@lab.example.org")
	m2 := oneTimeRE.FindStringSubmatch(out)
	if status != 0 || m2 == nil || m2[1] == m[1] {
		t.Fatalf("reset-password: status %d\n%s%s", status, out, errOut)
	}
	if u, err = st.User(ctx, u.ID); err != nil || !u.MustChangePassword || !auth.CheckPassword(u.PasswordHash, m2[1]) ||
		auth.CheckPassword(u.PasswordHash, "the admin's own password") {
		t.Fatalf("after reset-password: %+v, %v", u, err)
	}
	if _, err := st.SessionByHash(ctx, "session", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the session survived: %v", err)
	}
	if _, _, err := st.UserByAPIToken(ctx, "token", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the API token survived: %v", err)
	}
}
