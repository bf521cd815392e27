// Package deploy holds what each state of PiSeduce's processes does to a node: power it
// through its switch, point its TFTP folder at a system, drive it over SSH (first the shared NFS
// system, then the system deployed on its card). The engine decides when; this package decides
// how. Every value that comes from a user reaches the node as data (stdin or an uploaded
// file), never inside a shell line.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/netboot"
	"github.com/piseduce/piseduce/pkg/nodeid"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
)

// Shell is a command runner on a node (pkg/remote's Client).
type Shell interface {
	Run(ctx context.Context, argv []string, o remote.RunOptions) error
	Output(ctx context.Context, argv ...string) (string, error)
	Upload(ctx context.Context, path string, r io.Reader, mode os.FileMode) error
	Close() error
}

// Dialer opens a Shell on a node.
type Dialer interface {
	Dial(ctx context.Context, t remote.Target) (Shell, error)
}

// SSH adapts a remote.Dialer to Dialer.
type SSH struct{ *remote.Dialer }

// Dial opens an SSH connection.
func (s SSH) Dial(ctx context.Context, t remote.Target) (Shell, error) { return s.Dialer.Dial(ctx, t) }

// Switches gives the power controller of a switch.
type Switches interface {
	Controller(sw *store.Switch) (power.Controller, error)
}

// Boot manages the nodes' TFTP folders (pkg/netboot).
type Boot interface {
	BootNFS(serial string) error
	InstallSD(serial string, tarStream io.Reader) error
	Clear(serial string) error
	Mode(serial string) (netboot.Mode, error)
}

// HostKeys holds the pinned host keys (pkg/store). A deployed system's key is pinned when
// system_conf writes it on the card, replacing the previous system's: that one is kept until
// then, so that a node falling back to its old card while it should netboot is only "not up
// yet" (a Pi 4 whose network boot failed boots its card), never trusted.
type HostKeys interface {
	HostKey(ctx context.Context, role string, nodeID uint) (key string, found bool, err error)
	PinHostKey(ctx context.Context, role string, nodeID uint, key string) error
}

// Deployer holds the drivers the steps use. Create it with New.
type Deployer struct {
	Dialer   Dialer
	Switches Switches
	Boot     Boot
	Keys     HostKeys
	// ImgDir holds the environments' image files.
	ImgDir string
	// NFSHostname is /etc/hostname of the NFS system.
	NFSHostname string
	// PimasterKey is the pimaster's public key (authorized_keys line), put in root's
	// authorized_keys on every card so pitasks can reach the deployed system.
	PimasterKey string
	// SSHPort of the nodes [22].
	SSHPort int
	// PowerOffWait is how long a node is left without power, in turn_off and in a hard
	// reboot [power.OffWait]; ModelOffWait overrides it by node model (matched ignoring case).
	PowerOffWait time.Duration
	ModelOffWait map[string]time.Duration

	boots, copies *slots
}

// Limits are what nodes share in this pitasks; 0 is no limit.
type Limits struct {
	Booting int // nodes powered on and booting at once ([tasks] max_booting)
	Copying int // images copied at once, to or from a card ([tasks] max_copying)
}

// New returns a Deployer that keeps to l.
func New(d Deployer, l Limits) *Deployer {
	if d.SSHPort == 0 {
		d.SSHPort = 22
	}
	if d.PowerOffWait == 0 {
		d.PowerOffWait = power.OffWait
	}
	d.boots, d.copies = newBootSlots(l.Booting), newCopySlots(l.Copying)
	return &d
}

// BootWaits are the states that wait for a node's system to answer after it (re)boots:
// pitasks wakes them when dnsmasq's log shows the node booting (discovery.Boots).
var BootWaits = []process.StateName{process.SSHNFS, process.SSHSystem, process.BootUpdate, process.ComingBack}

// offWait is how long a node of this model is left without power. Models match whatever
// their case: seducepp.conf's keys are read in lower case.
func (d *Deployer) offWait(model string) time.Duration {
	for m, w := range d.ModelOffWait {
		if strings.EqualFold(m, model) {
			return w
		}
	}
	return d.PowerOffWait
}

// step adapts two functions to engine.Step; a nil exec does nothing, a nil post is done at once.
type step struct {
	exec func(context.Context, *engine.Task) error
	post func(context.Context, *engine.Task) (bool, error)
}

func (s step) Exec(ctx context.Context, t *engine.Task) error {
	if s.exec == nil {
		return nil
	}
	return s.exec(ctx, t)
}

func (s step) Post(ctx context.Context, t *engine.Task) (bool, error) {
	if s.post == nil {
		return true, nil
	}
	return s.post(ctx, t)
}

// Steps returns the step of every state of every process.
func (d *Deployer) Steps() map[process.StateName]engine.Step {
	return map[process.StateName]engine.Step{
		process.BootConf:     step{exec: d.bootConf},
		process.TurnOff:      step{exec: d.turnOff, post: d.isOff},
		process.TurnOn:       step{post: d.turnOn},
		process.SSHNFS:       step{post: d.nfsUp},
		process.EnvCopy:      step{exec: d.envCopy},
		process.EnvCheck:     step{post: d.envCheck},
		process.Partition:    step{exec: d.partition},
		process.SystemConf:   step{exec: d.systemConf},
		process.BootFiles:    step{exec: d.bootFiles, post: d.rebootNode},
		process.SSHSystem:    step{post: d.systemUp},
		process.SystemUpdate: step{exec: d.systemUpdate},
		process.BootUpdate:   step{exec: d.bootUpdate, post: d.bootUpdated},
		process.UserConf:     step{exec: d.userConf},
		process.UserScript:   step{exec: d.userScript},
		process.Destroying:   step{exec: d.destroying},
		process.ComingBack:   step{post: d.comingBack},
		process.ImgNetboot:   step{exec: d.imgNetboot},
		process.ImgCopy:      step{exec: d.imgCopy},
		process.ImgCheck:     step{post: d.imgCheck},
	}
}

// HardReboot power-cycles the node: engine.Rebooter.
func (d *Deployer) HardReboot(ctx context.Context, dep *store.Deployment) error {
	ctl, err := d.Switches.Controller(&dep.Node.Switch)
	if err != nil {
		return err
	}
	if err := ctl.Set(ctx, dep.Node.Port, false); err != nil {
		return switchError(err)
	}
	select {
	case <-time.After(d.offWait(dep.Node.Model)):
	case <-ctx.Done():
		return ctx.Err()
	}
	return switchError(ctl.Set(ctx, dep.Node.Port, true))
}

// switchError marks a switch that did not answer (engine.SwitchSilent): the node waits for
// it without losing its state's time.
func switchError(err error) error {
	if errors.Is(err, power.ErrNoAnswer) {
		return engine.SwitchSilent(err)
	}
	return err
}

// PortOn reads whether the node's port powers it: engine.PortReader, so that a node lost
// in the middle of a state is power-cycled at once when its port turns out to be off.
func (d *Deployer) PortOn(ctx context.Context, dep *store.Deployment) (bool, error) {
	ctl, err := d.Switches.Controller(&dep.Node.Switch)
	if err != nil {
		return false, err
	}
	st, err := ctl.Status(ctx, dep.Node.Port)
	return st.On, err
}

// --- power and boot ---

func (d *Deployer) bootConf(ctx context.Context, t *engine.Task) error {
	return bootError(d.Boot.BootNFS(t.D.Node.Serial))
}

// bootError fails the step at once on what pkg/netboot says retrying cannot fix.
func bootError(err error) error {
	if errors.Is(err, nodeid.ErrBadSerial) || errors.Is(err, netboot.ErrBadBootFiles) {
		return engine.Permanent(err)
	}
	return err
}

func (d *Deployer) turnOff(ctx context.Context, t *engine.Task) error {
	d.boots.release(t.D.NodeID)
	ctl, err := d.Switches.Controller(&t.D.Node.Switch)
	if err != nil {
		return err
	}
	return switchError(ctl.Set(ctx, t.D.Node.Port, false))
}

// isOff reports the port off, and kept off for the model's power-off wait: a Pi switched off
// and on again within milliseconds may ride through on its capacitors (or the switch may not
// cut at all), and not boot again.
func (d *Deployer) isOff(ctx context.Context, t *engine.Task) (bool, error) {
	ctl, err := d.Switches.Controller(&t.D.Node.Switch)
	if err != nil {
		return false, err
	}
	st, err := ctl.Status(ctx, t.D.Node.Port)
	if err != nil || st.On {
		return false, switchError(err)
	}
	select {
	case <-time.After(d.offWait(t.D.Node.Model) - time.Since(t.D.StateStartedAt)):
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// turnOn powers the node once a boot slot is free: Pis that netboot all together stall. A
// node its switch did not power is not booting: its slot goes to another until it tries again.
func (d *Deployer) turnOn(ctx context.Context, t *engine.Task) (bool, error) {
	if !d.boots.acquire(t.D.NodeID) {
		return false, d.boots.wait
	}
	ctl, err := d.Switches.Controller(&t.D.Node.Switch)
	if err == nil {
		err = switchError(ctl.Set(ctx, t.D.Node.Port, true))
	}
	if err != nil {
		d.boots.release(t.D.NodeID)
		return false, err
	}
	return true, nil
}

func (d *Deployer) destroying(ctx context.Context, t *engine.Task) error {
	return bootError(d.Boot.Clear(t.D.Node.Serial))
}

// comingBack waits for the system the node's TFTP folder boots.
func (d *Deployer) comingBack(ctx context.Context, t *engine.Task) (bool, error) {
	mode, err := d.Boot.Mode(t.D.Node.Serial)
	if err != nil {
		return false, err
	}
	switch mode {
	case netboot.ModeNFS:
		return d.nfsUp(ctx, t)
	case netboot.ModeSD:
		return d.systemUp(ctx, t)
	}
	return true, nil
}

// --- SSH ---

func (d *Deployer) target(t *engine.Task, role string) remote.Target {
	return remote.Target{Addr: net.JoinHostPort(t.D.Node.IP, strconv.Itoa(d.SSHPort)), User: "root",
		Role: role, NodeID: t.D.NodeID}
}

// dial opens a root shell on the node's NFS system or deployed system. A host key that is not
// the pinned one fails the step at once (engine.Permanent), with what it means, unless it is
// the key of the node's other system: then the node is on its way from one to the other
// (errOtherSystem, retried). No pinned key at all is permanent too: nothing is trusted on first use.
func (d *Deployer) dial(ctx context.Context, t *engine.Task, role string) (Shell, error) {
	sh, err := d.Dialer.Dial(ctx, d.target(t, role))
	var mm *remote.MismatchError
	switch {
	case err == nil:
		return sh, nil
	case errors.As(err, &mm):
		return nil, d.mismatch(ctx, t, role, mm)
	case errors.Is(err, remote.ErrNoHostKey) && role == remote.RoleNFS:
		return nil, engine.Permanent(fmt.Errorf("%s: the NFS system's host key is not pinned: set [cluster] nfs_host_key "+
			"to its public key file (admin/install.sh makes it): %w", t.D.Node.Name, err))
	case errors.Is(err, remote.ErrNoHostKey):
		return nil, engine.Permanent(fmt.Errorf("%s: no host key is pinned for its deployed system "+
			"(system_conf pins the key it writes on the card): deploy the node again: %w", t.D.Node.Name, err))
	}
	return nil, err
}

// errOtherSystem: the node answered with the key of its other system, the NFS system where
// its deployed system is expected or the reverse: it has not rebooted from one to the other yet.
var errOtherSystem = errors.New("the node still runs its other system")

// mismatch explains a host key other than the pinned one.
func (d *Deployer) mismatch(ctx context.Context, t *engine.Task, role string, mm *remote.MismatchError) error {
	other, otherNode, what, why := remote.RoleSystem, t.D.NodeID, "the NFS system's key",
		"it did not boot the NFS system (a card that boots by itself?), or another machine holds its address"
	if role == remote.RoleSystem {
		other, otherNode, what, why = remote.RoleNFS, 0, "the one deployed on its card",
			"another machine holds its address, or the system on its card was replaced"
	}
	key, found, err := d.Keys.HostKey(ctx, other, otherNode)
	if err != nil {
		return err
	}
	if k, perr := remote.ParseKey(key); found && perr == nil && remote.AuthorizedKey(k) == remote.AuthorizedKey(mm.Presented) {
		return fmt.Errorf("%s: %w (it answers with its %s key)", t.D.Node.Name, errOtherSystem, other)
	}
	return engine.Permanent(fmt.Errorf("%s answered at %s with a host key that is not %s (%s %s): %s; nothing was sent to it: %w",
		t.D.Node.Name, t.D.Node.IP, what, mm.Presented.Type(), ssh.FingerprintSHA256(mm.Presented), why, mm))
}

// withShell runs f with a root shell on the node's NFS system or deployed system. A node that
// could not be reached, or whose connection broke, is engine.Silent: the engine then looks at
// its port and brings it back if it stays so.
func (d *Deployer) withShell(ctx context.Context, t *engine.Task, role string, f func(Shell) error) error {
	sh, err := d.dial(ctx, t, role)
	if err == nil {
		defer sh.Close()
		err = f(sh)
	}
	if errors.Is(err, remote.ErrUnreachable) && !engine.IsPermanent(err) {
		return engine.Silent(err)
	}
	return err
}

// hostnameIs reports whether the node answers SSH in role with the wanted hostname. A node
// that does not answer yet, or still answers as its other system, is still booting; a host
// key that is neither is an error.
func (d *Deployer) hostnameIs(ctx context.Context, t *engine.Task, role, want string) (bool, error) {
	var got string
	err := d.withShell(ctx, t, role, func(sh Shell) error {
		var err error
		got, err = sh.Output(ctx, "cat", "/etc/hostname")
		return err
	})
	if engine.IsPermanent(err) {
		return false, err
	}
	if err != nil {
		t.Log.Debug("node not up yet", "role", role, "err", err)
		return false, nil
	}
	if got = strings.TrimSpace(got); got != want {
		t.Log.Debug("node up with another system", "hostname", got, "want", want)
		return false, nil
	}
	d.boots.release(t.D.NodeID)
	return true, nil
}

func (d *Deployer) nfsUp(ctx context.Context, t *engine.Task) (bool, error) {
	return d.hostnameIs(ctx, t, remote.RoleNFS, d.NFSHostname)
}

func (d *Deployer) systemUp(ctx context.Context, t *engine.Task) (bool, error) {
	return d.hostnameIs(ctx, t, remote.RoleSystem, t.D.Node.Name)
}

// run runs argv and returns an error carrying its stderr.
func run(ctx context.Context, sh Shell, argv ...string) error {
	return sh.Run(ctx, argv, remote.RunOptions{})
}

// errorf formats an error for a node.
func errorf(t *engine.Task, format string, a ...any) error {
	return fmt.Errorf("%s: %s", t.D.Node.Name, fmt.Sprintf(format, a...))
}
