// Package sdnotifytest stands in for systemd's notify socket in tests: a real unix datagram
// socket whose path goes into a daemon's $NOTIFY_SOCKET.
package sdnotifytest

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// Socket receives a daemon's sd_notify datagrams.
type Socket struct {
	Path string
	c    *net.UnixConn
}

// Listen opens a socket in the test's temp folder, closed when the test ends.
func Listen(t testing.TB) *Socket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Socket{Path: path, c: c}
}

// Next returns the next datagram received within d, or "" when none came.
func (s *Socket) Next(t testing.TB, d time.Duration) string {
	t.Helper()
	_ = s.c.SetReadDeadline(time.Now().Add(d))
	b := make([]byte, 4096)
	n, err := s.c.Read(b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

// Drain reads what has already arrived.
func (s *Socket) Drain(t testing.TB) {
	t.Helper()
	for s.Next(t, 100*time.Millisecond) != "" {
	}
}

// Expect waits, generously for a busy machine, for the datagram want, skipping the watchdog's
// WATCHDOG=1 on the way; any other datagram fails the test.
func (s *Socket) Expect(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		got := s.Next(t, time.Until(deadline))
		if got == want {
			return
		}
		if got != "" && got != "WATCHDOG=1" {
			t.Fatalf("notify socket: got %q, want %q", got, want)
		}
	}
	t.Fatalf("notify socket: no %q within 2 minutes", want)
}
