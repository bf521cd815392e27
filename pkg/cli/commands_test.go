package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/web"
)

// buildCommands builds every binary of cmd/ once, into a folder of the test.
func buildCommands(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "github.com/piseduce/piseduce/cmd/...")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
	return dir
}

type result struct {
	code           int
	stdout, stderr string
}

func runBin(t *testing.T, bin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Dir = t.TempDir() // no ./seducepp.conf found by accident
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return result{cmd.ProcessState.ExitCode(), out.String(), errOut.String()}
}

// subcommands are the names listed under "commands" in a usage.
func subcommands(usage string) []string {
	var names []string
	in := false
	for _, l := range strings.Split(usage, "\n") {
		switch {
		case strings.HasPrefix(l, "commands"):
			in = true
		case in && strings.HasPrefix(l, "  "):
			names = append(names, strings.Fields(l)[0])
		case in:
			in = false
		}
	}
	return names
}

// listingConfig is a configuration whose SQLite database holds a seeded cluster of two nodes,
// its switch on a loopback UDP port that never answers.
func listingConfig(t *testing.T) string {
	dir := t.TempDir()
	url := "sqlite://" + filepath.Join(dir, "piseduce.db")
	st, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	c := storetest.Seed(t, st, 2)
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })
	if err := storetest.DB(st).Model(&c.Switch).Update("snmp_port", dead.LocalAddr().(*net.UDPAddr).Port).Error; err != nil {
		t.Fatal(err)
	}
	st.Close()
	conf := filepath.Join(dir, "seducepp.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[db]\nconnection_url = %s\n", url)), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// loggedIn logs piseduce in, through XDG_CONFIG_HOME, to a real pifrontend on a seeded
// SQLite database, with an API token of its user.
func loggedIn(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, st, 2)
	tok := auth.NewToken("psd_")
	if err := st.CreateAPIToken(ctx, &store.APIToken{UserID: c.User.ID, Name: "test", Hash: auth.HashToken(tok),
		ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s, err := web.New(ctx, web.Options{Store: st, Config: config.Default(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, "piseduce"), 0o700); err != nil {
		t.Fatal(err)
	}
	login := fmt.Sprintf(`{"url": %q, "token": %q}`, srv.URL, tok)
	if err := os.WriteFile(filepath.Join(home, "piseduce", "login.json"), []byte(login), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CONFIG_HOME", home)
}

// TestCommandsFollowTheConventions runs every command and subcommand of every binary in cmd/
// with -h, --help and a bogus flag, each listing with --json, and wrong arguments.
func TestCommandsFollowTheConventions(t *testing.T) {
	dir := buildCommands(t)
	conf := listingConfig(t)
	loggedIn(t)
	bins, err := os.ReadDir(dir)
	if err != nil || len(bins) < 2 {
		t.Fatalf("built %d binaries: %v", len(bins), err)
	}
	// The listings, and how each one ends against listingConfig (the switch does not answer).
	listings := map[string]int{"pitasks nodes": 0, "pitasks switches": 1,
		"piseduce nodes": 0, "piseduce envs": 0, "piseduce reservations": 0}
	// What each binary needs before a listing: pitasks its configuration (piseduce its login,
	// from the environment: see loggedIn).
	before := map[string][]string{"pitasks": {"-config", conf}}
	seen := map[string]bool{}
	for _, b := range bins {
		name, bin := b.Name(), filepath.Join(dir, b.Name())
		top := runBin(t, bin, "-h")
		commands := [][]string{nil}
		for _, sub := range subcommands(top.stdout) {
			commands = append(commands, []string{sub})
		}
		if len(commands) > 1 {
			r := runBin(t, bin, "no-such-command")
			if r.code != 2 || !strings.Contains(r.stderr, `unknown command "no-such-command"`) || !strings.Contains(r.stderr, "usage: "+name) {
				t.Errorf("%s no-such-command: exit %d, stderr %q", name, r.code, r.stderr)
			}
		}
		for _, sub := range commands {
			full := strings.Join(append([]string{name}, sub...), " ")
			var usage string
			for _, help := range []string{"-h", "-help", "--help"} {
				r := runBin(t, bin, append(sub, help)...)
				if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: "+full+" ") && r.stdout != "usage: "+full+"\n" &&
					!strings.HasPrefix(r.stdout, "usage: "+full+"\n") || r.stderr != "" {
					t.Errorf("%s %s: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout", full, help, r.code, r.stdout, r.stderr)
				}
				usage = r.stdout
			}
			r := runBin(t, bin, append(sub, "--no-such-flag")...)
			if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "flag provided but not defined: -no-such-flag") ||
				!strings.Contains(r.stderr, "usage: "+full) {
				t.Errorf("%s --no-such-flag: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", full, r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(usage, "  -json\n") {
				if _, ok := listings[full]; ok {
					t.Errorf("%s has no --json:\n%s", full, usage)
				}
				continue
			}
			want, ok := listings[full]
			if !ok {
				t.Errorf("%s accepts --json: add it to the listings of this test", full)
				continue
			}
			seen[full] = true
			r = runBin(t, bin, append(append(slices.Clone(before[name]), sub...), "--json")...)
			var doc map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != want {
				t.Errorf("%s --json: exit %d (want %d), %v\nstdout %s\nstderr %s", full, r.code, want, err, r.stdout, r.stderr)
			}
		}
	}
	for l := range listings {
		if !seen[l] {
			t.Errorf("listing %s was not run", l)
		}
	}

	// Missing, extra and wrong arguments: exit 2, the error and the usage on stderr.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pifrontend", "extra"}, `unexpected argument "extra"`},
		{[]string{"pitasks", "import-cluster"}, "missing argument: DIR"},
		{[]string{"pitasks", "import-cluster", "a", "b"}, `unexpected argument "b"`},
		{[]string{"pitasks", "nodes", "node-1", "node-2"}, `unexpected argument "node-2"`},
		{[]string{"pitasks", "port", "sw1", "1"}, "missing argument"},
		{[]string{"pitasks", "-config", conf, "port", "sw1", "x", "on"}, `port "x" is not a port number`},
		{[]string{"pitasks", "-config", conf, "port", "sw1", "1", "reboot"}, `unknown action "reboot"`},
		{[]string{"pitasks", "-config", conf, "discover", "sw1", "0"}, `port "0" is not a port number`},
		{[]string{"pitasks", "env-export"}, "missing argument: NAME"},
		{[]string{"pitasks", "nodes", "--json=maybe"}, "invalid boolean value"},
		{[]string{"piseduce"}, "missing command"},
		{[]string{"piseduce", "reserve", "-n", "2"}, "--for is required"},
		{[]string{"piseduce", "reserve", "-n", "2", "--for", "90m"}, `--for "90m": give whole hours`},
		{[]string{"piseduce", "reserve", "--for", "2h"}, "give -n N (how many nodes) or --nodes a,b"},
		{[]string{"piseduce", "extend", "x", "--by", "1h"}, `"x" is not a reservation number`},
		{[]string{"piseduce", "extend", "7"}, "--by is required"},
		{[]string{"piseduce", "deploy", "7"}, "--env is required"},
		{[]string{"piseduce", "deploy", "--env", "raspios"}, "give a reservation number or --nodes"},
		{[]string{"piseduce", "destroy"}, "give the nodes or --all"},
		{[]string{"piseduce", "release"}, "missing argument: NODE…"},
		{[]string{"piseduce", "ssh"}, "missing argument: NODE"},
	} {
		r := runBin(t, filepath.Join(dir, c.args[0]), c.args[1:]...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "\nusage: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q with the usage on stderr", c.args, r.code, r.stdout, r.stderr, c.want)
		}
	}
	// Flags after the arguments, as after them.
	if r := runBin(t, filepath.Join(dir, "pitasks"), "-config", conf, "nodes", "node-1", "--json"); r.code != 0 ||
		!strings.Contains(r.stdout, `"name": "node-1"`) {
		t.Errorf("pitasks nodes node-1 --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
