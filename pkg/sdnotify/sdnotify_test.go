package sdnotify

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab/labtest"
	"github.com/piseduce/piseduce/pkg/sdnotify/sdnotifytest"
)

// listen is the notify socket, named in $NOTIFY_SOCKET.
func listen(t *testing.T) *sdnotifytest.Socket {
	t.Helper()
	s := sdnotifytest.Listen(t)
	t.Setenv("NOTIFY_SOCKET", s.Path)
	return s
}

func TestReadyAndStopping(t *testing.T) {
	c := listen(t)
	log := slog.New(slog.DiscardHandler)
	Ready(log)
	if got := c.Next(t, 10*time.Second); got != "READY=1" {
		t.Errorf("got %q, want READY=1", got)
	}
	Stopping(log)
	if got := c.Next(t, 10*time.Second); got != "STOPPING=1" {
		t.Errorf("got %q, want STOPPING=1", got)
	}
}

// TestWatchdog: fed while alive, not fed (and said so in the log) while the loop is wedged,
// fed again once it works.
func TestWatchdog(t *testing.T) {
	c := listen(t)
	t.Setenv("WATCHDOG_USEC", "400000") // fed every 200 ms
	var wedged atomic.Bool
	var asked atomic.Int32
	var logs labtest.Log
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watchdog(ctx, slog.New(slog.NewTextHandler(&logs, nil)), func(_ context.Context, timeout time.Duration) error {
			asked.Add(1)
			if timeout != 400*time.Millisecond {
				t.Errorf("alive got timeout %s", timeout)
			}
			if wedged.Load() {
				return errors.New("tick wedged")
			}
			return nil
		})
	}()
	for i := 0; i < 3; i++ {
		if got := c.Next(t, 30*time.Second); got != "WATCHDOG=1" {
			t.Fatalf("feed %d: got %q", i, got)
		}
	}
	wedged.Store(true)
	// Past the feeds already on their way, silence while alive keeps failing.
	deadline := time.Now().Add(time.Minute)
	for n := asked.Load(); asked.Load() < n+3; {
		if got := c.Next(t, 50*time.Millisecond); got != "" && got != "WATCHDOG=1" {
			t.Fatalf("got %q", got)
		}
		if time.Now().After(deadline) {
			t.Fatal("alive is no longer asked")
		}
	}
	if got := c.Next(t, time.Second); got != "" {
		t.Errorf("fed while wedged: %q", got)
	}
	if !strings.Contains(logs.String(), "not fed") || !strings.Contains(logs.String(), "tick wedged") {
		t.Errorf("log: %s", logs.String())
	}
	wedged.Store(false)
	if got := c.Next(t, 30*time.Second); got != "WATCHDOG=1" {
		t.Fatalf("not fed again: %q", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Watchdog did not return when ctx ended")
	}
	if !strings.Contains(logs.String(), "fed again") {
		t.Errorf("log: %s", logs.String())
	}
}

func TestWatchdogOff(t *testing.T) {
	listen(t)
	t.Setenv("WATCHDOG_USEC", "")
	done := make(chan struct{})
	go func() {
		Watchdog(context.Background(), slog.New(slog.DiscardHandler), func(context.Context, time.Duration) error {
			t.Error("alive asked without a watchdog")
			return nil
		})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Watchdog without WATCHDOG_USEC did not return")
	}
}
