// Package deploytest is pitasks with its real drivers pointed at a virtual Pi lab: a lab
// brought up, imported as an admin would (its cluster_desc/ folder), and the engine built
// with the real SNMP, TFTP and SSH drivers. The lab tests of pkg/deploy and the lab
// benchmark (bench/) share it.
package deploytest

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/labtest"
	"github.com/piseduce/piseduce/pkg/clusterdesc"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/deploy"
	"github.com/piseduce/piseduce/pkg/discovery"
	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/metrics"
	"github.com/piseduce/piseduce/pkg/netboot"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// Harness is pitasks with its real drivers pointed at a virtual Pi lab.
type Harness struct {
	T        testing.TB
	Lab      *lab.Lab
	Store    *store.Store
	Engine   *engine.Engine
	Deployer *deploy.Deployer
	User     store.User
	UserKey  ssh.Signer
	Nodes    []store.Node      // by port
	Env      store.Environment // the lab's test environment
	TFTP     netboot.TFTP
	Metrics  *metrics.Tasks // the engine's Observer, as in pitasks
	Log      *labtest.Log   // pitasks' log (debug level)
	LabLog   *labtest.Log
	// SSHLost is the wait for a node's SSH before it is lost (Config.SSHLost); the one hard
	// reboot comes at SSHLost*2/5.
	SSHLost time.Duration
	tick    time.Duration // Config.Tick
	calls   recorder
}

// NewKey returns a fresh ed25519 signer.
func NewKey(t testing.TB) ssh.Signer {
	t.Helper()
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

// Config sets pitasks' [tasks] knobs; zero values are pitasks' defaults.
type Config struct {
	Workers    int // deployments worked on at once [pitasks' default]
	MaxBooting int // nodes booting at once [pitasks' default]
	MaxCopying int // images copied at once [pitasks' default]
	// StepDeadline bounds each step [2m]; a real-size image on slow cards needs more.
	StepDeadline time.Duration
	// SSHLost: how long ssh_nfs and ssh_system wait for the node before it is lost [60s]
	// (a hard reboot at 40 % of it). A lab node boots in seconds when the machine is idle; on a
	// machine shared by several test runs it took more than 20 s.
	SSHLost time.Duration
	// NodeSilent: how long a node may not answer before pitasks power-cycles it [20s].
	NodeSilent time.Duration
	// KeepAlive: the SSH keepalive interval; three missed, a connection is dead [5s].
	KeepAlive time.Duration
	// SwitchLimit: how long a state waits for a silent switch before the node is lost
	// [pitasks' default].
	SwitchLimit time.Duration
	// Tick: the time between two ticks of RunUntil and WaitEnd [250ms]; PollInterval: how soon
	// a state not done is looked at again [300ms]. pitasks' defaults are 2s and 1s.
	Tick, PollInterval time.Duration
	// BootEvents: SSH waits are woken by the nodes' DHCP and TFTP requests in dnsmasq's log, as
	// in pitasks (discovery.Boots).
	BootEvents bool
	// BeforeExec, if set, is called in the worker before each step's Exec: a test looks at a
	// node between two states, the deployment waiting for it.
	BeforeExec func(state process.StateName, t *engine.Task)
}

// Start brings up a lab (o.Dir is chosen when empty), imports it like an admin would (its
// cluster_desc/ folder) and builds the engine with the real drivers and pitasks' defaults
// (seducepp.conf's [tasks] workers, max_booting and max_copying). Everything is torn down when t ends.
func Start(t testing.TB, o lab.Options) *Harness {
	t.Helper()
	return StartWith(t, o, Config{})
}

// StartWith is Start with other [tasks] settings.
func StartWith(t testing.TB, o lab.Options, c Config) *Harness {
	t.Helper()
	if c.Workers == 0 {
		c.Workers = config.Default().Tasks.Workers
	}
	if c.MaxBooting == 0 {
		c.MaxBooting = config.Default().Tasks.MaxBooting
	}
	if c.MaxCopying == 0 {
		c.MaxCopying = config.Default().Tasks.MaxCopying
	}
	l, labLog := labtest.Up(t, o)
	h := &Harness{T: t, Lab: l, Log: &labtest.Log{}, LabLog: labLog, SSHLost: cmp.Or(c.SSHLost, 60*time.Second),
		tick: cmp.Or(c.Tick, 250*time.Millisecond)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pitasks log:\n%s", labtest.Tail(h.Log.String(), 8000))
		}
	})
	ctx := context.Background()
	desc := l.Desc
	cd := filepath.Join(t.TempDir(), "cluster_desc")
	if err := desc.WriteClusterDesc(cd); err != nil {
		t.Fatal(err)
	}
	cluster, err := clusterdesc.Read(cd)
	if err != nil {
		t.Fatal(err)
	}
	h.Store = storetest.Open(t, "sqlite")
	if _, err := clusterdesc.Import(ctx, h.Store, cluster, filepath.Dir(desc.Image.Gz)); err != nil {
		t.Fatal(err)
	}
	storetest.DB(h.Store).Order("port").Find(&h.Nodes)
	if len(h.Nodes) != len(desc.Nodes) {
		t.Fatalf("imported %d nodes, the lab has %d", len(h.Nodes), len(desc.Nodes))
	}
	storetest.DB(h.Store).First(&h.Env)

	h.UserKey = NewKey(t)
	h.User = store.User{Email: "ada@example.com", PasswordHash: "x", FirstName: "Ada", Authorized: true,
		SSHKey: remote.AuthorizedKey(h.UserKey.PublicKey())}
	storetest.DB(h.Store).Create(&h.User)

	signer, err := remote.LoadOrCreateKey(desc.PimasterKey)
	if err != nil {
		t.Fatal(err)
	}
	nfsKey, err := os.ReadFile(desc.NFSHostPubKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Store.PinHostKey(ctx, remote.RoleNFS, 0, strings.TrimSpace(string(nfsKey))); err != nil {
		t.Fatal(err)
	}
	h.TFTP = netboot.TFTP{Root: desc.TFTPRoot, NFSBootDir: desc.NFSBootDir}
	h.Deployer = deploy.New(deploy.Deployer{
		Dialer: deploy.SSH{Dialer: &remote.Dialer{Signer: signer, Keys: h.Store, Timeout: 5 * time.Second,
			KeepAlive: cmp.Or(c.KeepAlive, 5*time.Second)}},
		Switches:     &deploy.PowerDrivers{Timeout: time.Second, Retries: 1},
		Boot:         h.TFTP,
		Keys:         h.Store,
		ImgDir:       filepath.Dir(desc.Image.Gz),
		NFSHostname:  "nfspi",
		PimasterKey:  remote.AuthorizedKey(signer.PublicKey()),
		PowerOffWait: 500 * time.Millisecond,
	}, deploy.Limits{Booting: c.MaxBooting, Copying: c.MaxCopying})
	h.Metrics = metrics.NewTasks()
	steps := h.Deployer.Steps()
	for st, step := range steps {
		steps[st] = recordedStep{Step: step, r: &h.calls, state: st, before: c.BeforeExec}
	}
	h.Engine, err = engine.New(engine.Options{Store: h.Store, Steps: steps, Rebooter: h.Deployer,
		Observer: h.Metrics,
		Log:      slog.New(slog.NewTextHandler(h.Log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Workers:  c.Workers, StepDeadline: cmp.Or(c.StepDeadline, 2*time.Minute), PollInterval: cmp.Or(c.PollInterval, 300*time.Millisecond),
		SilentLimit: cmp.Or(c.NodeSilent, 20*time.Second), SwitchLimit: c.SwitchLimit, Timeouts: shortSSHWaits(h.SSHLost)})
	if err != nil {
		t.Fatal(err)
	}
	h.Metrics.WatchLeases(h.Engine.Busy)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Engine.Stop(ctx)
	})
	if c.BootEvents {
		t.Cleanup(h.FollowBoots())
	}
	return h
}

// FollowBoots wakes the SSH waits of the nodes seen booting in the lab's dnsmasq log, as
// pitasks does (discovery.Boots), until the returned func is called.
func (h *Harness) FollowBoots() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&discovery.Boots{Log: h.Lab.Desc.DnsmasqLog, Wake: h.Engine.Wake, Logger: slog.New(slog.NewTextHandler(h.Log, nil)),
			Waiting: func(ctx context.Context, mac, ip string) ([]uint, error) {
				return h.Store.BootWaits(ctx, mac, ip, deploy.BootWaits)
			}}).Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// Call is one Exec or Post of a step, as the engine made it.
type Call struct {
	Deployment uint
	State      process.StateName
	Post       bool // else Exec
	Done       bool // a Post that said the state's work is done
	Err        error
	Start, End time.Time
}

// recorder keeps the engine's step calls, for the benchmark's overhead between states.
type recorder struct {
	mu    sync.Mutex
	calls []Call
}

type recordedStep struct {
	engine.Step
	r      *recorder
	state  process.StateName
	before func(process.StateName, *engine.Task)
}

func (s recordedStep) Exec(ctx context.Context, t *engine.Task) error {
	if s.before != nil {
		s.before(s.state, t)
	}
	c := Call{Deployment: t.D.ID, State: s.state, Start: time.Now()}
	err := s.Step.Exec(ctx, t)
	c.Err = err
	s.r.add(c)
	return err
}

func (s recordedStep) Post(ctx context.Context, t *engine.Task) (bool, error) {
	c := Call{Deployment: t.D.ID, State: s.state, Post: true, Start: time.Now()}
	done, err := s.Step.Post(ctx, t)
	c.Done, c.Err = done && err == nil, err
	s.r.add(c)
	return done, err
}

func (r *recorder) add(c Call) {
	c.End = time.Now()
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
}

// Calls returns the step calls made for deployment id so far, in the order they ended.
func (h *Harness) Calls(id uint) []Call {
	h.calls.mu.Lock()
	defer h.calls.mu.Unlock()
	var out []Call
	for _, c := range h.calls.calls {
		if c.Deployment == id {
			out = append(out, c)
		}
	}
	return out
}

// shortSSHWaits are the lab's timeouts of every wait for SSH: its nodes boot in seconds, so
// lost comes after sshLost, and the one hard reboot at 2/5 of it.
func shortSSHWaits(sshLost time.Duration) map[process.Key]process.Timeout {
	out := map[process.Key]process.Timeout{}
	for _, st := range []process.StateName{process.SSHNFS, process.SSHSystem} {
		for _, k := range process.KeysOf(st) {
			out[k] = process.Timeout{BeforeReboot: sshLost * 2 / 5, Lost: sshLost}
		}
	}
	return out
}

// Request is what a user fills in the deploy form.
type Request struct {
	Env      *store.Environment // nil: the lab's test environment
	SizeMiB  int64
	Password string
	Key      ssh.Signer
	Script   string
}

// Deploy asks for a deployment of each node (one reservation) and returns the rows.
func (h *Harness) Deploy(nodes []store.Node, req Request) []store.Deployment {
	h.T.Helper()
	now := time.Now().UTC()
	res := store.Reservation{UserID: h.User.ID, StartsAt: now, EndsAt: now.Add(2 * time.Hour), Nodes: nodes}
	if err := storetest.DB(h.Store).Create(&res).Error; err != nil {
		h.T.Fatal(err)
	}
	env := req.Env
	if env == nil {
		env = &h.Env
	}
	ds := make([]store.Deployment, len(nodes))
	for i, n := range nodes {
		ds[i] = store.Deployment{ReservationID: res.ID, NodeID: n.ID, UserID: h.User.ID, EnvironmentID: env.ID,
			Name: "e2e", SystemSize: req.SizeMiB, SystemPassword: req.Password, InitScript: req.Script}
		if req.Key != nil {
			ds[i].PublicKey = remote.AuthorizedKey(req.Key.PublicKey())
		}
	}
	if err := h.Store.CreateDeployments(context.Background(), ds); err != nil {
		h.T.Fatal(err)
	}
	return ds
}

// RunUntil ticks the engine (as pitasks' cron does) until every deployment is in one of the
// given states, and fails the test if one ends lost or failed first.
func (h *Harness) RunUntil(ds []store.Deployment, limit time.Duration, states ...process.StateName) {
	h.T.Helper()
	deadline := time.Now().Add(limit)
	for {
		if err := h.Engine.Tick(context.Background()); err != nil {
			h.T.Fatal(err)
		}
		done := 0
		for _, d := range ds {
			got := h.Load(d.ID)
			if got.State == process.Lost || got.State == process.Failed {
				h.T.Fatalf("%s ended %s in %s: %s", got.Node.Name, got.State, got.ResumeState, got.LastError)
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
				got := h.Load(d.ID)
				h.T.Logf("%s: %s/%s %s", got.Node.Name, got.Process, got.State, got.LastError)
			}
			h.T.Fatalf("not all %v after %s", states, limit)
		}
		time.Sleep(h.tick)
	}
}

// WaitEnd ticks the engine until no deployment has work left, and returns them as they ended.
func (h *Harness) WaitEnd(ds []store.Deployment, limit time.Duration) map[uint]*store.Deployment {
	h.T.Helper()
	deadline := time.Now().Add(limit)
	for {
		if err := h.Engine.Tick(context.Background()); err != nil {
			h.T.Fatal(err)
		}
		end := map[uint]*store.Deployment{}
		for _, d := range ds {
			if got := h.Load(d.ID); !got.Active() {
				end[d.ID] = got
			}
		}
		if len(end) == len(ds) {
			return end
		}
		if time.Now().After(deadline) {
			h.T.Fatalf("%d of %d deployments still running after %s", len(ds)-len(end), len(ds), limit)
		}
		time.Sleep(h.tick)
	}
}

// Events returns the state events of a deployment, in order.
func (h *Harness) Events(id uint) []store.StateEvent {
	var evs []store.StateEvent
	storetest.DB(h.Store).Where("deployment_id = ?", id).Order("id").Find(&evs)
	return evs
}

// Load reads a deployment with its node and environment.
func (h *Harness) Load(id uint) *store.Deployment {
	d, err := h.Store.Deployment(context.Background(), id)
	if err != nil {
		h.T.Fatal(err)
	}
	return d
}

// TickEvery runs e.Tick every interval, as pitasks' loop does, until the returned func is
// called (it returns once the last tick is over): for tests that run a web or a CLI beside
// the engine.
func TickEvery(t testing.TB, e *engine.Engine, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
				t.Logf("pitasks tick: %v", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// Phase names the phase of a deployment a deploy state belongs to, as the fault matrix
// (issue 16) counts them: power-on, NFS boot, copy, configuration, card boot, user script.
func Phase(s process.StateName) string {
	switch s {
	case process.BootConf, process.TurnOff, process.TurnOn:
		return "power-on"
	case process.SSHNFS:
		return "NFS boot"
	case process.EnvCopy, process.EnvCheck:
		return "copy"
	case process.Partition, process.SystemConf:
		return "configuration"
	case process.BootFiles, process.SSHSystem:
		return "card boot"
	case process.SystemUpdate, process.BootUpdate, process.UserConf, process.UserScript:
		return "user script"
	}
	return string(s)
}
