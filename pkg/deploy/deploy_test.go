package deploy

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/store"
)

type oneSwitch struct{ ctl power.Controller }

func (o oneSwitch) Controller(*store.Switch) (power.Controller, error) { return o.ctl, nil }

func TestTurnOffKeepsThePowerOffLongEnough(t *testing.T) {
	sw := power.NewFake(8, 8)
	d := New(Deployer{Switches: oneSwitch{sw}, PowerOffWait: 300 * time.Millisecond}, 2)
	task := &engine.Task{D: &store.Deployment{NodeID: 1, Node: store.Node{Port: 3}, StateStartedAt: time.Now()}, Log: slog.Default()}
	ctx := context.Background()
	if err := d.turnOff(ctx, task); err != nil {
		t.Fatal(err)
	}
	done, err := d.isOff(ctx, task)
	if err != nil || !done {
		t.Fatalf("isOff = %v, %v", done, err)
	}
	if el := time.Since(task.D.StateStartedAt); el < 300*time.Millisecond {
		t.Fatalf("the port was off for %s only", el)
	}
	// A node already off for longer is done at once.
	task.D.StateStartedAt = time.Now().Add(-time.Second)
	start := time.Now()
	if done, _ := d.isOff(ctx, task); !done || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("isOff waited %s for a node off for a second", time.Since(start))
	}
}

func TestBootSlots(t *testing.T) {
	b := newBootSlots(2)
	if !b.acquire(1) || !b.acquire(2) || !b.acquire(1) {
		t.Fatal("two nodes (one asking twice) must get their slots")
	}
	if b.acquire(3) {
		t.Fatal("a third node booted while two were booting")
	}
	b.release(1)
	if !b.acquire(3) {
		t.Fatal("a released slot was not given to the next node")
	}
}

func TestWithHostname(t *testing.T) {
	cases := map[string]string{
		"": "127.0.0.1\tlocalhost\n127.0.1.1\tnode-3\n",
		"127.0.0.1 localhost\n127.0.1.1 raspberrypi\n":       "127.0.0.1 localhost\n127.0.1.1\tnode-3\n",
		"127.0.0.1 localhost\n::1 localhost ip6-localhost\n": "127.0.0.1 localhost\n::1 localhost ip6-localhost\n127.0.1.1\tnode-3\n",
	}
	for in, want := range cases {
		if got := withHostname(in, "node-3"); got != want {
			t.Errorf("withHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCappedOutput(t *testing.T) {
	c := &capped{max: 10}
	c.Write([]byte("hello "))
	c.Write([]byte("world, and more"))
	if got := c.String(); !strings.HasPrefix(got, "hello worl") || !strings.Contains(got, "output truncated") {
		t.Fatalf("capped = %q", got)
	}
}
