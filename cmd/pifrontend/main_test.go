package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/sdnotify/sdnotifytest"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs pifrontend until the returned func sends it SIGTERM; it returns what it printed.
func start(t *testing.T, conf string, port int) (stop func() (int, string)) {
	out, errs := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run([]string{"-config", conf, "-log-level", "warn"}, out, errs) }()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == 200 && strings.Contains(string(body), "ok") {
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("pifrontend exited with %d: %s", code, errs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pifrontend did not answer: %s", errs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() (int, string) {
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case code := <-done:
			return code, out.String()
		case <-time.After(15 * time.Second):
			t.Fatal("pifrontend did not stop on SIGTERM")
			return 0, ""
		}
	}
}

// TestRun: the first start creates an admin with a random password printed once and a session
// secret kept in the database; a second start on the same database creates neither; SIGTERM
// stops it cleanly.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	db := filepath.Join(dir, "pf.db")
	conf := filepath.Join(dir, "seducepp.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf("[frontend]\nlisten = 127.0.0.1\nport = %d\n[db]\nconnection_url = sqlite://%s\n", port, db)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	code, out := start(t, conf, port)()
	if code != 0 || !strings.Contains(out, "admin@piseduce.local") || !strings.Contains(out, "password: ") {
		t.Fatalf("first run: %d %q", code, out)
	}
	pw := strings.TrimSpace(strings.SplitN(strings.SplitN(out, "password: ", 2)[1], "\n", 2)[0])
	if len(pw) < 16 {
		t.Fatalf("weak first password %q", pw)
	}
	st, err := store.Open(context.Background(), "sqlite://"+db)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := st.Setting(context.Background(), "session_secret")
	st.Close()
	if err != nil || len(secret) < 40 {
		t.Fatalf("session secret: %q %v", secret, err)
	}
	code, out = start(t, conf, port)()
	if code != 0 || strings.Contains(out, "password") {
		t.Fatalf("second run: %d %q", code, out)
	}
	if code := run([]string{"-config", conf, "-check"}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("-check: %d", code)
	}
	if code := run([]string{"-config", filepath.Join(dir, "missing.conf")}, io.Discard, io.Discard); code == 0 {
		t.Fatal("a missing config was accepted")
	}
}

// TestNotifyAndAccessLog runs pifrontend as systemd would (Type=notify, WatchdogSec): READY=1
// once it serves, WATCHDOG=1 while it answers, STOPPING=1 on SIGTERM; with -log-format json
// every line is a JSON object, among them the access log line of each request.
func TestNotifyAndAccessLog(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	conf := filepath.Join(dir, "seducepp.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[frontend]\nlisten = 127.0.0.1\nport = %d\n[db]\nconnection_url = sqlite://%s/pf.db\n", port, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := sdnotifytest.Listen(t)
	t.Setenv("NOTIFY_SOCKET", sock.Path)
	t.Setenv("WATCHDOG_USEC", "1000000")
	out, errs := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run([]string{"-config", conf, "-log-format", "json"}, out, errs) }()
	sock.Expect(t, "READY=1")
	sock.Expect(t, "WATCHDOG=1")
	sock.Expect(t, "WATCHDOG=1")

	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/login?next=/deployments", port))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	id := res.Header.Get("X-Request-Id")
	if res.StatusCode != 200 || id == "" {
		t.Fatalf("GET /login: %s, X-Request-Id %q", res.Status, id)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sock.Expect(t, "STOPPING=1")
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, errs.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("pifrontend did not stop on SIGTERM")
	}
	var access map[string]any
	for _, l := range strings.Split(strings.TrimSpace(errs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("not a JSON log line: %q", l)
			continue
		}
		if rec["msg"] == "http" && rec["request_id"] == id {
			access = rec
		}
	}
	if access == nil || access["method"] != "GET" || access["path"] != "/login" || access["route"] != "/login" ||
		access["status"] != 200.0 || access["user_id"] != 0.0 || access["duration_ms"] == nil {
		t.Errorf("access log line of %s: %v", id, access)
	}
}

// TestAnswers: the watchdog's check fails on a server that accepts but never answers, and
// passes on one that answers, even with an error.
func TestAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // accepted, never answered
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	if err := answers(ln.Addr())(context.Background(), 400*time.Millisecond); err == nil {
		t.Error("a wedged server passes")
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // the database is down
	}))
	defer down.Close()
	if err := answers(down.Listener.Addr())(context.Background(), 10*time.Second); err != nil {
		t.Errorf("a server that answers fails: %v", err)
	}
}

func TestVersionFlag(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "pifrontend ") ||
		!strings.Contains(out.String(), "(commit ") {
		t.Errorf("--version: exit %d, %q", code, out.String())
	}
}
