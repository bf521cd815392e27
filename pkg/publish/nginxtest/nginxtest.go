// Package nginxtest runs a real nginx (the Debian package and its stream module) for a test:
// its own prefix, configuration, pid and logs in a temporary folder, never the system's
// service or its files. Its nginx.conf includes the two files pitasks generates, as
// admin/install.sh makes the system's include them.
package nginxtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/testenv"
)

// StreamModule is where Debian's libnginx-mod-stream puts the stream module.
const StreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// Nginx is a running nginx.
type Nginx struct {
	Dir        string
	Conf       string // its nginx.conf
	StreamConf string // included in its stream {} block
	HTTPConf   string // included in its http {} block
	bin        string
	cmd        *exec.Cmd
}

// Start writes the configuration (the includes empty) and starts nginx in the foreground;
// it is stopped when t ends. Without nginx or its stream module, t is skipped (in CI: failed).
func Start(t testing.TB) *Nginx {
	t.Helper()
	n := Configure(t)
	n.cmd = exec.Command(n.bin, n.args("-g", "daemon off;")...)
	n.cmd.Stdout, n.cmd.Stderr = os.Stderr, os.Stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- n.cmd.Wait() }()
	t.Cleanup(func() {
		n.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			n.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
			t.Logf("nginx error.log:\n%s", tail(string(b), 4000))
		}
	})
	// Up once the master wrote its pid: it reads the configuration and binds before that.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(n.Dir, "nginx.pid")); err == nil {
			return n
		}
		select {
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s", err, tail(string(b), 4000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx did not start in 60s")
		}
	}
}

// Configure writes the configuration of an nginx that is not started: Test checks it.
func Configure(t testing.TB) *Nginx {
	t.Helper()
	bin := testenv.NeedCommand(t, "nginx")
	_, err := os.Stat(StreamModule)
	testenv.Need(t, err == nil, "nginx's stream module (Debian package libnginx-mod-stream)")
	// Not t.TempDir(): nginx's workers run as nobody and go through the folder.
	dir, err := os.MkdirTemp("", "piseduce-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &Nginx{Dir: dir, Conf: filepath.Join(dir, "nginx.conf"), StreamConf: filepath.Join(dir, "stream.conf"),
		HTTPConf: filepath.Join(dir, "http.conf"), bin: bin}
	for _, p := range []string{n.StreamConf, n.HTTPConf} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var temps strings.Builder
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "\t%s_temp_path %s;\n", k, filepath.Join(dir, k))
	}
	conf := fmt.Sprintf(`load_module %s;
worker_processes 1;
pid %s;
error_log %s info;
events { worker_connections 256; }
stream {
	include %s;
}
http {
	access_log %s;
%s	include %s;
}
`, StreamModule, filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"), n.StreamConf,
		filepath.Join(dir, "access.log"), temps.String(), n.HTTPConf)
	if err := os.WriteFile(n.Conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *Nginx) args(more ...string) []string {
	return append([]string{"-p", n.Dir + "/", "-e", filepath.Join(n.Dir, "error.log"), "-c", n.Conf}, more...)
}

// Reload is the command that makes this nginx re-read its configuration: [nginx] reload.
func (n *Nginx) Reload() []string { return append([]string{n.bin}, n.args("-s", "reload")...) }

// Test runs nginx -t on the configuration and its includes as they are.
func (n *Nginx) Test() error {
	out, err := exec.Command(n.bin, n.args("-t")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx -t: %v: %s", err, out)
	}
	return nil
}

// WaitFor polls cond until it is true, or fails t after limit: nginx applies a reload in its
// own time (new workers start, the old ones finish).
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not after %s: %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
