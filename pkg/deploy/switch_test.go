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

// TestSwitchThatNeverAnswers: the deployment ends lost after the state's lost timeout, with
// the switch named in the reason.
func TestSwitchThatNeverAnswers(t *testing.T) {
	h := deploytest.Start(t, lab.Options{Nodes: 1})
	freeze(t, h)
	ds := h.Deploy(h.Nodes, deploytest.Request{})
	d := h.WaitEnd(ds, 2*time.Minute)[ds[0].ID]
	if d.State != process.Lost || d.ResumeState != "turn_off" || !strings.Contains(d.LastError, "no answer from switch") ||
		!strings.Contains(d.LastError, lab.SwitchName) {
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
