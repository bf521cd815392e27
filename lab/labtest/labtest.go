// Package labtest brings the virtual Pi lab up for a test, and down again at its end.
package labtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// Log is a buffer that the lab's and the daemons' goroutines may write at once.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Tail is the end of s, at most n bytes.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Wait is how long a test waits for another test's lab to go down: 3 minutes, or
// PISEDUCE_LAB_WAIT (a Go duration).
func Wait(t testing.TB) time.Duration {
	t.Helper()
	v := os.Getenv("PISEDUCE_LAB_WAIT")
	if v == "" {
		return 3 * time.Minute
	}
	wait, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("PISEDUCE_LAB_WAIT: %v", err)
	}
	return wait
}

// Up brings a lab up for t, in a fresh folder (o.Dir is ignored), and takes it down when t
// ends, showing the lab's log if t failed. Without root or the lab's programs, t is skipped
// (in CI: failed). Labs share one subnet: Up waits for another test's lab up to 3 minutes, or
// PISEDUCE_LAB_WAIT (a Go duration) where several test runs share the machine.
func Up(t testing.TB, o lab.Options) (*lab.Lab, *Log) {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, lab.Commands...)
	// Not t.TempDir(): dnsmasq, which serves TFTP as an unprivileged user, must reach the files.
	dir, err := os.MkdirTemp("/var/tmp", "piseduce-lab-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	o.Dir = filepath.Join(dir, "lab")
	log := &Log{}
	if o.Log == nil {
		o.Log = log
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait(t))
	defer cancel()
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatalf("lab: %v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab log:\n%s", Tail(log.String(), 6000))
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l, log
}
