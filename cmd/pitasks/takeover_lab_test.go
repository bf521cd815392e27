package main

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// killAndRestart is the fault "pitasks SIGKILLed, restarted pause later": it kills d like a
// crash would (no clean stop, its leases and heartbeat left as they were), waits for it to
// exit, then starts another pitasks on cfg. The fault matrix uses it too.
func killAndRestart(t *testing.T, d *daemon, cfg string, pause time.Duration) *daemon {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.cmd.Wait()
	fmt.Fprintf(d.out, "---- pitasks killed; restarted in %s ----\n", pause)
	time.Sleep(pause) // the fault's own pause, not a wait for a condition
	return startDaemon(t, cfg, d.out)
}

// stopDaemon stops d cleanly (SIGTERM) and waits for it.
func stopDaemon(t *testing.T, d *daemon) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("pitasks after SIGTERM: %v", err)
	}
}

// allDeployed reports whether every deployment of c is deployed; a lost or failed one fails.
func allDeployed(c *labCluster, t *testing.T) func() bool {
	return func() bool {
		for i := range c.ds {
			d := c.deployment(t, i)
			if d.State == process.Lost || d.State == process.Failed {
				t.Fatalf("deployment %d ended %s: %s", d.ID, d.State, d.LastError)
			}
			if d.State != "deployed" {
				return false
			}
		}
		return true
	}
}

// TestPitasksKilledMidCopyIsTakenOverInSeconds: three nodes are deployed again, once cleanly
// and once with pitasks SIGKILLed in the middle of the copy and restarted 3 s later, with the
// default 60 s lease. The new pitasks sees at start that the old one is gone and takes its
// leases over at once: the fault costs seconds, not the lease's minute.
func TestPitasksKilledMidCopyIsTakenOverInSeconds(t *testing.T) {
	// Generous waits for SSH: on a loaded machine the nodes boot slowly, and both runs wait alike.
	c := newLabClusterWith(t, "sqlite://"+t.TempDir()+"/piseduce.db", 3, 60*time.Second, "60/180")
	ctx := context.Background()
	// A first deployment brings the nodes and the caches to the state of the runs measured.
	d := startDaemon(t, c.cfg, c.out)
	waitFor(t, 10*time.Minute, "the first deployment", allDeployed(c, t))
	stopDaemon(t, d)

	redeploy := func() {
		t.Helper()
		for _, d := range c.ds {
			if err := c.st.RequestProcess(ctx, d.ID, process.Deploy); err != nil {
				t.Fatal(err)
			}
		}
	}
	redeploy()
	fmt.Fprintln(c.out, "---- clean run ----")
	start := time.Now()
	d = startDaemon(t, c.cfg, c.out)
	waitFor(t, 10*time.Minute, "the clean run", allDeployed(c, t))
	clean := time.Since(start)
	stopDaemon(t, d)

	redeploy()
	fmt.Fprintln(c.out, "---- run with pitasks killed mid-copy ----")
	start = time.Now()
	d = startDaemon(t, c.cfg, c.out)
	waitFor(t, 5*time.Minute, "the copy to be under way", inCopy(c, t, 0.3))
	killedAt := c.deployment(t, 0)
	if killedAt.LeaseOwner == "" {
		t.Fatal("the killed pitasks held no lease: the test proves nothing")
	}
	killed := time.Now()
	d = killAndRestart(t, d, c.cfg, 3*time.Second)
	// The new pitasks holds the lease the killed one held: how long the fault kept the copy
	// from going on, the 3 s pause included.
	waitFor(t, 5*time.Minute, "another pitasks to take the deployment", func() bool {
		o := c.deployment(t, 0).LeaseOwner
		return o != "" && o != killedAt.LeaseOwner
	})
	takeover := time.Since(killed)
	waitFor(t, 10*time.Minute, "the run with the fault", allDeployed(c, t))
	faulted := time.Since(start)
	added := faulted - clean
	t.Logf("3 nodes deployed again: clean %s, with pitasks SIGKILLed at %d%% of node 1's copy and restarted 3 s later %s: %+.1fs (ratio %.2f); lease taken over %.1fs after the kill",
		clean.Round(100*time.Millisecond), killedAt.BytesDone*100/max(killedAt.BytesTotal, 1), faulted.Round(100*time.Millisecond),
		added.Seconds(), faulted.Seconds()/clean.Seconds(), takeover.Seconds())
	// Waiting for the killed pitasks's 60 s lease to run out would take a minute.
	if takeover > 30*time.Second {
		t.Errorf("the deployment was taken over %s after the kill: the lease was not taken over at start", takeover.Round(time.Second))
	}
	var hb store.Heartbeat
	if err := storetest.DB(c.st).Where("owner = ?", killedAt.LeaseOwner).First(&hb).Error; err != nil || hb.StoppedAt == nil {
		t.Fatalf("the killed pitasks's heartbeat was not marked taken over: %+v %v", hb, err)
	}
	t.Logf("the killed pitasks: %s", hb.StopReason)
	stopDaemon(t, d)
}
