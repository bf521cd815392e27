package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/testenv"
	"github.com/piseduce/piseduce/pkg/web"
)

// TestCLIOnTheLab: the piseduce binary, as a user runs it, against a real pifrontend and the
// real pitasks engine and drivers on a virtual Pi lab: it logs in, reserves a node, deploys it
// with --wait until deployed, runs hostname on it with piseduce ssh (the node's pinned host
// key checked), destroys and releases it.
func TestCLIOnTheLab(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "ssh")
	if testing.Short() {
		t.Skip("lab test skipped in -short mode")
	}
	bin := filepath.Join(t.TempDir(), "piseduce")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The machine may be busy: the node gets minutes, not the lab's usual seconds, to boot.
	h := deploytest.StartWith(t, lab.Options{Nodes: 1}, deploytest.Config{SSHLost: 5 * time.Minute, StepDeadline: 5 * time.Minute})
	ctx := context.Background()
	const password = "a long enough password"
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	user := store.User{Email: "eve@example.com", FirstName: "Eve", PasswordHash: hash, EmailConfirmed: true, Authorized: true}
	if err := h.Store.CreateUser(ctx, &user); err != nil {
		t.Fatal(err)
	}
	s, err := web.New(ctx, web.Options{Store: h.Store, Config: config.Default(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	defer deploytest.TickEvery(t, h.Engine, 250*time.Millisecond)()

	home := t.TempDir()
	keyFile := writeUserKey(t, home)
	node := h.Nodes[0].Name
	run := func(stdin string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		t.Logf("piseduce %s:\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
		return out.String(), err
	}
	must := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%v", err)
		}
		return out
	}

	must(run(password+"\n", "login", "--url", srv.URL, "--email", user.Email))
	for path, mode := range map[string]os.FileMode{"config/piseduce": 0o700 | os.ModeDir, "config/piseduce/login.json": 0o600} {
		if fi, err := os.Stat(filepath.Join(home, path)); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v %v, want mode %v", path, fi.Mode(), err, mode)
		}
	}
	must(run("", "reserve", "--nodes", node, "--for", "1h"))
	must(run("", "deploy", "--nodes", node, "--env", h.Env.Name, "--ssh-key", keyFile+".pub", "--wait"))
	if st := nodeState(t, must(run("", "nodes", "--json"))); st != "deploy deployed" {
		t.Fatalf("after deploy --wait: %s is %q, want deployed", node, st)
	}
	out := must(run("", "ssh", node, "-i", keyFile, "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "--", "hostname"))
	if strings.TrimSpace(out) != node {
		t.Errorf("piseduce ssh %s -- hostname: %q", node, out)
	}
	must(run("", "destroy", node))
	// The node is destroyed by pitasks: wait for it, then release it.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st := nodeState(t, must(run("", "nodes", "--json")))
		if st == "destroy destroyed" || st == " " {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not destroyed after 5 minutes: %q", node, st)
		}
		time.Sleep(time.Second)
	}
	must(run("", "release", node))
	out = must(run("", "nodes", "--json"))
	if !strings.Contains(out, `"free": true`) {
		t.Errorf("%s not free after release: %s", node, out)
	}
	must(run("", "logout"))
	if _, err := run("", "nodes"); err == nil {
		t.Error("nodes works after logout")
	}
	var ee *exec.ExitError
	if _, err := run("", "ssh", node); !errors.As(err, &ee) {
		t.Errorf("ssh after logout: %v", err)
	}
}

// nodeState is "PROCESS STATE" of the one node of piseduce nodes --json.
func nodeState(t *testing.T, out string) string {
	t.Helper()
	var doc struct {
		Nodes []struct {
			Process, State string
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Nodes) != 1 {
		t.Fatalf("piseduce nodes --json: %v\n%s", err, out)
	}
	return doc.Nodes[0].Process + " " + doc.Nodes[0].State
}

// writeUserKey writes a new ed25519 key pair for ssh: dir/id_ed25519 and its .pub.
func writeUserKey(t *testing.T, dir string) string {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "cli test")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
