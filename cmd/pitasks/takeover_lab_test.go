package main

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
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

// faultCost deploys c's nodes again twice, each time with a new pitasks: cleanly, then with
// fault injected once node 1's copy is under way (between 10 % and 80 % of it). fault gets
// the running pitasks and returns the one running after it. It returns both times, the
// copy's progress at the fault, and logs them; a first deployment must have brought the
// nodes and the caches to the state of the runs measured.
func faultCost(t *testing.T, c *labCluster, name string, fault func(d *daemon) *daemon) (clean, faulted time.Duration, at int64) {
	t.Helper()
	ctx := context.Background()
	run := func(what string, fault func(d *daemon) *daemon) time.Duration {
		t.Helper()
		for _, d := range c.ds {
			if err := c.st.RequestProcess(ctx, d.ID, process.Deploy); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(c.out, "---- %s ----\n", what)
		start := time.Now()
		d := startDaemon(t, c.cfg, c.out)
		if fault != nil {
			waitFor(t, 5*time.Minute, "the copy to be under way", func() bool {
				d := c.deployment(t, 0)
				at = d.BytesDone * 100 / max(d.BytesTotal, 1)
				return d.State == process.EnvCopy && at >= 10 && at <= 80
			})
			d = fault(d)
		}
		waitFor(t, 10*time.Minute, what, allDeployed(c, t))
		took := time.Since(start)
		stopDaemon(t, d)
		return took
	}
	clean = run("clean run", nil)
	faulted = run("run with "+name, fault)
	t.Logf("%d nodes deployed again: clean %s, with %s at %d%% of node 1's copy %s: %+.1fs (ratio %.2f)",
		len(c.ds), clean.Round(100*time.Millisecond), name, at, faulted.Round(100*time.Millisecond),
		(faulted - clean).Seconds(), faulted.Seconds()/clean.Seconds())
	return clean, faulted, at
}

// TestPitasksKilledMidCopyIsTakenOverInSeconds: three nodes are deployed again, once cleanly
// and once with pitasks SIGKILLed in the middle of the copy and restarted 3 s later, with the
// default 60 s lease. The new pitasks sees at start that the old one is gone and takes its
// leases over at once: the fault costs seconds, not the lease's minute.
func TestPitasksKilledMidCopyIsTakenOverInSeconds(t *testing.T) {
	// Generous waits for SSH: on a loaded machine the nodes boot slowly, and both runs wait alike.
	c := newLabClusterWith(t, "sqlite://"+t.TempDir()+"/piseduce.db", lab.Options{Nodes: 3}, 60*time.Second, "60/180")
	d := startDaemon(t, c.cfg, c.out)
	waitFor(t, 10*time.Minute, "the first deployment", allDeployed(c, t))
	stopDaemon(t, d)

	var killedAt *store.Deployment
	var takeover time.Duration
	faultCost(t, c, "pitasks SIGKILLed and restarted 3 s later", func(d *daemon) *daemon {
		killedAt = c.deployment(t, 0)
		if killedAt.LeaseOwner == "" {
			t.Fatal("the killed pitasks held no lease: the test proves nothing")
		}
		killed := time.Now()
		d = killAndRestart(t, d, c.cfg, 3*time.Second)
		// The new pitasks holds the lease the killed one held: how long the fault kept the
		// copy from going on, the 3 s pause included.
		waitFor(t, 5*time.Minute, "another pitasks to take the deployment", func() bool {
			o := c.deployment(t, 0).LeaseOwner
			return o != "" && o != killedAt.LeaseOwner
		})
		takeover = time.Since(killed)
		return d
	})
	t.Logf("lease taken over %.1fs after the kill", takeover.Seconds())
	// Waiting for the killed pitasks's 60 s lease to run out would take a minute.
	if takeover > 30*time.Second {
		t.Errorf("the deployment was taken over %s after the kill: the lease was not taken over at start", takeover.Round(time.Second))
	}
	var hb store.Heartbeat
	if err := storetest.DB(c.st).Where("owner = ?", killedAt.LeaseOwner).First(&hb).Error; err != nil || hb.StoppedAt == nil {
		t.Fatalf("the killed pitasks's heartbeat was not marked taken over: %+v %v", hb, err)
	}
	t.Logf("the killed pitasks: %s", hb.StopReason)
}

// TestDatabaseRestartMidCopyOnThreeNodes: three nodes are deployed again, once cleanly and
// once with their database (a private MariaDB) shut down in the middle of the copy and
// started again 4 s later, as an admin's restart would. pitasks rides it out: every node is
// deployed, and the fault costs about the outage.
func TestDatabaseRestartMidCopyOnThreeNodes(t *testing.T) {
	db := storetest.PrivateMariaDB(t)
	c := newLabClusterWith(t, db.URL(), lab.Options{Nodes: 3}, 60*time.Second, "60/180")
	d := startDaemon(t, c.cfg, c.out)
	waitFor(t, 10*time.Minute, "the first deployment", allDeployed(c, t))
	stopDaemon(t, d)

	faultCost(t, c, "the database restarted (down 4 s)", func(d *daemon) *daemon {
		restartDatabase(c, db, 4*time.Second)
		return d
	})
}

// restartDatabase is the fault "the database restarted": db shut down, started again down
// later, as an admin's restart would. The fault matrix uses it too.
func restartDatabase(c *labCluster, db *storetest.MariaDB, down time.Duration) {
	db.Stop()
	fmt.Fprintln(c.out, "---- database stopped ----")
	time.Sleep(down) // the fault's own length, not a wait for a condition
	db.Start()
	fmt.Fprintln(c.out, "---- database started ----")
}
