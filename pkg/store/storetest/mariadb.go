package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/testenv"
)

// MariaDB is a private MariaDB server of a test, on a loopback port, that the test may stop
// and start again (the shared server at 127.0.0.1:3306 must never be restarted by a test).
type MariaDB struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
}

// PrivateMariaDB installs a fresh data folder and starts mariadbd on a free loopback port;
// it is stopped at the end of the test.
func PrivateMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "mariadbd", "mariadb-install-db")
	dir, err := os.MkdirTemp("/var/tmp", "piseduce-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+filepath.Join(dir, "data"),
		"--user=root", "--auth-root-authentication-method=normal").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &MariaDB{t: t, dir: dir, port: l.Addr().(*net.TCPAddr).Port}
	l.Close()
	m.Start()
	t.Cleanup(m.Stop)
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/", m.port))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE piseduce CHARACTER SET utf8mb4"); err != nil {
		t.Fatal(err)
	}
	return m
}

// URL is the connection URL of the server's piseduce database.
func (m *MariaDB) URL() string { return "mysql://root@127.0.0.1:" + strconv.Itoa(m.port) + "/piseduce" }

// Start starts the server (again) and waits until it answers.
func (m *MariaDB) Start() {
	m.t.Helper()
	m.cmd = exec.Command("mariadbd", "--no-defaults", "--datadir="+filepath.Join(m.dir, "data"), "--user=root",
		"--socket="+filepath.Join(m.dir, "sock"), "--port="+strconv.Itoa(m.port), "--bind-address=127.0.0.1",
		"--log-error="+filepath.Join(m.dir, "error.log"), "--pid-file="+filepath.Join(m.dir, "pid"))
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("mariadbd: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			db, _ := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/", m.port))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = db.PingContext(ctx)
			cancel()
			db.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(m.dir, "error.log"))
			m.t.Fatalf("mariadbd did not answer on port %d: %s", m.port, tailOf(string(b)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop shuts the server down (SIGTERM, as an admin's restart would) and waits for it.
func (m *MariaDB) Stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		m.cmd.Process.Kill()
		<-done
	}
	m.cmd = nil
}

func tailOf(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}
