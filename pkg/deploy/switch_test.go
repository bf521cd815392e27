package deploy_test

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/power/powerconf"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// freeze stops the switch's SNMP agent (SIGSTOP: it neither answers nor refuses) until thaw.
func freeze(t *testing.T, h *deploytest.Harness) (thaw func()) {
	pid := h.Lab.Switch().PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw = func() {
		if !thawed {
			syscall.Kill(pid, syscall.SIGCONT)
			thawed = true
		}
	}
	t.Cleanup(thaw)
	return thaw
}

// TestSwitchOutage: while the switch does not answer, pitasks retries with growing waits and
// says why on the deployment; once it answers again, the deployments carry on.
func TestSwitchOutage(t *testing.T) {
	h := deploytest.Start(t, lab.Options{Nodes: 2})
	thaw := freeze(t, h)
	ds := h.Deploy(h.Nodes, deploytest.Request{})
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(250 * time.Millisecond) {
		if err := h.Engine.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, d := range ds {
			if got := h.Load(d.ID); got.Failures >= 2 {
				if !strings.Contains(got.LastError, "no answer from switch") {
					t.Fatalf("%s: last error %q does not say the switch is not answering", got.Node.Name, got.LastError)
				}
				n++
			}
		}
		if n == len(ds) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failed attempts recorded while the switch was frozen")
		}
	}
	thaw()
	h.RunUntil(ds, 2*time.Minute, "deployed")
	for _, d := range ds {
		var retries []store.StateEvent
		storetest.DB(h.Store).Where("deployment_id = ? AND outcome = ?", d.ID, store.OutcomeRetry).Order("id").Find(&retries)
		if len(retries) < 2 {
			t.Fatalf("deployment %d: %d retries", d.ID, len(retries))
		}
		t.Logf("deployment %d: %d failed attempts while the switch was frozen, then deployed", d.ID, len(retries))
	}
}

// TestSwitchThatNeverAnswers: the deployment ends lost after the switch's limit (past
// turn_off's own 30 s), with the switch named in the reason.
func TestSwitchThatNeverAnswers(t *testing.T) {
	h := deploytest.StartWith(t, lab.Options{Nodes: 1}, deploytest.Config{SwitchLimit: 45 * time.Second})
	freeze(t, h)
	ds := h.Deploy(h.Nodes, deploytest.Request{})
	d := h.WaitEnd(ds, 3*time.Minute)[ds[0].ID]
	if d.State != process.Lost || d.ResumeState != "turn_off" ||
		!strings.HasPrefix(d.LastError, "switch "+lab.SwitchName+" did not answer for ") || !strings.HasSuffix(d.LastError, " during turn_off") {
		t.Fatalf("state %s in %s: %q", d.State, d.ResumeState, d.LastError)
	}
	t.Logf("lost with: %s", d.LastError)
}

// TestDeployThroughCommandDriver: a node powered by the command driver (a relay script that
// writes the lab's port files) is deployed end to end, while the switch's SNMP agent is frozen:
// nothing in the deployment goes through SNMP once the switch's driver is "command".
func TestDeployThroughCommandDriver(t *testing.T) {
	h := deploytest.Start(t, lab.Options{Nodes: 1})
	prog, err := filepath.Abs("testdata/labport")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sw, err := h.Store.Switch(ctx, h.Nodes[0].SwitchID)
	if err != nil {
		t.Fatal(err)
	}
	dir := h.Lab.Switch().PortStateDir()
	argv := func(action string) []string { return []string{prog, dir, action, "{port}"} }
	sw.Driver = powerconf.DriverCommand
	sw.Power = powerconf.Settings{Command: powerconf.Command{On: argv("on"), Off: argv("off"), Status: argv("state")}}
	if err := h.Store.UpdateSwitch(ctx, sw); err != nil {
		t.Fatal(err)
	}
	freeze(t, h)
	ds := h.Deploy(h.Nodes, deploytest.Request{})
	h.RunUntil(ds, 4*time.Minute, "deployed")
	if on, err := h.Lab.Switch().PortOn(h.Nodes[0].Port); err != nil || !on {
		t.Fatalf("the deployed node's port is not on: %v", err)
	}
}

// TestFrozenSwitchDuringTurnOn: the switch's SNMP agent stopped for longer than turn_on's
// limit (90 s) while several nodes are in turn_on: one powering on, the others waiting for
// the boot slot (max_booting 1) until past turn_on's hard reboot (60 s). None is lost for it:
// each goes on within seconds of the thaw, and all are deployed.
func TestFrozenSwitchDuringTurnOn(t *testing.T) {
	h := deploytest.StartWith(t, lab.Options{Nodes: 3}, deploytest.Config{MaxBooting: 1})
	ds := h.Deploy(h.Nodes, deploytest.Request{})
	// Freeze once one node holds the slot and two wait in turn_on.
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		if err := h.Engine.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		inTurnOn := 0
		for _, d := range ds {
			if h.Load(d.ID).State == process.TurnOn {
				inTurnOn++
			}
		}
		if inTurnOn == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never two nodes in turn_on at once")
		}
	}
	const frozenFor = 100 * time.Second
	thaw := freeze(t, h)
	frozeAt := time.Now()
	for time.Since(frozeAt) < frozenFor {
		if err := h.Engine.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if got := h.Load(d.ID); got.State.Stopped() {
				t.Fatalf("%s ended %s in %s while the switch was frozen: %s", got.Node.Name, got.State, got.ResumeState, got.LastError)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	thaw()
	thawedAt := time.Now()
	h.RunUntil(ds, 10*time.Minute, process.Deployed)
	waited := 0
	for _, d := range ds {
		var retries, done []store.StateEvent
		storetest.DB(h.Store).Where("deployment_id = ? AND state = ? AND outcome = ?", d.ID, process.TurnOn, store.OutcomeRetry).Order("id").Find(&retries)
		storetest.DB(h.Store).Where("deployment_id = ? AND state = ? AND outcome IN ?", d.ID, process.TurnOn,
			[]string{store.OutcomeDone, store.OutcomeReboot}).Order("id").Find(&done)
		if len(retries) == 0 {
			continue
		}
		waited++
		last := retries[len(retries)-1]
		if !strings.Contains(last.Message, "no answer from switch") {
			t.Errorf("deployment %d: turn_on retried for %q, want the switch's silence", d.ID, last.Message)
		}
		// The first answer of the switch after the thaw: the power on, or the hard reboot.
		var first time.Time
		for _, ev := range done {
			if ev.EndedAt.After(thawedAt) && (first.IsZero() || ev.EndedAt.Before(first)) {
				first = ev.EndedAt
			}
		}
		after := first.Sub(thawedAt)
		// SwitchRetry (3 s) and one SNMP timeout; a loaded machine adds ticks.
		if first.IsZero() || after > 30*time.Second {
			t.Errorf("deployment %d: turn_on went on %s after the thaw, want within seconds", d.ID, after)
		}
		t.Logf("deployment %d: %d tries of turn_on while the switch was frozen %s; went on %.1f s after the thaw",
			d.ID, len(retries), frozenFor, after.Seconds())
	}
	if waited < 2 {
		t.Errorf("%d nodes met the frozen switch in turn_on, want at least 2", waited)
	}
}
