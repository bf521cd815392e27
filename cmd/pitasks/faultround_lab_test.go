package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// The whole-system cells of the fault matrix (issue 16): pitasks SIGKILLed, the database
// restarted, the switch frozen. Such a fault hits every node at once, so each round deploys six nodes staggered
// so that, at the fault, they are spread over the six phases of a deployment. Four phases are
// held long enough not to be missed: a slow boot (NFS boot, card boot), a slow link (copy), a
// long init script (user script); the other two are caught in passing: the fault comes once
// the last node requested is being powered on, while the node before it is being configured.
const (
	roleUserScript = iota
	roleCardBoot
	roleCopy
	roleConfiguration
	roleNFSBoot
	rolePowerOn
	roles
)

// faultRoundLab is the lab of the rounds: the nodes of roleCardBoot and roleNFSBoot boot in
// 30 s, roleCopy's link runs at 1 MB/s (its copy takes over a minute).
func faultRoundLab() lab.Options {
	specs := make([]lab.NodeSpec, roles)
	specs[roleCardBoot].BootDelay = 30 * time.Second
	specs[roleNFSBoot].BootDelay = 30 * time.Second
	specs[roleCopy].LinkMbit = 8
	return lab.Options{Nodes: roles, Specs: specs}
}

// faultRound deploys c's nodes staggered (c's deployments must be at rest) with the daemon d
// running, injects fault once they are spread over the phases, and checks that every one
// ends deployed within bound of the fault. It returns the daemon running after the fault.
func faultRound(t *testing.T, c *labCluster, d *daemon, name string, fault func(d *daemon) *daemon) *daemon {
	t.Helper()
	ctx := context.Background()
	request := func(roles ...int) {
		for _, r := range roles {
			if err := c.st.RequestProcess(ctx, c.ds[r].ID, process.Deploy); err != nil {
				t.Fatal(err)
			}
		}
	}
	// in reports whether the node of role r is in one of states; a lost or failed one fails.
	in := func(r int, states ...process.StateName) func() bool {
		return func() bool {
			d := c.deployment(t, r)
			if d.State == process.Lost || d.State == process.Failed {
				t.Fatalf("%s (%s) ended %s before the fault: %s", c.lab.Desc.Nodes[r].Name, roleName(r), d.State, d.LastError)
			}
			return slices.Contains(states, d.State)
		}
	}
	fmt.Fprintf(c.out, "---- round: %s ----\n", name)
	// The chain is timed on the configuration node, whose phase is the shortest: once it is
	// configured, the card-boot node (requested a copy ahead, 30 s of boot each time) waits
	// for its card, the NFS-boot node (requested at its copy) for its NFS system, the copy
	// node copies at 1 MB/s, the user-script node sleeps, and the last node is powered on.
	request(roleUserScript, roleCardBoot)
	waitFor(t, 5*time.Minute, "the card-boot node to copy", in(roleCardBoot, process.EnvCopy))
	request(roleCopy, roleConfiguration)
	waitFor(t, 5*time.Minute, "the configuration node to copy", in(roleConfiguration, process.EnvCopy))
	request(roleNFSBoot)
	waitFor(t, 5*time.Minute, "the configuration node to be configured", in(roleConfiguration, process.Partition, process.SystemConf))
	request(rolePowerOn)
	// Caught in passing: on a loaded machine the last node may be past power-on already.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && !in(rolePowerOn, process.TurnOff, process.TurnOn)(); {
		time.Sleep(50 * time.Millisecond)
	}
	at := make([]*store.Deployment, roles)
	for r := range roles {
		at[r] = c.deployment(t, r)
	}
	injected := time.Now()
	d = fault(d)

	const bound = 10 * time.Minute
	ended := make([]time.Duration, roles)
	waitFor(t, bound, "every deployment to end after "+name, func() bool {
		for r := range roles {
			if ended[r] > 0 {
				continue
			}
			var got store.Deployment
			if err := storetest.DB(c.st).First(&got, c.ds[r].ID).Error; err != nil {
				return false // the database may be on its way back
			}
			if !got.Active() {
				ended[r] = time.Since(injected)
			}
		}
		return !slices.Contains(ended, 0)
	})
	var table strings.Builder
	fmt.Fprintf(&table, "| fault | node | phase at the fault | state | outcome | ended after |\n|---|---|---|---|---|---|\n")
	phases := map[string]bool{}
	for r := range roles {
		end := c.deployment(t, r)
		phase := deploytest.Phase(at[r].State)
		phases[phase] = true
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %s | %.1f s |\n", name, c.lab.Desc.Nodes[r].Name, phase, at[r].State, end.State, ended[r].Seconds())
		if end.State != process.Deployed {
			t.Errorf("%s (%s during %s) ended %s in %s: %q, want deployed", c.lab.Desc.Nodes[r].Name, name, phase, end.State, end.ResumeState, end.LastError)
		}
	}
	t.Logf("%s with the nodes in %d phases, all ended within %s (bound %s):\n%s", name, len(phases),
		slices.Max(ended).Round(100*time.Millisecond), bound, table.String())
	// The four phases held for tens of seconds cannot all be missed.
	if len(phases) < 3 {
		t.Errorf("the nodes were in %d phases at the fault (%v): the round was not spread", len(phases), phases)
	}
	return d
}

func roleName(r int) string {
	return [...]string{"user script", "card boot", "copy", "configuration", "NFS boot", "power-on"}[r]
}

// TestWholeSystemFaultsAcrossPhases is the fault matrix's whole-system cells: a round with
// pitasks SIGKILLed (restarted 3 s later), a round with the database (a private MariaDB) shut
// down and started again 4 s later, then a round with the switch's SNMP agent stopped
// (SIGSTOP) for 20 s, each hitting six nodes spread over the six phases of a deployment.
// Every node is deployed after each fault.
func TestWholeSystemFaultsAcrossPhases(t *testing.T) {
	db := storetest.PrivateMariaDB(t)
	c := newLabClusterWith(t, db.URL(), faultRoundLab(), 60*time.Second, "90/240")
	// The nodes start free, as destroyed ones: each round requests them one by one.
	ids := make([]uint, len(c.ds))
	for i, d := range c.ds {
		ids[i] = d.ID
	}
	if err := storetest.DB(c.st).Model(&store.Deployment{}).Where("id IN ?", ids).
		Updates(map[string]any{"process": process.Destroy, "state": process.Destroyed, "queued": false}).Error; err != nil {
		t.Fatal(err)
	}
	// The user-script node's script outlasts the other nodes' holds.
	if err := storetest.DB(c.st).Model(&store.Deployment{}).Where("id = ?", c.ds[roleUserScript].ID).
		Update("init_script", "sleep 120").Error; err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, c.cfg, c.out)
	d = faultRound(t, c, d, "pitasks SIGKILLed", func(d *daemon) *daemon {
		return killAndRestart(t, d, c.cfg, 3*time.Second)
	})
	d = faultRound(t, c, d, "database restarted", func(d *daemon) *daemon {
		restartDatabase(c, db, 4*time.Second)
		return d
	})
	faultRound(t, c, d, "switch frozen 20 s", func(d *daemon) *daemon {
		freezeSwitch(t, c, 20*time.Second)
		return d
	})
}

// freezeSwitch stops the lab switch's SNMP agent (SIGSTOP), as a hung switch, for frozen.
func freezeSwitch(t *testing.T, c *labCluster, frozen time.Duration) {
	pid := c.lab.Desc.Switch.PID
	thaw := func() { syscall.Kill(pid, syscall.SIGCONT) }
	t.Cleanup(thaw) // never leave the lab's switch stopped
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c.out, "---- switch frozen for %s ----\n", frozen)
	time.Sleep(frozen) // the fault's own length, not a wait for a condition
	thaw()
	fmt.Fprintln(c.out, "---- switch thawed ----")
}
