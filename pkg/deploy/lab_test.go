package deploy_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/pkg/clusterdesc"
	"github.com/piseduce/piseduce/pkg/deploy"
	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/netboot"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// harness is pitasks with its real drivers pointed at a virtual Pi lab.
type harness struct {
	t       *testing.T
	lab     *lab.Lab
	st      *store.Store
	eng     *engine.Engine
	dep     *deploy.Deployer
	user    store.User
	userKey ssh.Signer
	nodes   []store.Node
	env     store.Environment
	tftp    netboot.TFTP
	log     *bytes.Buffer
}

func newKey(t *testing.T) ssh.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startLab brings up a lab of n nodes, imports it like an admin would (its cluster_desc/
// folder) and builds the engine with the real drivers.
func startLab(t *testing.T, n int, specs []lab.NodeSpec) *harness {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, lab.Commands...)
	// Not t.TempDir(): dnsmasq, which serves TFTP as an unprivileged user, must reach the files.
	dir, err := os.MkdirTemp("/var/tmp", "piseduce-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	var labLog bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{Dir: filepath.Join(dir, "lab"), Nodes: n, Specs: specs, Log: &labLog})
	if err != nil {
		t.Fatalf("lab: %v\n%s", err, labLog.String())
	}
	h := &harness{t: t, lab: l, log: &bytes.Buffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab log:\n%s", tail(labLog.String(), 6000))
			t.Logf("pitasks log:\n%s", tail(h.log.String(), 8000))
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	desc := l.Desc
	cd := filepath.Join(dir, "cluster_desc")
	if err := desc.WriteClusterDesc(cd); err != nil {
		t.Fatal(err)
	}
	cluster, err := clusterdesc.Read(cd)
	if err != nil {
		t.Fatal(err)
	}
	h.st = storetest.Open(t, "sqlite")
	if _, err := clusterdesc.Import(ctx, h.st, cluster); err != nil {
		t.Fatal(err)
	}
	h.st.DB.Order("port").Find(&h.nodes)
	if len(h.nodes) != n {
		t.Fatalf("imported %d nodes", len(h.nodes))
	}
	h.st.DB.First(&h.env)

	h.userKey = newKey(t)
	h.user = store.User{Email: "ada@example.com", PasswordHash: "x", FirstName: "Ada", Authorized: true,
		SSHKey: remote.AuthorizedKey(h.userKey.PublicKey())}
	h.st.DB.Create(&h.user)

	signer, err := remote.LoadOrCreateKey(desc.PimasterKey)
	if err != nil {
		t.Fatal(err)
	}
	nfsKey, err := os.ReadFile(desc.NFSHostPubKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.st.SetHostKey(ctx, remote.RoleNFS, 0, strings.TrimSpace(string(nfsKey))); err != nil {
		t.Fatal(err)
	}
	h.tftp = netboot.TFTP{Root: desc.TFTPRoot, NFSBootDir: desc.NFSBootDir}
	h.dep = deploy.New(deploy.Deployer{
		Dialer:       deploy.SSH{Dialer: &remote.Dialer{Signer: signer, Keys: deploy.GuardedKeys{HostKeyStore: h.st}, Timeout: 5 * time.Second}},
		Switches:     &deploy.SNMPSwitches{Timeout: time.Second, Retries: 1},
		Boot:         h.tftp,
		Keys:         h.st,
		ImgDir:       filepath.Dir(desc.Image.Gz),
		NFSHostname:  "nfspi",
		PimasterKey:  remote.AuthorizedKey(signer.PublicKey()),
		PowerOffWait: 500 * time.Millisecond,
	}, 8)
	h.eng, err = engine.New(engine.Options{Store: h.st, Steps: h.dep.Steps(), Rebooter: h.dep,
		Log:     slog.New(slog.NewTextHandler(&syncWriter{w: h.log}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Workers: 16, StepDeadline: 2 * time.Minute, PollInterval: 300 * time.Millisecond,
		Timeouts: map[string]process.State{
			"ssh_nfs":    {BeforeReboot: 8 * time.Second, Lost: 20 * time.Second},
			"ssh_system": {BeforeReboot: 8 * time.Second, Lost: 20 * time.Second},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.eng.Stop(ctx)
	})
	return h
}

// syncWriter serialises log writes from the engine's workers.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// request is what a user fills in the deploy form.
type request struct {
	env      *store.Environment // nil: the lab's test environment
	sizeMiB  int64
	password string
	key      ssh.Signer
	script   string
}

// deploy asks for a deployment of each node and returns the rows.
func (h *harness) deploy(nodes []store.Node, req request) []store.Deployment {
	h.t.Helper()
	now := time.Now().UTC()
	res := store.Reservation{UserID: h.user.ID, StartsAt: now, EndsAt: now.Add(2 * time.Hour), Nodes: nodes}
	if err := h.st.DB.Create(&res).Error; err != nil {
		h.t.Fatal(err)
	}
	env := req.env
	if env == nil {
		env = &h.env
	}
	ds := make([]store.Deployment, len(nodes))
	for i, n := range nodes {
		ds[i] = store.Deployment{ReservationID: res.ID, NodeID: n.ID, UserID: h.user.ID, EnvironmentID: env.ID,
			Name: "e2e", SystemSize: req.sizeMiB, SystemPassword: req.password, InitScript: req.script}
		if req.key != nil {
			ds[i].PublicKey = remote.AuthorizedKey(req.key.PublicKey())
		}
	}
	if err := h.st.CreateDeployments(context.Background(), ds); err != nil {
		h.t.Fatal(err)
	}
	return ds
}

// runUntil ticks the engine (as pitasks' cron does) until every deployment is in one of the
// given states, and fails the test if one ends lost or failed first.
func (h *harness) runUntil(ds []store.Deployment, limit time.Duration, states ...string) {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if err := h.eng.Tick(context.Background()); err != nil {
			h.t.Fatal(err)
		}
		done := 0
		for _, d := range ds {
			got := h.load(d.ID)
			if got.State == store.StateLost || got.State == store.StateFailed {
				h.t.Fatalf("%s ended %s in %s: %s", got.Node.Name, got.State, got.ResumeState, got.LastError)
			}
			for _, s := range states {
				if got.State == s {
					done++
				}
			}
		}
		if done == len(ds) {
			return
		}
		if time.Now().After(deadline) {
			for _, d := range ds {
				got := h.load(d.ID)
				h.t.Logf("%s: %s/%s %s", got.Node.Name, got.Process, got.State, got.LastError)
			}
			h.t.Fatalf("not all %v after %s", states, limit)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitEnd ticks the engine until no deployment has work left, and returns them as they ended.
func (h *harness) waitEnd(ds []store.Deployment, limit time.Duration) map[uint]*store.Deployment {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if err := h.eng.Tick(context.Background()); err != nil {
			h.t.Fatal(err)
		}
		end := map[uint]*store.Deployment{}
		for _, d := range ds {
			if got := h.load(d.ID); !got.Active() {
				end[d.ID] = got
			}
		}
		if len(end) == len(ds) {
			return end
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d of %d deployments still running after %s", len(ds)-len(end), len(ds), limit)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// events returns the state events of a deployment.
func (h *harness) events(id uint) []store.StateEvent {
	var evs []store.StateEvent
	h.st.DB.Where("deployment_id = ?", id).Order("id").Find(&evs)
	return evs
}

func (h *harness) load(id uint) *store.Deployment {
	d, err := h.st.Deployment(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// dialAs logs into a deployed node as user, checking its host key against the one pitasks
// pinned.
func (h *harness) dialAs(n store.Node, user string, auth ssh.AuthMethod) (*ssh.Client, error) {
	key, found, err := h.st.HostKey(context.Background(), remote.RoleSystem, n.ID)
	if err != nil || !found {
		return nil, fmt.Errorf("no pinned host key for %s: %v", n.Name, err)
	}
	pk, err := remote.ParseKey(key)
	if err != nil {
		return nil, err
	}
	return ssh.Dial("tcp", net.JoinHostPort(n.IP, "22"), &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: ssh.FixedHostKey(pk), Timeout: 5 * time.Second})
}

func output(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return strings.TrimSpace(string(out)), err
}

// cardFile reads a file from the ext4 root partition of a node's card file, with debugfs:
// proof that the deployment wrote the card itself.
func (h *harness) cardFile(n store.Node, path string) string {
	h.t.Helper()
	nd := h.lab.Desc.Node(n.Name)
	off := h.lab.Desc.Image.SectorStart * 512
	out, err := exec.Command("debugfs", "-R", "cat "+path, fmt.Sprintf("%s?offset=%d", nd.Card, off)).Output()
	if err != nil {
		h.t.Fatalf("debugfs %s on %s: %v", path, n.Name, err)
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func TestDeployThreeLabNodesEndToEnd(t *testing.T) {
	h := startLab(t, 3, nil)
	deployKey := newKey(t)
	password := `p4ss 'with" $(quotes) ; and` + "`ticks`"
	script := "#!/bin/bash\nset -e\necho \"hello from $(hostname)\" | tee /home/pi/hello.txt\nid -un\n"
	t0 := time.Now()
	ds := h.deploy(h.nodes, request{sizeMiB: 200, password: password, key: deployKey, script: script})
	h.runUntil(ds, 4*time.Minute, "deployed")
	took := time.Since(t0)
	t.Logf("3 nodes deployed in %s", took.Round(100*time.Millisecond))

	for i, n := range h.nodes {
		d := h.load(ds[i].ID)
		if d.BytesDone != d.BytesTotal || d.BytesTotal == 0 {
			t.Errorf("%s: progress %d/%d", n.Name, d.BytesDone, d.BytesTotal)
		}
		if !strings.Contains(d.ScriptOutput, "hello from "+n.Name) || !strings.Contains(d.ScriptOutput, "exit status 0") {
			t.Errorf("%s: script output %q", n.Name, d.ScriptOutput)
		}
		// As the user would: the environment's account, with the account key and with the
		// deployment key, then with the password.
		for _, k := range []ssh.Signer{h.userKey, deployKey} {
			c, err := h.dialAs(n, lab.ImageUser, ssh.PublicKeys(k))
			if err != nil {
				t.Fatalf("%s: ssh as pi: %v", n.Name, err)
			}
			if got, _ := output(c, "hostname"); got != n.Name {
				t.Errorf("%s: hostname %q", n.Name, got)
			}
			if got, _ := output(c, "cat /home/pi/hello.txt"); got != "hello from "+n.Name {
				t.Errorf("%s: init script file %q", n.Name, got)
			}
			if got, _ := output(c, "cat /var/log/piseduce-init.log"); !strings.Contains(got, "hello from "+n.Name) {
				t.Errorf("%s: init log on the node %q", n.Name, got)
			}
			c.Close()
		}
		c, err := h.dialAs(n, lab.ImageUser, ssh.Password(password))
		if err != nil {
			t.Fatalf("%s: the OS password does not work: %v", n.Name, err)
		}
		c.Close()
		if _, err := h.dialAs(n, lab.ImageUser, ssh.Password(lab.ImagePassword)); err == nil {
			t.Errorf("%s: the image's default password still works", n.Name)
		}
		root, err := h.dialAs(n, "root", ssh.PublicKeys(mustSigner(t, h.lab.Desc.PimasterKey)))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := output(root, "blockdev --getsz /dev/mmcblk0p2"); got != strconv.Itoa(200*2048) {
			t.Errorf("%s: root partition is %s sectors, want 200 MiB", n.Name, got)
		}
		if got, _ := output(root, "df -k / | tail -1 | awk '{print $2}'"); got == "" {
			t.Errorf("%s: df: %q", n.Name, got)
		}
		root.Close()
	}

	// Destroy: powered off, free, TFTP folders cleared.
	for _, d := range ds {
		if err := h.st.RequestProcess(context.Background(), d.ID, process.Destroy); err != nil {
			t.Fatal(err)
		}
	}
	h.runUntil(ds, time.Minute, "destroyed")
	for _, n := range h.nodes {
		on, err := h.lab.Switch().PortOn(n.Port)
		if err != nil || on {
			t.Errorf("%s: port still on after destroy (%v)", n.Name, err)
		}
		if m, _ := h.tftp.Mode(n.Serial); m != netboot.ModeNone {
			t.Errorf("%s: TFTP folder left in mode %s", n.Name, m)
		}
	}
	// On the cards themselves, once the nodes are off (their file systems are unmounted).
	for _, n := range h.nodes {
		if got := strings.TrimSpace(h.cardFile(n, "/etc/hostname")); got != n.Name {
			t.Errorf("%s: /etc/hostname on the card is %q", n.Name, got)
		}
		if got := h.cardFile(n, "/home/pi/hello.txt"); !strings.Contains(got, "hello from "+n.Name) {
			t.Errorf("%s: hello.txt on the card is %q", n.Name, got)
		}
		if got := h.cardFile(n, "/etc/shadow"); strings.Contains(got, password) {
			t.Errorf("%s: the password is stored in clear", n.Name)
		}
	}
}

func mustSigner(t *testing.T, path string) ssh.Signer {
	s, err := remote.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
