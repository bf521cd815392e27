package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/labtest"
	"github.com/piseduce/piseduce/pkg/clusterdesc"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// The test binary doubles as pitasks: the tests below run it as a separate process, so that
// they can kill it like a crash would.
func TestMain(m *testing.M) {
	if os.Getenv("PITASKS_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// daemon is a pitasks process.
type daemon struct {
	cmd *exec.Cmd
	out *labtest.Log
}

func startDaemon(t *testing.T, cfg string, out *labtest.Log) *daemon {
	t.Helper()
	return startPitasks(t, out, nil, "-config", cfg, "-log-level", "debug")
}

// startPitasks starts the test binary as pitasks with args, env added to the environment, and
// only the capabilities admin/pitasks.service leaves it (its CapabilityBoundingSet): the tests
// that deploy the lab's nodes with it prove that they are enough.
func startPitasks(t *testing.T, out *labtest.Log, env []string, args ...string) *daemon {
	t.Helper()
	setpriv := testenv.NeedCommand(t, "setpriv")
	cmd := exec.Command(setpriv, append([]string{"--bounding-set", "-all," + unitCapabilities(t), "--inh-caps", "-all",
		"--", os.Args[0]}, args...)...)
	cmd.Env = append(append(os.Environ(), "PITASKS_AS_MAIN=1"), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, out: out}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	return d
}

// unitCapabilities is the CapabilityBoundingSet of admin/pitasks.service as setpriv takes it:
// "+kill,+dac_override".
func unitCapabilities(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../admin/pitasks.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapabilityBoundingSet="); ok && strings.TrimSpace(v) != "" {
			var caps []string
			for _, c := range strings.Fields(v) {
				caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
			}
			return strings.Join(caps, ",")
		}
	}
	t.Fatal("admin/pitasks.service has no CapabilityBoundingSet")
	return ""
}

// labCluster is a lab imported into a database through the pitasks command, with one
// deployment request per node on an environment whose copy takes a while.
type labCluster struct {
	lab *lab.Lab
	st  *store.Store
	cfg string
	ds  []store.Deployment
	out *labtest.Log
}

func newLabCluster(t *testing.T, dbURL string, nodes int) *labCluster {
	t.Helper()
	return newLabClusterWith(t, dbURL, lab.Options{Nodes: nodes}, 5*time.Second, "8/20")
}

// newLabClusterWith is newLabCluster on a lab brought up with o, with pitasks' [tasks] lease
// and the deploy process's waits for SSH (before the hard reboot/before the node is lost, in
// seconds) as given.
func newLabClusterWith(t *testing.T, dbURL string, o lab.Options, lease time.Duration, sshWaits string) *labCluster {
	t.Helper()
	l, _ := labtest.Up(t, o)
	ctx := context.Background()
	dir := t.TempDir()
	c := &labCluster{lab: l, out: &labtest.Log{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pitasks output:\n%s", labtest.Tail(c.out.String(), 12000))
		}
	})
	d := l.Desc
	c.cfg = filepath.Join(dir, "seducepp.conf")
	conf := fmt.Sprintf(`[db]
connection_url = %s
[tasks]
tick = @every 1s
lease = %s
stop_grace = 5s
[cluster]
tftp_root = %s
nfs_boot_dir = %s
img_dir = %s
ssh_key = %s
nfs_host_key = %s
[timeouts]
deploy.ssh_nfs = %[8]s
deploy.ssh_system = %[8]s
`, dbURL, lease, d.TFTPRoot, d.NFSBootDir, filepath.Dir(d.Image.Img), d.PimasterKey, d.NFSHostPubKey, sshWaits)
	if err := os.WriteFile(c.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cd := filepath.Join(dir, "cluster_desc")
	if err := d.WriteClusterDesc(cd); err != nil {
		t.Fatal(err)
	}
	if out, err := c.pitasks("import-cluster", cd); err != nil {
		t.Fatalf("import-cluster: %v\n%s", err, out)
	}
	var err error
	c.st, err = store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.st.Close() })
	// The raw image inflated by the pimaster: 76 MiB on a 10 MB/s link, several seconds of copy.
	env := store.Environment{Name: "raw", ImageName: filepath.Base(d.Image.Img), ImageFormat: image.Raw,
		DecompressOn: "pimaster", SSHUser: lab.ImageUser, Shell: "bash", Type: store.EnvDefault}
	user := store.User{Email: "ada@example.com", PasswordHash: "x", Authorized: true}
	var ns []store.Node
	storetest.DB(c.st).Create(&env)
	storetest.DB(c.st).Create(&user)
	storetest.DB(c.st).Order("port").Find(&ns)
	now := time.Now().UTC()
	res := store.Reservation{UserID: user.ID, StartsAt: now, EndsAt: now.Add(time.Hour), Nodes: ns}
	storetest.DB(c.st).Create(&res)
	for _, n := range ns {
		c.ds = append(c.ds, store.Deployment{ReservationID: res.ID, NodeID: n.ID, UserID: user.ID, EnvironmentID: env.ID, Name: "crash"})
	}
	if err := c.st.CreateDeployments(ctx, c.ds); err != nil {
		t.Fatal(err)
	}
	return c
}

// pitasks runs a pitasks subcommand to its end.
func (c *labCluster) pitasks(args ...string) (string, error) {
	cmd := exec.Command(os.Args[0], append([]string{"-config", c.cfg}, args...)...)
	cmd.Env = append(os.Environ(), "PITASKS_AS_MAIN=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *labCluster) deployment(t *testing.T, i int) *store.Deployment {
	t.Helper()
	var d store.Deployment
	if err := storetest.DB(c.st).First(&d, c.ds[i].ID).Error; err != nil {
		return &store.Deployment{}
	}
	return &d
}

// waitFor polls until cond holds.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
	}
}

func inCopy(c *labCluster, t *testing.T, frac float64) func() bool {
	return func() bool {
		d := c.deployment(t, 0)
		return d.State == "env_copy" && d.BytesTotal > 0 && float64(d.BytesDone) > frac*float64(d.BytesTotal)
	}
}

func deployed(c *labCluster, t *testing.T) func() bool {
	return func() bool {
		d := c.deployment(t, 0)
		if d.State == process.Lost || d.State == process.Failed {
			t.Fatalf("deployment ended %s: %s", d.State, d.LastError)
		}
		return d.State == "deployed"
	}
}

func TestPitasksKilledDuringCopyResumes(t *testing.T) {
	c := newLabCluster(t, "sqlite://"+t.TempDir()+"/piseduce.db", 1)
	first := startDaemon(t, c.cfg, c.out)
	waitFor(t, 2*time.Minute, "the copy to be under way", inCopy(c, t, 0.3))
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.cmd.Wait()
	killedAt := c.deployment(t, 0)
	t.Logf("pitasks killed at %d of %d bytes, lease held by %s", killedAt.BytesDone, killedAt.BytesTotal, killedAt.LeaseOwner)
	if killedAt.LeaseOwner == "" {
		t.Fatal("the killed pitasks held no lease: the test proves nothing")
	}
	fmt.Fprintln(c.out, "---- second pitasks ----")
	second := startDaemon(t, c.cfg, c.out)
	waitFor(t, 3*time.Minute, "deployed", deployed(c, t))
	var copies int64
	storetest.DB(c.st).Model(&store.StateEvent{}).Where("deployment_id = ? AND state = ? AND outcome = ?", c.ds[0].ID, "env_copy", "done").Count(&copies)
	if copies != 1 {
		t.Errorf("%d finished copies, want 1", copies)
	}
	if !strings.Contains(c.out.String(), "image copied") {
		t.Error("the second pitasks never copied the image")
	}
	// A clean stop gives the leases back.
	second.cmd.Process.Signal(syscall.SIGTERM)
	if err := second.cmd.Wait(); err != nil {
		t.Errorf("pitasks after SIGTERM: %v", err)
	}
	var held int64
	storetest.DB(c.st).Model(&store.Deployment{}).Where("lease_owner <> ''").Count(&held)
	if held != 0 {
		t.Errorf("%d leases still held after a clean stop", held)
	}
}

func TestPitasksRidesOutADatabaseRestart(t *testing.T) {
	db := storetest.PrivateMariaDB(t)
	c := newLabCluster(t, db.URL(), 1)
	startDaemon(t, c.cfg, c.out)
	waitFor(t, 2*time.Minute, "the copy to be under way", inCopy(c, t, 0.2))
	restartDatabase(c, db, 4*time.Second)
	waitFor(t, 3*time.Minute, "deployed", deployed(c, t))
	// The outage was felt (and logged) by pitasks, not slept through.
	_, during, _ := strings.Cut(c.out.String(), "---- database stopped ----")
	during, _, _ = strings.Cut(during, "---- database started ----")
	var felt []string
	for _, l := range strings.Split(during, "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			felt = append(felt, l)
		}
	}
	if len(felt) == 0 {
		t.Fatal("pitasks logged no error while the database was down")
	}
	t.Logf("while the database was down, e.g.: %s", felt[0])
}

// TestPitasksCarriesOutWebDiscoveryRequests: an admin asks for a discovery on the web (a
// DiscoveryRun row); the running pitasks carries it out and registers the lab's node, its
// progress written line by line for the page.
func TestPitasksCarriesOutWebDiscoveryRequests(t *testing.T) {
	l, _ := labtest.Up(t, lab.Options{Nodes: 1, NoDHCPHosts: true})
	ctx := context.Background()
	dir := t.TempDir()
	dbURL := "sqlite://" + dir + "/piseduce.db"
	cfg := filepath.Join(dir, "seducepp.conf")
	if err := os.WriteFile(cfg, []byte(l.Desc.SeduceppConf(dbURL, 9000)), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The switch is registered, its nodes are not.
	cd := l.Desc.ClusterDesc()
	cd.Nodes = nil
	if _, err := clusterdesc.Import(ctx, st, cd, filepath.Dir(l.Desc.Image.Gz)); err != nil {
		t.Fatal(err)
	}
	sw, err := st.SwitchByName(ctx, l.Desc.Switch.Name)
	if err != nil {
		t.Fatal(err)
	}
	run, err := st.RequestDiscovery(ctx, sw.ID, []int{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := &labtest.Log{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pitasks output:\n%s", labtest.Tail(out.String(), 8000))
		}
	})
	startDaemon(t, cfg, out)
	var r *store.DiscoveryRun
	waitFor(t, 2*time.Minute, "the discovery run to end", func() bool {
		r, err = st.DiscoveryRun(ctx, run.ID)
		return err == nil && (r.State == store.DiscoveryDone || r.State == store.DiscoveryFailed)
	})
	if r.State != store.DiscoveryDone {
		t.Fatalf("discovery %s: %s\n%s", r.State, r.Error, r.Output)
	}
	want := l.Desc.Nodes[0]
	var n store.Node
	if err := storetest.DB(st).Where("port = ?", 1).First(&n).Error; err != nil {
		t.Fatalf("no node registered on port 1: %v\n%s", err, r.Output)
	}
	if n.MAC != want.MAC || n.Serial != want.Serial || n.Model != want.Model || n.IP != want.IP {
		t.Fatalf("registered %+v, the lab's node is %+v", n, want)
	}
	if lines := strings.Count(r.Output, "\n"); lines < 3 {
		t.Fatalf("the run's output has %d lines:\n%s", lines, r.Output)
	}
	t.Logf("discovered %s (%s, serial %s) through a web request; %d lines of output", n.Name, n.MAC, n.Serial, strings.Count(r.Output, "\n"))

	// The web's port requests: the same pitasks switches the lab's port 1 off, then reads the
	// switch, under its lease.
	off, err := st.RequestPort(ctx, sw.ID, 1, store.PortOff, 0)
	if err != nil {
		t.Fatal(err)
	}
	read, err := st.RequestPort(ctx, sw.ID, 0, store.PortStatus, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint{off.ID, read.ID} {
		var pr *store.PortRequest
		waitFor(t, 2*time.Minute, "the port request to end", func() bool {
			pr, err = st.PortRequest(ctx, id)
			return err == nil && (pr.State == store.RequestDone || pr.State == store.RequestFailed)
		})
		states, err := pr.PortStates()
		if pr.State != store.RequestDone || err != nil || states[1].On || pr.Owner == "" || pr.LeaseUntil == nil {
			t.Fatalf("port request %s: %+v %v", pr.Action, pr, err)
		}
	}
	if on, err := l.Switch().PortOn(1); err != nil || on {
		t.Fatalf("lab port 1 after the off request: on=%v %v", on, err)
	}
}
