package deploy_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

// cell is one deployment of the fault matrix: a fault injected in one phase of it.
type cell struct {
	phase, fault string
	states       []process.StateName // the phase: inject once the deployment is in one of these
	atCopied     float64             // in env_copy, once this fraction of the image was sent
	raw          bool                // the raw image: a copy that lasts seconds, long enough to cut
	script       string
	spec         lab.NodeSpec
	inject       func(h *deploytest.Harness, n store.Node) error
	thawAfter    time.Duration // undo the fault this long after injecting it (0: never)
	thaw         func(h *deploytest.Harness, n store.Node) error
	twice        bool              // inject again once the node came back: a second loss
	want         process.StateName // how the deployment ends
	reason       string            // in the power cycle's (or the loss's) message, "%s" the node
	injected     []time.Time
}

// nodeSignal sends sig to every process of the node (its network namespace): SIGSTOP freezes
// it as a hung kernel would, SIGCONT thaws it. Twice, for a process forked meanwhile.
func nodeSignal(n *lab.NodeDesc, sig syscall.Signal) error {
	for range 2 {
		out, err := exec.Command("ip", "netns", "pids", n.Netns).Output()
		if err != nil {
			return fmt.Errorf("ip netns pids %s: %w", n.Netns, err)
		}
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, sig) // a process that ended meanwhile is no matter
			}
		}
	}
	return nil
}

func portOff(h *deploytest.Harness, n store.Node) error { return h.Lab.Switch().SetPort(n.Port, false) }

func freezeNode(h *deploytest.Harness, n store.Node) error {
	return nodeSignal(h.Lab.Desc.Node(n.Name), syscall.SIGSTOP)
}

func thawNode(h *deploytest.Harness, n store.Node) error {
	return nodeSignal(h.Lab.Desc.Node(n.Name), syscall.SIGCONT)
}

func freezeSwitch(h *deploytest.Harness, _ store.Node) error {
	return syscall.Kill(h.Lab.Desc.Switch.PID, syscall.SIGSTOP)
}

func thawSwitch(h *deploytest.Harness, _ store.Node) error {
	return syscall.Kill(h.Lab.Desc.Switch.PID, syscall.SIGCONT)
}

// TestFaultMatrixOnTheLab deploys eleven nodes at once, each meeting one fault in one phase of
// its deployment, as a site meets them: a port switched off and left off, a node frozen (its
// processes stopped) for good or for a while, the switch's SNMP agent frozen. Every deployment
// ends deployed, or lost saying why, within the bound; none is left busy. It prints the time
// each took to recover (BENCHMARKS.md keeps a run's table).
//
// The whole-system cells, the database restarted and pitasks SIGKILLed, need the real daemons:
// cmd/pitasks' TestWholeSystemFaultsAcrossPhases.
//
// Not yet in make test (PISEDUCE_FAULT_MATRIX=1 runs it): on a machine at a load average of
// 45 to 60, eleven nodes at once overwhelm the lab's switch (its SNMP agent answers one
// request at a time, later than the harness's 1 s timeout, and the requests sent again fill
// its queue) and the copies cut meanwhile each read the whole image again (BENCHMARKS.md).
func TestFaultMatrixOnTheLab(t *testing.T) {
	if os.Getenv("PISEDUCE_FAULT_MATRIX") != "1" {
		t.Skip("set PISEDUCE_FAULT_MATRIX=1 to run the fault matrix (not yet passing every cell on a loaded machine)")
	}
	ssh := []process.StateName{process.SSHNFS}
	copying := []process.StateName{process.EnvCopy}
	cells := []*cell{
		{phase: "copy", fault: "none (baseline)", states: copying, raw: true, want: process.Deployed},
		// The switch is every node's: frozen while they all power on, it lost six of them in
		// turn_off (30 s limit, backoff past the thaw). Frozen once the others are under way.
		{phase: "copy", fault: "switch frozen 15 s", states: copying, atCopied: 0.5, raw: true,
			inject: freezeSwitch, thawAfter: 15 * time.Second, thaw: thawSwitch, want: process.Deployed},
		{phase: "NFS boot", fault: "node frozen 10 s, thawed", states: ssh, inject: freezeNode, thawAfter: 10 * time.Second, thaw: thawNode, want: process.Deployed},
		{phase: "copy", fault: "port off, left off", states: copying, atCopied: 0.2, raw: true, inject: portOff,
			want: process.Deployed, reason: "%s's port was off during env_copy: power-cycled, back to ssh_nfs"},
		{phase: "copy", fault: "node frozen for good", states: copying, atCopied: 0.2, raw: true, inject: freezeNode,
			want: process.Deployed, reason: "%s stopped answering during env_copy"},
		{phase: "copy", fault: "node frozen 8 s, thawed", states: copying, atCopied: 0.2, raw: true, inject: freezeNode,
			thawAfter: 8 * time.Second, thaw: thawNode, want: process.Deployed},
		{phase: "copy", fault: "port off twice", states: copying, atCopied: 0.2, raw: true, inject: portOff, twice: true,
			want: process.Lost, reason: "%s's port was off during env_copy, again after its power cycle"},
		// A Pi 4 tries the network before its card: a Pi 3B+ power-cycled after the copy and
		// before system_conf removes the image's bootcode.bin would boot the card instead.
		{phase: "configuration", fault: "port off, left off", states: []process.StateName{process.Partition, process.SystemConf},
			spec: lab.NodeSpec{Model: lab.ModelPi4}, inject: portOff, want: process.Deployed, reason: "%s's port was off during "},
		{phase: "card boot", fault: "node frozen for good", states: []process.StateName{process.SSHSystem}, inject: freezeNode, want: process.Deployed},
		{phase: "user script", fault: "port off, left off", states: []process.StateName{process.UserScript}, script: "sleep 30",
			inject: portOff, want: process.Deployed, reason: "%s's port was off during user_script: power-cycled, back to ssh_system"},
		{phase: "user script", fault: "node frozen for good", states: []process.StateName{process.UserScript}, script: "sleep 30",
			inject: freezeNode, want: process.Deployed, reason: "%s stopped answering during user_script"},
	}
	specs := make([]lab.NodeSpec, len(cells))
	for i, c := range cells {
		specs[i] = c.spec
	}
	// Eleven nodes booting together on a machine shared with other test runs took more than
	// a minute to answer SSH (load average near 100): the waits are generous.
	h := deploytest.StartWith(t, lab.Options{Nodes: len(cells), Specs: specs}, deploytest.Config{SSHLost: 3 * time.Minute})
	t.Cleanup(func() { thawSwitch(h, store.Node{}) }) // never leave the lab's switch stopped
	ctx := context.Background()
	raw := store.Environment{Name: "raw", Type: store.EnvDefault, ImageName: filepath.Base(h.Lab.Desc.Image.Img),
		ImageFormat: image.Raw, DecompressOn: "pimaster", SSHUser: lab.ImageUser, Shell: "bash"}
	if err := h.Store.CreateEnvironment(ctx, &raw); err != nil {
		t.Fatal(err)
	}
	var ds []store.Deployment
	for i, c := range cells {
		req := deploytest.Request{Script: c.script}
		if c.raw {
			req.Env = &raw
		}
		ds = append(ds, h.Deploy([]store.Node{h.Nodes[i]}, req)...)
	}
	start := time.Now()

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i, c := range cells {
		if c.inject == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := h.Nodes[i]
			for len(c.injected) < 1+btoi(c.twice) {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				d, err := h.Store.Deployment(ctx, ds[i].ID)
				if err != nil || !inPhase(d, c) || (len(c.injected) == 1 && !d.NodeRecovered) {
					continue
				}
				if err := c.inject(h, n); err != nil {
					t.Errorf("%s: inject %s: %v", n.Name, c.fault, err)
					return
				}
				c.injected = append(c.injected, time.Now())
				t.Logf("%s: %s in %s (%s)", n.Name, c.fault, d.State, time.Since(start).Round(time.Second))
				if c.thaw != nil {
					select {
					case <-stop:
					case <-time.After(c.thawAfter):
					}
					if err := c.thaw(h, n); err != nil {
						t.Errorf("%s: undo %s: %v", n.Name, c.fault, err)
					}
				}
			}
		}()
	}
	const bound = 15 * time.Minute
	end := h.WaitEnd(ds, bound)
	close(stop)
	wg.Wait()

	var table strings.Builder
	fmt.Fprintf(&table, "| phase | fault | outcome | injected at | power cycle after | ended after | \n|---|---|---|---|---|---|\n")
	for i, c := range cells {
		n, d := h.Nodes[i], end[ds[i].ID]
		if c.inject != nil && len(c.injected) == 0 {
			t.Errorf("%s: the %s phase was never seen: no %s injected (ended %s in %s: %q)", n.Name, c.phase, c.fault,
				d.State, d.ResumeState, d.LastError)
			continue
		}
		if d.State != c.want {
			t.Errorf("%s (%s during %s): ended %s in %s: %q, want %s", n.Name, c.fault, c.phase, d.State, d.ResumeState, d.LastError, c.want)
		}
		var cycle, last time.Time
		var messages []string
		for _, ev := range h.Events(d.ID) {
			last = ev.EndedAt
			if ev.Outcome == store.OutcomeReboot || ev.Outcome == store.OutcomeLost {
				messages = append(messages, ev.Message)
				if cycle.IsZero() && len(c.injected) > 0 && ev.EndedAt.After(c.injected[0]) {
					cycle = ev.EndedAt
				}
			}
		}
		if c.reason != "" {
			want := fmt.Sprintf(c.reason, n.Name)
			if !strings.Contains(strings.Join(messages, "\n"), want) {
				t.Errorf("%s (%s during %s): power cycles and losses %q, want one saying %q", n.Name, c.fault, c.phase, messages, want)
			}
		}
		if c.reason != "" && d.State == process.Lost && !strings.Contains(d.LastError, n.Name) {
			t.Errorf("%s: lost saying %q, which does not name it", n.Name, d.LastError)
		}
		from := start
		at := "-"
		if len(c.injected) > 0 {
			from = c.injected[0]
			at = fmt.Sprintf("%.0f s", c.injected[0].Sub(start).Seconds())
		}
		after := "-"
		if !cycle.IsZero() {
			after = fmt.Sprintf("%.1f s", cycle.Sub(from).Seconds())
		}
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %s | %.1f s |\n", c.phase, c.fault, d.State, at, after, last.Sub(from).Seconds())
	}
	t.Logf("fault matrix, %d nodes, all ended within %s (bound %s); times from the injection (baseline: from the request):\n%s",
		len(cells), time.Since(start).Round(time.Second), bound, table.String())
	for _, d := range end {
		if d.Active() {
			t.Errorf("%s left busy in %s", d.Node.Name, d.State)
		}
	}
}

func inPhase(d *store.Deployment, c *cell) bool {
	for _, s := range c.states {
		if d.State == s && (c.atCopied == 0 || (d.BytesTotal > 0 && float64(d.BytesDone) >= c.atCopied*float64(d.BytesTotal))) {
			return true
		}
	}
	return false
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
