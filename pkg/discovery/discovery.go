// Package discovery finds the Raspberry Pis of a PoE switch and registers them ("analyze
// ports" of the original PiSeduce). For each port without a node, one at a time, it powers the
// port on and watches dnsmasq's log for the DHCP request of a Raspberry Pi MAC; gives that MAC a
// name and an address (DHCP hosts file + SIGHUP); learns the Pi's serial from the TFTP request
// it then makes; boots it into the NFS system; reads model and serial from /proc/cpuinfo over
// SSH (pinned host key); and only then registers the node, clears its TFTP folder and powers it
// off. A port that fails is reported and leaves nothing behind: no node, no hosts entry, no
// TFTP folder, power off.
//
// Discovery only listens: it sends no packet to the nodes' network besides powering one port
// and the SSH connection to the address it gave.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/piseduce/piseduce/pkg/netboot"
	"github.com/piseduce/piseduce/pkg/nodeid"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
)

// Defaults for the Discoverer's zero fields.
const (
	DefaultDHCPTimeout = 20 * time.Second
	DefaultBootTimeout = 2 * time.Minute
	DefaultOffTime     = 3 * time.Second
)

// Event is one line of progress.
type Event struct {
	Time time.Time
	Port int // 0: about the whole run
	Text string
	Err  bool // the port failed
}

func (e Event) String() string {
	if e.Port == 0 {
		return e.Text
	}
	return fmt.Sprintf("port %d: %s", e.Port, e.Text)
}

// Discoverer discovers the nodes of a switch. Its zero durations take the defaults.
type Discoverer struct {
	Store *store.Store
	// Power returns the driver of a switch; nil = SNMP from the switch's row.
	Power func(sw *store.Switch) (power.Controller, error)
	// Dialer reaches the NFS system (its host key pinned under remote.RoleNFS).
	Dialer      *remote.Dialer
	SSHPort     int    // default 22
	NFSHostname string // when set, the NFS system's /etc/hostname must say so
	TFTP        netboot.TFTP
	HostsFile   string // dnsmasq --dhcp-hostsfile, rewritten from the database
	PIDFile     string // dnsmasq's pid file (SIGHUP)
	LogFile     string // dnsmasq's log (log-dhcp)
	// Reload makes dnsmasq re-read the hosts file; nil = SIGHUP to the pid in PIDFile.
	Reload      func() error
	FirstNodeIP string // new nodes get the first free addresses from here on
	// DHCPTimeout: how long a powered port is watched for a Pi's DHCP request.
	DHCPTimeout time.Duration
	// BootTimeout bounds each later wait: the Pi's TFTP request once it has an address, and
	// its NFS system answering SSH after the power cycle.
	BootTimeout time.Duration
	OffTime     time.Duration // how long a port stays off in a power cycle
	Progress    func(Event)   // may be nil
}

// PortError is the failure of one port.
type PortError struct {
	Port int
	Err  error
}

func (e *PortError) Error() string { return fmt.Sprintf("port %d: %v", e.Port, e.Err) }
func (e *PortError) Unwrap() error { return e.Err }

// Result is the outcome of a run.
type Result struct {
	Registered []store.Node
	Empty      []int // ports where no Raspberry Pi asked for an address
	Skipped    []int // the master port and ports that already have a node
	Failed     []*PortError
}

// Err is nil when no port failed, else every port's error.
func (r *Result) Err() error {
	errs := make([]error, len(r.Failed))
	for i, e := range r.Failed {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// errNoPi: nothing asked for an address on the port.
var errNoPi = errors.New("no Raspberry Pi asked for an address")

func (d *Discoverer) report(port int, failed bool, format string, a ...any) {
	if d.Progress != nil {
		d.Progress(Event{Time: time.Now(), Port: port, Text: fmt.Sprintf(format, a...), Err: failed})
	}
}

func (d *Discoverer) dhcpTimeout() time.Duration {
	if d.DHCPTimeout > 0 {
		return d.DHCPTimeout
	}
	return DefaultDHCPTimeout
}

func (d *Discoverer) bootTimeout() time.Duration {
	if d.BootTimeout > 0 {
		return d.BootTimeout
	}
	return DefaultBootTimeout
}

func (d *Discoverer) offTime() time.Duration {
	if d.OffTime > 0 {
		return d.OffTime
	}
	return DefaultOffTime
}

// Run discovers the nodes on every port of the switch called switchName (or only on ports,
// when given), one port at a time. The error is for what stops the whole run (no such switch,
// an unusable configuration); a port's failure is in Result.Failed and reported.
func (d *Discoverer) Run(ctx context.Context, switchName string, ports ...int) (*Result, error) {
	if d.Store == nil || d.Dialer == nil {
		return nil, errors.New("discovery: needs a store and an SSH dialer")
	}
	if d.HostsFile == "" || d.LogFile == "" || d.TFTP.Root == "" {
		return nil, errors.New("discovery: needs the DHCP hosts file, the dnsmasq log and the TFTP root")
	}
	if _, err := netip.ParseAddr(d.FirstNodeIP); err != nil {
		return nil, fmt.Errorf("discovery: the first node address %q is not an address (set [cluster] first_node_ip)", d.FirstNodeIP)
	}
	sws, err := d.Store.Switches(ctx)
	if err != nil {
		return nil, err
	}
	var sw *store.Switch
	for i := range sws {
		if sws[i].Name == switchName {
			sw = &sws[i]
		}
	}
	if sw == nil {
		return nil, fmt.Errorf("discovery: no switch called %q", switchName)
	}
	var ctl power.Controller
	if d.Power != nil {
		ctl, err = d.Power(sw)
	} else {
		ctl, err = power.NewSNMP(sw.PowerConfig(0, 0))
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: switch %s: %w", sw.Name, err)
	}
	if len(ports) == 0 {
		for p := 1; p <= sw.PortCount; p++ {
			ports = append(ports, p)
		}
	}
	for _, p := range ports {
		if p < 1 || p > sw.PortCount {
			return nil, fmt.Errorf("discovery: switch %s has no port %d (ports 1 to %d)", sw.Name, p, sw.PortCount)
		}
	}
	res := &Result{}
	d.report(0, false, "discovering the nodes of switch %s (%d ports)", sw.Name, len(ports))
	for _, port := range ports {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		nodes, err := d.Store.Nodes(ctx)
		if err != nil {
			return res, err
		}
		if port == sw.MasterPort {
			d.report(port, false, "the pimaster's port: skipped")
			res.Skipped = append(res.Skipped, port)
			continue
		}
		if n := nodeOn(nodes, sw.ID, port); n != nil {
			d.report(port, false, "already has node %s: skipped", n.Name)
			res.Skipped = append(res.Skipped, port)
			continue
		}
		n, err := d.discoverPort(ctx, sw, ctl, port, nodes)
		switch {
		case errors.Is(err, errNoPi):
			d.report(port, false, "no Raspberry Pi asked for an address within %s: empty", d.dhcpTimeout())
			res.Empty = append(res.Empty, port)
		case err != nil:
			d.report(port, true, "failed: %v", err)
			res.Failed = append(res.Failed, &PortError{Port: port, Err: err})
		default:
			d.report(port, false, "registered %s: %s %s, serial %s, %s", n.Name, n.MAC, n.IP, n.Serial, n.Model)
			res.Registered = append(res.Registered, *n)
		}
	}
	d.report(0, false, "switch %s: %d registered, %d empty, %d skipped, %d failed", sw.Name,
		len(res.Registered), len(res.Empty), len(res.Skipped), len(res.Failed))
	return res, nil
}

func nodeOn(nodes []store.Node, switchID uint, port int) *store.Node {
	for i := range nodes {
		if nodes[i].SwitchID == switchID && nodes[i].Port == port {
			return &nodes[i]
		}
	}
	return nil
}

// discoverPort finds, boots, checks and registers the Pi on one port. On any failure the
// port ends powered off, the Pi's TFTP folder cleared and the hosts file back to the database.
func (d *Discoverer) discoverPort(ctx context.Context, sw *store.Switch, ctl power.Controller, port int, nodes []store.Node) (node *store.Node, err error) {
	var hostsTouched bool
	var serial string
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if perr := ctl.Set(cctx, port, false); perr != nil {
			err = fmt.Errorf("%w (and powering the port off: %v)", err, perr)
		}
		if serial != "" {
			if terr := d.TFTP.Clear(serial); terr != nil {
				err = fmt.Errorf("%w (and clearing the TFTP folder: %v)", err, terr)
			}
		}
		if hostsTouched {
			if herr := d.SyncDHCP(cctx); herr != nil {
				err = fmt.Errorf("%w (and restoring the DHCP hosts file: %v)", err, herr)
			}
		}
	}()

	known := map[string]string{}
	for _, n := range nodes {
		if mac, err := nodeid.NormalizeMAC(n.MAC); err == nil {
			known[mac] = n.Name
		}
	}
	st, err := ctl.Status(ctx, port)
	if err != nil {
		return nil, err
	}
	if st.On {
		d.report(port, false, "is on: powering it off first")
		if err := ctl.Set(ctx, port, false); err != nil {
			return nil, err
		}
		if err := sleep(ctx, d.offTime()); err != nil {
			return nil, err
		}
	}
	tail := newLogTail(d.LogFile)
	if err := ctl.Set(ctx, port, true); err != nil {
		return nil, err
	}
	d.report(port, false, "powered on, watching for a Raspberry Pi's DHCP request (%s)", d.dhcpTimeout())
	ignored := map[string]bool{}
	ev, err := tail.wait(ctx, d.dhcpTimeout(), func(ev LogEvent) bool {
		if ev.Kind != "dhcp" || (ev.Msg != "DHCPDISCOVER" && ev.Msg != "DHCPREQUEST") {
			return false
		}
		if !IsPiMAC(ev.MAC) {
			if !ignored[ev.MAC] {
				ignored[ev.MAC] = true
				d.report(port, false, "ignoring DHCP request of %s: not a Raspberry Pi", ev.MAC)
			}
			return false
		}
		if name, ok := known[ev.MAC]; ok {
			if !ignored[ev.MAC] {
				ignored[ev.MAC] = true
				d.report(port, false, "ignoring DHCP request of %s: already node %s", ev.MAC, name)
			}
			return false
		}
		return true
	})
	if errors.Is(err, errTimeout) {
		if perr := ctl.Set(ctx, port, false); perr != nil {
			return nil, perr
		}
		return nil, errNoPi
	}
	if err != nil {
		return nil, err
	}
	mac := ev.MAC
	name, ip, err := nextFree(nodes, d.FirstNodeIP)
	if err != nil {
		return nil, err
	}
	d.report(port, false, "Raspberry Pi %s asked for an address: giving it %s %s", mac, name, ip)

	// The hosts file: the database's nodes and the new one.
	hosts, err := Hosts(nodes)
	if err != nil {
		return nil, err
	}
	hosts = append(hosts, netboot.Host{Name: name, MAC: mac, IP: ip})
	hostsTouched = true
	if err := netboot.WriteHostsFile(d.HostsFile, hosts); err != nil {
		return nil, err
	}
	if err := d.reload(); err != nil {
		return nil, err
	}

	// Its serial: the folder of its TFTP request.
	d.report(port, false, "waiting for %s to ask for its boot files (%s)", ip, d.bootTimeout())
	acked := false
	ev, err = tail.wait(ctx, d.bootTimeout(), func(ev LogEvent) bool {
		if ev.Kind == "dhcp" && ev.Msg == "DHCPACK" && ev.MAC == mac {
			acked = true
			return false
		}
		if ev.Kind != "tftp" || ev.IP != ip {
			return false
		}
		_, ok := SerialFromPath(d.TFTP.Root, ev.Path)
		return ok
	})
	if errors.Is(err, errTimeout) {
		if !acked {
			return nil, fmt.Errorf("%s did not take its address %s within %s", mac, ip, d.bootTimeout())
		}
		return nil, fmt.Errorf("%s took %s but asked for no boot file within %s (does it boot from its SD card?)", mac, ip, d.bootTimeout())
	}
	if err != nil {
		return nil, err
	}
	serial, _ = SerialFromPath(d.TFTP.Root, ev.Path)
	d.report(port, false, "serial %s (asked for %s): booting the NFS system", serial, ev.Path)

	// Boot the NFS system and read what the Pi says about itself.
	if err := d.TFTP.BootNFS(serial); err != nil {
		return nil, err
	}
	if err := ctl.Set(ctx, port, false); err != nil {
		return nil, err
	}
	if err := sleep(ctx, d.offTime()); err != nil {
		return nil, err
	}
	if err := ctl.Set(ctx, port, true); err != nil {
		return nil, err
	}
	info, err := d.inspect(ctx, port, ip)
	if err != nil {
		return nil, err
	}
	if info.cpu.Serial != serial {
		return nil, fmt.Errorf("the NFS system at %s has serial %s, but %s asked for the boot files of %s", ip, info.cpu.Serial, mac, serial)
	}
	if info.mac != "" && info.mac != mac {
		return nil, fmt.Errorf("the NFS system at %s has MAC %s, not %s", ip, info.mac, mac)
	}
	d.report(port, false, "%s (%s, revision %s)", info.cpu.Model, info.cpu.ModelName, info.cpu.Revision)

	// Leave it off with no boot folder, then register it.
	if err := d.TFTP.Clear(serial); err != nil {
		return nil, err
	}
	if err := ctl.Set(ctx, port, false); err != nil {
		return nil, err
	}
	n := &store.Node{Name: name, SwitchID: sw.ID, Port: port, IP: ip, MAC: mac, Serial: serial, Model: info.cpu.Model}
	if err := d.Store.CreateNode(ctx, n); err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	n.Switch = *sw
	if err := d.SyncDHCP(ctx); err != nil {
		// Registered: the node stays; the hosts file already holds it.
		d.report(port, true, "registered, but the DHCP hosts file: %v", err)
	}
	return n, nil
}

type nodeInfo struct {
	cpu CPUInfo
	mac string
}

// inspect waits for the NFS system to answer SSH at ip and reads /proc/cpuinfo and the MAC.
func (d *Discoverer) inspect(ctx context.Context, port int, ip string) (*nodeInfo, error) {
	sshPort := d.SSHPort
	if sshPort == 0 {
		sshPort = 22
	}
	t := remote.Target{Addr: net.JoinHostPort(ip, strconv.Itoa(sshPort)), User: "root", Role: remote.RoleNFS}
	d.report(port, false, "waiting for the NFS system to answer SSH at %s (%s)", ip, d.bootTimeout())
	deadline := time.Now().Add(d.bootTimeout())
	var last error
	for {
		c, err := d.Dialer.Dial(ctx, t)
		if err == nil {
			info, err := d.read(ctx, c)
			c.Close()
			if err == nil {
				return info, nil
			}
			last = err
			if !errors.Is(err, errNotYet) {
				return nil, err
			}
		} else {
			last = err
			if errors.Is(err, remote.ErrHostKeyMismatch) || errors.Is(err, remote.ErrNoHostKey) {
				return nil, err
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the NFS system did not answer SSH at %s within %s: %w", ip, d.bootTimeout(), last)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return nil, err
		}
	}
}

var errNotYet = errors.New("another system answers")

func (d *Discoverer) read(ctx context.Context, c *remote.Client) (*nodeInfo, error) {
	if d.NFSHostname != "" {
		h, err := c.Output(ctx, "cat", "/etc/hostname")
		if err != nil {
			return nil, err
		}
		if h = strings.TrimSpace(h); h != d.NFSHostname {
			return nil, fmt.Errorf("%w: hostname %q, not the NFS system's %q", errNotYet, h, d.NFSHostname)
		}
	}
	out, err := c.Output(ctx, "cat", "/proc/cpuinfo")
	if err != nil {
		return nil, err
	}
	cpu, err := ParseCPUInfo(out)
	if err != nil {
		return nil, err
	}
	info := &nodeInfo{cpu: cpu}
	if m, err := c.Output(ctx, "cat", "/sys/class/net/eth0/address"); err == nil {
		if mac, err := nodeid.NormalizeMAC(m); err == nil {
			info.mac = mac
		}
	}
	return info, nil
}

// Hosts is the DHCP hosts file's content for nodes: every node with a MAC and an address.
func Hosts(nodes []store.Node) ([]netboot.Host, error) {
	var hs []netboot.Host
	for _, n := range nodes {
		if strings.TrimSpace(n.MAC) == "" || strings.TrimSpace(n.IP) == "" {
			continue
		}
		hs = append(hs, netboot.Host{Name: n.Name, MAC: n.MAC, IP: n.IP})
	}
	return hs, nil
}

// SyncDHCP rewrites the DHCP hosts file from the database and makes dnsmasq re-read it.
func (d *Discoverer) SyncDHCP(ctx context.Context) error {
	return SyncDHCP(ctx, d.Store, d.HostsFile, d.reload)
}

// SyncDHCP rewrites hostsFile from the database's nodes and calls reload (SIGHUP to dnsmasq).
func SyncDHCP(ctx context.Context, st *store.Store, hostsFile string, reload func() error) error {
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return err
	}
	hs, err := Hosts(nodes)
	if err != nil {
		return err
	}
	if err := netboot.WriteHostsFile(hostsFile, hs); err != nil {
		return err
	}
	return reload()
}

func (d *Discoverer) reload() error {
	if d.Reload != nil {
		return d.Reload()
	}
	return netboot.ReloadDnsmasq(d.PIDFile)
}

// nextFree returns the first free node-<n> name and the first free address from first on.
func nextFree(nodes []store.Node, first string) (string, string, error) {
	names := map[string]bool{}
	ips := map[netip.Addr]bool{}
	for _, n := range nodes {
		names[strings.ToLower(n.Name)] = true
		if a, err := netip.ParseAddr(n.IP); err == nil {
			ips[a] = true
		}
	}
	name := ""
	for i := 1; ; i++ {
		if c := fmt.Sprintf("node-%d", i); !names[c] {
			name = c
			break
		}
	}
	a, err := netip.ParseAddr(first)
	if err != nil || !a.Is4() {
		return "", "", fmt.Errorf("the first node address %q is not an IPv4 address", first)
	}
	for i := 0; i < 4096 && a.IsValid(); i++ {
		if b := a.As4(); b[3] != 0 && b[3] != 255 && !ips[a] {
			return name, a.String(), nil
		}
		a = a.Next()
	}
	return "", "", fmt.Errorf("no free address from %s on", first)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
