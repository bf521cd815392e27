package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/netboot"
	"github.com/piseduce/piseduce/pkg/nodeid"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
)

type oneSwitch struct{ ctl power.Controller }

func (o oneSwitch) Controller(*store.Switch) (power.Controller, error) { return o.ctl, nil }

func TestTurnOffKeepsThePowerOffLongEnough(t *testing.T) {
	sw := power.NewFake(8, 8)
	d := New(Deployer{Switches: oneSwitch{sw}, PowerOffWait: 300 * time.Millisecond}, Limits{Booting: 2})
	task := &engine.Task{D: &store.Deployment{NodeID: 1, Node: store.Node{Port: 3}, StateStartedAt: time.Now()}, Log: slog.Default()}
	ctx := context.Background()
	if err := d.turnOff(ctx, task); err != nil {
		t.Fatal(err)
	}
	done, err := d.isOff(ctx, task)
	if err != nil || !done {
		t.Fatalf("isOff = %v, %v", done, err)
	}
	if el := time.Since(task.D.StateStartedAt); el < 300*time.Millisecond {
		t.Fatalf("the port was off for %s only", el)
	}
	// A node already off for longer is done at once.
	task.D.StateStartedAt = time.Now().Add(-time.Second)
	start := time.Now()
	if done, _ := d.isOff(ctx, task); !done || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("isOff waited %s for a node off for a second", time.Since(start))
	}
}

// The power-off wait is the model's when seducepp.conf names it, the default for the others.
func TestPowerOffWaitByModel(t *testing.T) {
	sw := power.NewFake(8, 8)
	d := New(Deployer{Switches: oneSwitch{sw}, PowerOffWait: 50 * time.Millisecond,
		ModelOffWait: map[string]time.Duration{"rpi5": 1500 * time.Millisecond}}, Limits{Booting: 2})
	ctx := context.Background()
	for _, c := range []struct {
		model    string
		min, max time.Duration
	}{{"RPI3Bplus", 50 * time.Millisecond, 1500 * time.Millisecond}, {"RPI5", 1500 * time.Millisecond, time.Hour}} {
		task := &engine.Task{D: &store.Deployment{NodeID: 1, Node: store.Node{Port: 3, Model: c.model}, StateStartedAt: time.Now()},
			Log: slog.Default()}
		if err := d.turnOff(ctx, task); err != nil {
			t.Fatal(err)
		}
		if done, err := d.isOff(ctx, task); err != nil || !done {
			t.Fatalf("%s: isOff = %v, %v", c.model, done, err)
		}
		if el := time.Since(task.D.StateStartedAt); el < c.min || el > c.max {
			t.Fatalf("%s: off for %s, want %s to %s", c.model, el, c.min, c.max)
		}
		start := time.Now()
		if err := d.HardReboot(ctx, task.D); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < c.min || el > c.max {
			t.Fatalf("%s: the hard reboot kept the port off for %s, want %s to %s", c.model, el, c.min, c.max)
		}
	}
}

// A switch that does not answer fails turn_on as the switch's fault (engine.SwitchSilent), and
// the node, not powered, leaves its boot slot to another.
func TestTurnOnThroughASilentSwitch(t *testing.T) {
	sw := power.NewFake(8, 8)
	d := New(Deployer{Switches: oneSwitch{sw}}, Limits{Booting: 1})
	task := func(node uint) *engine.Task {
		return &engine.Task{D: &store.Deployment{NodeID: node, Node: store.Node{Port: int(node)}}, Log: slog.Default()}
	}
	ctx := context.Background()
	sw.Fail(1, fmt.Errorf("set port 1: %w", power.ErrNoAnswer))
	if _, err := d.turnOn(ctx, task(1)); !engine.IsSwitchSilent(err) {
		t.Fatalf("turn_on through a silent switch: %v, want an error marked SwitchSilent", err)
	}
	if done, err := d.turnOn(ctx, task(2)); !done || err != nil {
		t.Fatalf("the next node's turn_on: %v, %v; want its slot and the power", done, err)
	}
	if done, err := d.turnOn(ctx, task(1)); done || !engine.IsWait(err) {
		t.Fatalf("node 1 while node 2 holds the only slot: %v, %v; want a wait (engine.Wait)", done, err)
	}
	sw.Fail(3, fmt.Errorf("set port 3: %w", power.ErrAuth))
	d.boots.release(2)
	if _, err := d.turnOn(ctx, task(3)); err == nil || engine.IsSwitchSilent(err) {
		t.Fatalf("turn_on refused by the switch: %v, want an error not marked SwitchSilent (the switch answered)", err)
	}
}

func TestBootSlots(t *testing.T) {
	b := newBootSlots(2)
	if !b.acquire(1) || !b.acquire(2) || !b.acquire(1) {
		t.Fatal("two nodes (one asking twice) must get their slots")
	}
	if b.acquire(3) {
		t.Fatal("a third node booted while two were booting")
	}
	b.release(1)
	if !b.acquire(3) {
		t.Fatal("a released slot was not given to the next node")
	}
}

// Slots go in the order nodes first asked: a node that gives its slot back and asks again at
// once (its switch did not answer) goes behind one that waited, as the frozen switch of
// TestFrozenSwitchDuringTurnOn did to boot_files. A waiter that stops asking leaves the queue,
// and note takes a free slot without queueing.
func TestBootSlotsGoInTurn(t *testing.T) {
	now := time.Now()
	b := newBootSlots(1)
	b.now = func() time.Time { return now }
	tick := func(d time.Duration) { now = now.Add(d) }
	if !b.acquire(1) {
		t.Fatal("the first node got no slot")
	}
	tick(time.Second)
	if b.acquire(2) {
		t.Fatal("node 2 got the only slot node 1 holds")
	}
	tick(time.Second)
	b.release(1) // its switch did not answer
	if b.acquire(1) {
		t.Fatal("node 1 took the slot back before node 2, which waited")
	}
	if b.acquire(3) {
		t.Fatal("node 3 went before the nodes waiting")
	}
	tick(time.Second)
	if !b.acquire(2) {
		t.Fatal("node 2, first in the queue, did not get the free slot")
	}
	b.release(2)
	if b.acquire(3) || !b.acquire(1) {
		t.Fatal("node 1 asked before node 3: its turn comes first")
	}
	b.release(1)
	tick(waiterTTL + time.Second) // node 3 stopped asking
	b.note(4)
	if b.acquire(3) {
		t.Fatal("node 3 got the slot note gave node 4")
	}
	b.release(4)
	b.note(5)
	if !b.acquire(3) {
		t.Fatal("note took a slot a queued node waited for")
	}
}

// A copy slot is held as long as the copy runs: a copy that outlasts a boot slot's TTL (a
// large image on a slow card) still keeps the others waiting, and each kind of slot waits
// with its own words.
func TestCopySlotsLastTheCopy(t *testing.T) {
	now := time.Now()
	d := New(Deployer{}, Limits{Booting: 1, Copying: 1})
	d.copies.now = func() time.Time { return now }
	d.boots.now = func() time.Time { return now }
	if !d.copies.acquire(1) || !d.boots.acquire(1) {
		t.Fatal("node 1 got no slot")
	}
	now = now.Add(bootSlotTTL + time.Minute)
	if d.copies.acquire(2) {
		t.Fatal("node 2 copies while node 1's copy runs past bootSlotTTL")
	}
	if !d.boots.acquire(2) {
		t.Fatal("a boot slot held past bootSlotTTL was not given back")
	}
	d.copies.release(1)
	if !d.copies.acquire(2) {
		t.Fatal("node 2 did not get the copy slot node 1 gave back")
	}
	if !engine.IsWait(d.copies.wait) || !engine.IsWait(d.boots.wait) || d.copies.wait.Error() == d.boots.wait.Error() {
		t.Errorf("the slots' waits: %v, %v; want two engine.Waits saying what each waits for", d.copies.wait, d.boots.wait)
	}
}

func TestWithHostname(t *testing.T) {
	cases := map[string]string{
		"": "127.0.0.1\tlocalhost\n127.0.1.1\tnode-3\n",
		"127.0.0.1 localhost\n127.0.1.1 raspberrypi\n":       "127.0.0.1 localhost\n127.0.1.1\tnode-3\n",
		"127.0.0.1 localhost\n::1 localhost ip6-localhost\n": "127.0.0.1 localhost\n::1 localhost ip6-localhost\n127.0.1.1\tnode-3\n",
	}
	for in, want := range cases {
		if got := withHostname(in, "node-3"); got != want {
			t.Errorf("withHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCappedOutput(t *testing.T) {
	c := &capped{max: 10}
	c.Write([]byte("hello "))
	c.Write([]byte("world, and more"))
	if got := c.String(); !strings.HasPrefix(got, "hello worl") || !strings.Contains(got, "output truncated") {
		t.Fatalf("capped = %q", got)
	}
}

// keyDialer answers every dial as a node presenting key would: the pinned key lets the dial
// through to shell, any other is refused as remote.Dialer refuses it.
type keyDialer struct {
	keys  remote.HostKeyStore
	key   ssh.PublicKey
	shell Shell
}

func (k keyDialer) Dial(ctx context.Context, t remote.Target) (Shell, error) {
	node := t.NodeID
	if t.Role == remote.RoleNFS {
		node = 0
	}
	stored, found, err := k.keys.HostKey(ctx, t.Role, node)
	if err != nil || !found {
		return nil, fmt.Errorf("%w for %s (%v)", remote.ErrNoHostKey, t, err)
	}
	pinned, err := remote.ParseKey(stored)
	if err != nil {
		return nil, err
	}
	if remote.AuthorizedKey(pinned) != remote.AuthorizedKey(k.key) {
		return nil, &remote.MismatchError{Target: t, Presented: k.key, Pinned: pinned}
	}
	return k.shell, nil
}

// hostnameShell answers cat /etc/hostname.
type hostnameShell struct {
	Shell
	name string
}

func (h hostnameShell) Output(context.Context, ...string) (string, error) { return h.name + "\n", nil }
func (hostnameShell) Close() error                                        { return nil }

func newKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	_, pub, err := remote.NewHostKey("test")
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestHostKeyMeaning: while a node goes from one system to the other it may still answer
// with the other one's key, which is "not up yet"; any other key fails the step at once,
// saying what it means; no pinned key at all is not trusted on first use.
func TestHostKeyMeaning(t *testing.T) {
	ctx := context.Background()
	nfsKey, cardKey, stranger := newKey(t), newKey(t), newKey(t)
	keys := &remote.MemoryHostKeys{}
	keys.PinHostKey(ctx, remote.RoleNFS, 0, remote.AuthorizedKey(nfsKey))
	keys.PinHostKey(ctx, remote.RoleSystem, 3, remote.AuthorizedKey(cardKey))
	task := func() *engine.Task {
		return &engine.Task{D: &store.Deployment{NodeID: 3, Node: store.Node{Name: "node-3", IP: "10.10.0.13"}}, Log: slog.Default()}
	}
	deployer := func(presented ssh.PublicKey, hostname string) *Deployer {
		return New(Deployer{Dialer: keyDialer{keys: keys, key: presented, shell: hostnameShell{name: hostname}},
			Keys: keys, NFSHostname: "nfspi"}, Limits{Booting: 2})
	}

	for _, c := range []struct {
		name      string
		presented ssh.PublicKey
		hostname  string
		up        func(*Deployer, context.Context, *engine.Task) (bool, error)
		want      bool   // up
		wantErr   string // a permanent error saying this
	}{
		{"system up", cardKey, "node-3", (*Deployer).systemUp, true, ""},
		{"system: still the NFS system", nfsKey, "nfspi", (*Deployer).systemUp, false, ""},
		{"system: a stranger", stranger, "node-3", (*Deployer).systemUp, false,
			"node-3 answered at 10.10.0.13 with a host key that is not the one deployed on its card (ssh-ed25519 " + ssh.FingerprintSHA256(stranger) + ")"},
		{"NFS up", nfsKey, "nfspi", (*Deployer).nfsUp, true, ""},
		{"NFS: still the deployed system", cardKey, "node-3", (*Deployer).nfsUp, false, ""},
		{"NFS: a stranger", stranger, "nfspi", (*Deployer).nfsUp, false,
			"node-3 answered at 10.10.0.13 with a host key that is not the NFS system's key"},
	} {
		up, err := c.up(deployer(c.presented, c.hostname), ctx, task())
		if c.wantErr != "" {
			t.Logf("%s: %v", c.name, err)
		}
		switch {
		case c.wantErr == "" && (err != nil || up != c.want):
			t.Errorf("%s: up %v, err %v; want %v", c.name, up, err, c.want)
		case c.wantErr != "" && (up || !engine.IsPermanent(err) || !errors.Is(err, remote.ErrHostKeyMismatch) || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: up %v, err %v; want a permanent mismatch saying %q", c.name, up, err, c.wantErr)
		}
	}

	// A step's work (not a wait for the node) meeting the other system's key is retried.
	d := deployer(nfsKey, "nfspi")
	if err := d.withShell(ctx, task(), remote.RoleSystem, func(Shell) error { return nil }); !errors.Is(err, errOtherSystem) || engine.IsPermanent(err) {
		t.Errorf("work on the system while the NFS system answers: %v", err)
	}

	// boot_files' reboot into the card, its node answering with the card's key: the reboot was
	// done and its record lost (the database restarted in between: the fault matrix found a
	// node lost there, in the reboot and, its Exec not yet recorded, in the boot files' copy).
	// A stranger still fails at once.
	if done, err := deployer(cardKey, "node-3").rebootNode(ctx, task()); !done || err != nil {
		t.Errorf("reboot into the card, the card's system answering: done %v, err %v; want done", done, err)
	}
	if err := deployer(cardKey, "node-3").bootFiles(ctx, task()); err != nil {
		t.Errorf("boot files, the card's system answering: %v; want done", err)
	}
	if err := deployer(stranger, "node-3").bootFiles(ctx, task()); !engine.IsPermanent(err) {
		t.Errorf("boot files, a stranger answering: %v; want a permanent mismatch", err)
	}
	if _, err := deployer(stranger, "node-3").rebootNode(ctx, task()); !engine.IsPermanent(err) {
		t.Errorf("reboot into the card, a stranger answering: %v; want a permanent mismatch", err)
	}

	// Nothing pinned: never trusted, and it says what to do.
	empty := &remote.MemoryHostKeys{}
	d = New(Deployer{Dialer: keyDialer{keys: empty, key: nfsKey, shell: hostnameShell{name: "nfspi"}}, Keys: empty, NFSHostname: "nfspi"}, Limits{Booting: 2})
	if _, err := d.nfsUp(ctx, task()); !engine.IsPermanent(err) || !strings.Contains(err.Error(), "[cluster] nfs_host_key") {
		t.Errorf("no NFS key: %v", err)
	}
	if _, err := d.systemUp(ctx, task()); !engine.IsPermanent(err) || !strings.Contains(err.Error(), "no host key is pinned for its deployed system") {
		t.Errorf("no system key: %v", err)
	}
}

// TestBootErrorsThatRetryingCannotFix: a serial that names no TFTP folder fails boot_conf at
// once (pkg/netboot's ErrBadSerial); a missing NFS boot folder is retried, an admin may fix it.
func TestBootErrorsThatRetryingCannotFix(t *testing.T) {
	nfs := t.TempDir()
	if err := os.WriteFile(filepath.Join(nfs, "cmdline.txt"), []byte("root=/dev/nfs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &Deployer{Boot: netboot.TFTP{Root: t.TempDir(), NFSBootDir: nfs}}
	task := &engine.Task{D: &store.Deployment{Node: store.Node{Name: "node-1", Serial: "../etc"}}}
	if err := d.bootConf(context.Background(), task); !engine.IsPermanent(err) || !errors.Is(err, nodeid.ErrBadSerial) {
		t.Errorf("bad serial: %v, want a permanent ErrBadSerial", err)
	}
	task.D.Node.Serial = "a67c64be"
	if err := d.bootConf(context.Background(), task); err != nil {
		t.Fatalf("good serial: %v", err)
	}
	d.Boot = netboot.TFTP{Root: t.TempDir(), NFSBootDir: filepath.Join(t.TempDir(), "missing")}
	if err := d.bootConf(context.Background(), task); err == nil || engine.IsPermanent(err) {
		t.Errorf("missing NFS boot folder: %v, want an error retried", err)
	}
}
