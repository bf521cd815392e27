package deploy_test

import (
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

// TestBootEventsEndTheSSHWaits: the engine looks at a state not done again only after a
// minute here, so only the node's DHCP and TFTP requests in the lab's dnsmasq log, waking
// its deployment, can end ssh_nfs and ssh_system within seconds of the node being up.
func TestBootEventsEndTheSSHWaits(t *testing.T) {
	const poll = time.Minute
	h := deploytest.StartWith(t, lab.Options{Nodes: 1}, deploytest.Config{PollInterval: poll, BootEvents: true, SSHLost: 4 * time.Minute})
	n := h.Nodes[0]
	ds := h.Deploy(h.Nodes, deploytest.Request{SizeMiB: 200})
	h.RunUntil(ds, 5*time.Minute, "deployed")
	boots, err := h.Lab.Desc.Node(n.Name).Boots()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		state process.StateName
		mode  string // the boot that ends it
	}{{process.SSHNFS, "nfs"}, {process.SSHSystem, "card"}} {
		var ev *store.StateEvent
		for _, e := range h.Events(ds[0].ID) {
			if e.Process == process.Deploy && e.State == w.state && e.Outcome == store.OutcomeDone {
				ev = &e
			}
		}
		if ev == nil {
			t.Fatalf("no %s done in the events", w.state)
		}
		var up time.Time
		for _, b := range boots {
			if b.Mode == w.mode && b.At.After(ev.StartedAt.Add(-time.Second)) && b.At.Before(ev.EndedAt) {
				up = b.At // the last boot of that system during the state (the clocks are the same machine's)
			}
		}
		if up.IsZero() {
			t.Fatalf("%s: no boot from %s between %s and %s in %s's events (%v)", w.state, w.mode, ev.StartedAt, ev.EndedAt, n.Name, boots)
		}
		lag := ev.EndedAt.Sub(up)
		t.Logf("%s took %s; seen %s after the node was up", w.state, ev.EndedAt.Sub(ev.StartedAt).Round(time.Millisecond), lag.Round(time.Millisecond))
		if lag > poll/2 {
			t.Errorf("%s ended %s after the node was up: its boot events did not wake it (polled every %s)", w.state, lag, poll)
		}
	}
}
