package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
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

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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
	port := freePort(t)
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
