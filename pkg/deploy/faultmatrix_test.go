package deploy_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// cell is one fault injected in one phase of a deployment.
type cell struct {
	phase, fault string
	when         func(h *deploytest.Harness, n store.Node, d *store.Deployment) bool // in the phase: inject now
	inject       func(h *deploytest.Harness, n store.Node) error
	thawAfter    time.Duration // the fault is undone this long after it began (0: never): by thaw, or by inject itself
	thaw         func(h *deploytest.Harness, n store.Node) error
	twice        bool   // inject again once the node came back: a second loss
	reason       string // in a power cycle's (or the loss's) message, "%s" the node
	injected     []time.Time
}

// run is one deployment of the matrix, on one node in one round, meeting its cells in order.
// A fault undone in time (frozen, then thawed) costs no power cycle, so it shares its
// deployment with a fault that takes the deployment's one hard reboot in a later phase.
type run struct {
	node, round int
	raw         bool   // the raw image: a copy that lasts seconds, long enough to cut
	script      string // the user's init script
	cells       []*cell
	want        process.StateName
	d           store.Deployment
	start       time.Time
}

// nodeSignal sends sig to every process of the node (its network namespace): SIGSTOP freezes
// it as a hung kernel would, SIGCONT thaws it. Twice, for a process forked meanwhile.
func nodeSignal(n *lab.NodeDesc, sig syscall.Signal) error {
	for range 2 {
		pids, err := nodePIDs(n)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			syscall.Kill(pid, sig) // a process that ended meanwhile is no matter
		}
	}
	return nil
}

// nodePIDs lists the processes of the node: none while it is off or its firmware waits.
func nodePIDs(n *lab.NodeDesc) ([]int, error) {
	out, err := exec.Command("ip", "netns", "pids", n.Netns).Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns pids %s: %w", n.Netns, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func portOff(h *deploytest.Harness, n store.Node) error { return h.Lab.Switch().SetPort(n.Port, false) }

func freezeNode(h *deploytest.Harness, n store.Node) error {
	return nodeSignal(h.Lab.Desc.Node(n.Name), syscall.SIGSTOP)
}

func thawNode(h *deploytest.Harness, n store.Node) error {
	return nodeSignal(h.Lab.Desc.Node(n.Name), syscall.SIGCONT)
}

// hangAtPowerOn is a node frozen as it powers on, before it has a process to stop: its
// firmware never starts (until the next power cycle).
func hangAtPowerOn(h *deploytest.Harness, n store.Node) error {
	return h.Lab.InjectFault(n.Name, lab.FaultHangOnce)
}

// freezeAsItStarts stops the node's processes as they appear, from power-on until 8 s after
// the first, then thaws them: a node frozen for a while as it powers on.
func freezeAsItStarts(h *deploytest.Harness, n store.Node) error {
	desc := h.Lab.Desc.Node(n.Name)
	var first time.Time
	for deadline := time.Now().Add(time.Minute); first.IsZero() || time.Since(first) < 8*time.Second; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s started no process within a minute of its power-on", n.Name)
		}
		pids, err := nodePIDs(desc)
		if err != nil {
			return err
		}
		if len(pids) > 0 && first.IsZero() {
			first = time.Now()
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGSTOP)
		}
	}
	return nodeSignal(desc, syscall.SIGCONT)
}

// in: the deployment is in one of states.
func in(states ...process.StateName) func(*deploytest.Harness, store.Node, *store.Deployment) bool {
	return func(_ *deploytest.Harness, _ store.Node, d *store.Deployment) bool {
		return slices.Contains(states, d.State)
	}
}

// copied: the deployment is in env_copy with at least frac of the image sent.
func copied(frac float64) func(*deploytest.Harness, store.Node, *store.Deployment) bool {
	return func(_ *deploytest.Harness, _ store.Node, d *store.Deployment) bool {
		return d.State == process.EnvCopy && d.BytesTotal > 0 && float64(d.BytesDone) >= frac*float64(d.BytesTotal)
	}
}

// poweringOn: pitasks powered the node on, and its firmware has not started yet (the lab's
// boot delay: its port is on, it has no process).
func poweringOn(h *deploytest.Harness, n store.Node, d *store.Deployment) bool {
	if d.State != process.TurnOn && d.State != process.SSHNFS {
		return false
	}
	on, err := h.Lab.Switch().PortOn(n.Port)
	pids, perr := nodePIDs(h.Lab.Desc.Node(n.Name))
	return err == nil && perr == nil && on && len(pids) == 0
}

// booting: the deployment waits in st for the node, which is booting (its processes run, its
// SSH does not yet: a lab.FaultSlow node takes 10 s there).
func booting(st process.StateName) func(*deploytest.Harness, store.Node, *store.Deployment) bool {
	return func(h *deploytest.Harness, n store.Node, d *store.Deployment) bool {
		if d.State != st {
			return false
		}
		desc := h.Lab.Desc.Node(n.Name)
		state, err := os.ReadFile(filepath.Join(desc.Dir, "state"))
		pids, perr := nodePIDs(desc)
		return err == nil && perr == nil && strings.TrimSpace(string(state)) == "booting" && len(pids) > 0
	}
}

// TestFaultMatrixOnTheLab injects every per-node fault into every phase of a deployment, as a
// site meets them: the node's PoE port switched off and left off, the node frozen (its
// processes stopped) for good, the node frozen for 8 s then thawed. Seven lab nodes, two
// rounds of deployments on them (thirteen deployments, nineteen cells). Every deployment ends
// deployed, or lost saying why, within the bound; none is left busy; a node frozen then thawed
// is not power-cycled. It prints the time each took to recover (BENCHMARKS.md keeps a run's
// table).
//
// The phases, from the node's side: power-on (pitasks powered it, its firmware has not started:
// nodes with a 5 s boot delay), NFS boot and card boot (the node booting, its SSH not yet up:
// nodes whose boots take 10 s more, lab.FaultSlow), copy (env_copy, part of the raw image
// sent), configuration (partition, system_conf), user script (a 30 s init script running).
//
// The faults of every node at once, the switch frozen, the database restarted and pitasks
// SIGKILLed, are cmd/pitasks' TestWholeSystemFaultsAcrossPhases.
func TestFaultMatrixOnTheLab(t *testing.T) {
	const (
		slow1, slow2, slow3 = 0, 1, 2 // lab.FaultSlow: NFS boot and card boot cells
		pi4a, pi4b          = 3, 4    // Pi 4s, which try the network before their card (below)
		delayed1, delayed2  = 5, 6    // a 5 s boot delay: power-on cells
		nodes               = 7
	)
	specs := make([]lab.NodeSpec, nodes)
	specs[pi4a].Model, specs[pi4b].Model = lab.ModelPi4, lab.ModelPi4
	specs[delayed1].BootDelay, specs[delayed2].BootDelay = 5*time.Second, 5*time.Second

	thawed := func(phase string, when func(*deploytest.Harness, store.Node, *store.Deployment) bool) *cell {
		return &cell{phase: phase, fault: "node frozen 8 s, thawed", when: when, inject: freezeNode, thawAfter: 8 * time.Second, thaw: thawNode}
	}
	frozen := func(phase string, when func(*deploytest.Harness, store.Node, *store.Deployment) bool, reason string) *cell {
		return &cell{phase: phase, fault: "node frozen for good", when: when, inject: freezeNode, reason: reason}
	}
	off := func(phase string, when func(*deploytest.Harness, store.Node, *store.Deployment) bool, reason string) *cell {
		return &cell{phase: phase, fault: "port off, left off", when: when, inject: portOff, reason: reason}
	}
	configuring := in(process.Partition, process.SystemConf)
	scripting := in(process.UserScript)
	const script = "sleep 30"
	// A Pi 3B+ power-cycled after the copy and before system_conf removes the image's
	// bootcode.bin would boot the card instead: the configuration cells run on Pi 4s. The copy
	// cells run on Pi 3B+s, whose link (10 MB/s) makes the copy last seconds.
	runs := []*run{
		{round: 0, node: slow1, cells: []*cell{thawed("NFS boot", booting(process.SSHNFS)), frozen("card boot", booting(process.SSHSystem), "")}},
		{round: 0, node: slow2, script: script, cells: []*cell{thawed("card boot", booting(process.SSHSystem)),
			off("user script", scripting, "%s's port was off during user_script: power-cycled, back to ssh_system")}},
		{round: 0, node: slow3, cells: []*cell{frozen("NFS boot", booting(process.SSHNFS), "")}},
		{round: 0, node: pi4a, script: script, cells: []*cell{thawed("configuration", configuring),
			frozen("user script", scripting, "%s stopped answering during user_script")}},
		{round: 0, node: delayed1, raw: true, cells: []*cell{
			{phase: "power-on", fault: "node frozen 8 s as it starts, thawed", when: poweringOn, inject: freezeAsItStarts, thawAfter: 8 * time.Second},
			off("copy", copied(0.2), "%s's port was off during env_copy: power-cycled, back to ssh_nfs")}},
		{round: 0, node: pi4b, cells: []*cell{frozen("configuration", configuring, "")}},
		{round: 0, node: delayed2, raw: true, cells: []*cell{off("power-on", poweringOn, ""), thawed("copy", copied(0.2))}},

		{round: 1, node: slow1, cells: []*cell{off("card boot", booting(process.SSHSystem), "")}},
		{round: 1, node: slow2, cells: []*cell{off("NFS boot", booting(process.SSHNFS), "")}},
		{round: 1, node: pi4a, cells: []*cell{off("configuration", configuring, "%s's port was off during ")}},
		{round: 1, node: delayed1, raw: true, script: script, cells: []*cell{
			frozen("copy", copied(0.2), "%s stopped answering during env_copy"), thawed("user script", scripting)}},
		{round: 1, node: slow3, raw: true, want: process.Lost, cells: []*cell{{phase: "copy", fault: "port off twice", when: copied(0.2),
			inject: portOff, twice: true, reason: "%s's port was off during env_copy, again after its power cycle"}}},
		{round: 1, node: delayed2, cells: []*cell{{phase: "power-on", fault: "node frozen for good (it never starts)", when: poweringOn, inject: hangAtPowerOn}}},
	}
	// Seven nodes booting together on a machine shared with other test runs can take more
	// than a minute to answer SSH: the waits are generous.
	h := deploytest.StartWith(t, lab.Options{Nodes: nodes, Specs: specs}, deploytest.Config{SSHLost: 3 * time.Minute})
	for _, n := range []int{slow1, slow2, slow3} {
		if err := h.Lab.InjectFault(h.Nodes[n].Name, lab.FaultSlow); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	raw := store.Environment{Name: "raw", Type: store.EnvDefault, ImageName: filepath.Base(h.Lab.Desc.Image.Img),
		ImageFormat: image.Raw, DecompressOn: "pimaster", SSHUser: lab.ImageUser, Shell: "bash"}
	if err := h.Store.CreateEnvironment(ctx, &raw); err != nil {
		t.Fatal(err)
	}
	deployments := map[int]store.Deployment{} // by node: a round's deployment is the last one's, asked again
	const bound = 15 * time.Minute
	for round := range 2 {
		var rs []*run
		var ds []store.Deployment
		for _, r := range runs {
			if r.round != round {
				continue
			}
			env := &h.Env
			if r.raw {
				env = &raw
			}
			if d, ok := deployments[r.node]; ok {
				redeploy(t, h, d.ID, env.ID, r.script)
				r.d = d
			} else {
				r.d = h.Deploy([]store.Node{h.Nodes[r.node]}, deploytest.Request{Env: env, Script: r.script})[0]
				deployments[r.node] = r.d
			}
			r.start = time.Now()
			rs = append(rs, r)
			ds = append(ds, r.d)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for _, r := range rs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				inject(t, h, r, stop)
			}()
		}
		end := h.WaitEnd(ds, bound)
		close(stop)
		wg.Wait()
		report(t, h, round, rs, end, bound)
		// A fault that outlived its deployment must not meet the next round.
		for n := range nodes {
			thawNode(h, h.Nodes[n])
		}
	}
}

// redeploy asks for deployment id again, as a user's deploy after a destroy, on env with script.
func redeploy(t *testing.T, h *deploytest.Harness, id, env uint, script string) {
	t.Helper()
	if err := storetest.DB(h.Store).Model(&store.Deployment{}).Where("id = ?", id).Updates(map[string]any{
		"process": process.Destroy, "state": process.Destroyed, "queued": false, "environment_id": env, "init_script": script}).Error; err != nil {
		t.Fatal(err)
	}
	if err := h.Store.RequestProcess(context.Background(), id, process.Deploy); err != nil {
		t.Fatal(err)
	}
}

// inject injects r's faults, each once its deployment is in its phase, until stop.
func inject(t *testing.T, h *deploytest.Harness, r *run, stop <-chan struct{}) {
	n := h.Nodes[r.node]
	for _, c := range r.cells {
		for len(c.injected) < 1+btoi(c.twice) {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			d, err := h.Store.Deployment(context.Background(), r.d.ID)
			if err != nil || !c.when(h, n, d) || (len(c.injected) == 1 && !d.NodeRecovered) {
				continue
			}
			at := time.Now()
			if err := c.inject(h, n); err != nil {
				t.Errorf("%s: inject %s: %v", n.Name, c.fault, err)
				return
			}
			c.injected = append(c.injected, at)
			t.Logf("%s: %s in %s (%s)", n.Name, c.fault, d.State, at.Sub(r.start).Round(time.Second))
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
	}
}

// report checks how the round's deployments ended and logs the table of its cells.
func report(t *testing.T, h *deploytest.Harness, round int, rs []*run, end map[uint]*store.Deployment, bound time.Duration) {
	var table strings.Builder
	fmt.Fprintf(&table, "| phase | fault | node (round) | outcome | power cycle after | ended after |\n|---|---|---|---|---|---|\n")
	for _, r := range rs {
		n, d := h.Nodes[r.node], end[r.d.ID]
		want := cmp.Or(r.want, process.Deployed)
		if d.State != want {
			t.Errorf("%s (round %d): ended %s in %s: %q, want %s", n.Name, round+1, d.State, d.ResumeState, d.LastError, want)
		}
		if d.State == process.Lost && !strings.Contains(d.LastError, n.Name) {
			t.Errorf("%s: lost saying %q, which does not name it", n.Name, d.LastError)
		}
		var evs []store.StateEvent
		for _, ev := range h.Events(r.d.ID) {
			if !ev.EndedAt.Before(r.start) {
				evs = append(evs, ev)
			}
		}
		last := evs[len(evs)-1].EndedAt
		for i, c := range r.cells {
			if len(c.injected) == 0 {
				t.Errorf("%s: the %s phase was never seen: no %s injected (ended %s in %s: %q)", n.Name, c.phase, c.fault,
					d.State, d.ResumeState, d.LastError)
				continue
			}
			// The cell's window: from its fault to the next cell's, or the end.
			from, to := c.injected[0], last.Add(time.Second)
			if i+1 < len(r.cells) && len(r.cells[i+1].injected) > 0 {
				to = r.cells[i+1].injected[0]
			}
			var cycle time.Time
			var messages []string
			for _, ev := range evs {
				if (ev.Outcome == store.OutcomeReboot || ev.Outcome == store.OutcomeLost) && ev.EndedAt.After(from) && ev.EndedAt.Before(to) {
					messages = append(messages, ev.Message)
					if cycle.IsZero() {
						cycle = ev.EndedAt
					}
				}
			}
			if c.thawAfter > 0 && len(messages) > 0 {
				t.Errorf("%s (%s during %s): power-cycled although it was thawed: %q", n.Name, c.fault, c.phase, messages)
			}
			if c.reason != "" {
				if want := fmt.Sprintf(c.reason, n.Name); !strings.Contains(strings.Join(messages, "\n"), want) {
					t.Errorf("%s (%s during %s): power cycles and losses %q, want one saying %q", n.Name, c.fault, c.phase, messages, want)
				}
			}
			after := "-"
			if !cycle.IsZero() {
				after = fmt.Sprintf("%.1f s", cycle.Sub(from).Seconds())
			}
			fmt.Fprintf(&table, "| %s | %s | %s (%d) | %s | %s | %.1f s |\n", c.phase, c.fault, n.Name, round+1, d.State, after, last.Sub(from).Seconds())
		}
		if d.Active() {
			t.Errorf("%s left busy in %s", n.Name, d.State)
		}
	}
	t.Logf("fault matrix, round %d: %d deployments, all ended within %s of the request (bound %s); times from each fault's injection:\n%s",
		round+1, len(rs), time.Since(rs[0].start).Round(time.Second), bound, table.String())
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
