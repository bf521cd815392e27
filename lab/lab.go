// Package lab is the virtual Pi lab: real processes on one Linux host that behave like a
// PiSeduce cluster's hardware (a PoE switch, dnsmasq, and Raspberry Pis that network-boot,
// take an image on their SD card and boot from it). See lab/README.md.
//
// Every packet stays inside the lab: nodes live in their own network namespaces on a bridge
// (pilab0) in the root namespace that holds the pimaster address HostIP; dnsmasq runs in its
// own namespace; nodes get no default route; and the root namespace keeps an "unreachable"
// route for the whole lab subnet, so traffic to it fails locally when the lab is down.
package lab

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/piseduce/piseduce/lab/poeswitch"
	"github.com/piseduce/piseduce/pkg/netboot"
)

// The lab's one private subnet. Nothing outside SubnetPrefix.0/24 and loopback is ever used.
const (
	SubnetPrefix = "10.123.0"
	Subnet       = SubnetPrefix + ".0/24"
	HostIP       = SubnetPrefix + ".1" // the pimaster: the root namespace, on the lab bridge
	DHCPIP       = SubnetPrefix + ".2" // dnsmasq (DHCP + TFTP), in its own namespace
	FirstNodeIP  = 11                  // node-i gets SubnetPrefix.(10+i)
	Bridge       = "pilab0"
	NSPrefix     = "pilab-"
	DHCPNS       = NSPrefix + "dhcp"
	SwitchName   = "pilab-switch"

	ModelPi3 = "RPI3Bplus"
	ModelPi4 = "RPI4B"
	ModelPi5 = "RPI5"

	CardSD   = "/dev/mmcblk0"
	CardNVMe = "/dev/nvme0n1"

	vethPrefix = "pl-n" // root-side end of node i's veth: pl-n<i>
	lockFile   = "/var/tmp/pilab.lock"
	activeFile = "/var/tmp/pilab.active"
)

//go:embed scripts/*.sh
var scriptsFS embed.FS

// NodeSpec overrides the defaults for one node.
type NodeSpec struct {
	Model     string        // ModelPi3 (default) or ModelPi4
	BootDelay time.Duration // power on (or reboot) to firmware start; 0 = Options.BootDelay
	LinkMbit  int           // link rate (tc tbf); 0 = model default (Pi 3B+: 80 = 10 MB/s, Pi 4: 320); <0 = unlimited

	// The SD card's speeds in MB/s (10^6 bytes/s); 0 = Options' value, then the model's
	// default (see cardSpeeds); <0 = unlimited.
	CardWriteMBs, CardReadMBs int
	// CardDevice: CardSD (default) or, on a ModelPi5, CardNVMe.
	CardDevice string
	// FakeCardMiB makes the node's card a fake-capacity card that stores only its first
	// FakeCardMiB MiB and silently wraps writes beyond (see fakecard.go); 0 = a real card.
	FakeCardMiB int
}

// Options configures a lab.
type Options struct {
	Dir        string        // required: everything the lab writes lives here
	Nodes      int           // number of nodes (default 4)
	Specs      []NodeSpec    // optional per-node overrides (index 0 = node-1)
	Model      string        // default model for nodes without a spec (default ModelPi3)
	BootDelay  time.Duration // default 500ms
	RetryDelay time.Duration // a failed boot is retried after this (default 2s)
	CardSize   int64         // bytes (default 512 MiB, sparse)
	Community  string        // switch read-write community (default "private")
	Offset     int           // switch OID offset (default 0)
	Log        io.Writer     // lab events (default: discard)
	// NoDHCPHosts starts dnsmasq with an empty DHCP hosts file, as on a fresh cluster: nodes
	// get no address until a deployer (node discovery) adds them and sends SIGHUP.
	NoDHCPHosts bool

	// Card speeds in MB/s for nodes whose spec sets none (0 = the model's default, <0 = unlimited).
	CardWriteMBs, CardReadMBs int

	// UplinkMbit is the pimaster's uplink towards the nodes in Mbit/s (0 = unlimited): a tbf
	// on the bridge device's egress, which all the pimaster's traffic to the nodes leaves
	// through (and nothing bridged between nodes or dnsmasq does). Only that direction is
	// shaped: deployments send images down; what comes back is acknowledgements and output.
	UplinkMbit int
}

// NodeDesc describes one node in lab.json.
type NodeDesc struct {
	Name        string `json:"name"`
	Port        int    `json:"port"`
	IP          string `json:"ip"`
	MAC         string `json:"mac"`
	Serial      string `json:"serial"` // 8 hex digits: the TFTP folder name
	Model       string `json:"model"`
	Netns       string `json:"netns"`
	Veth        string `json:"veth"`
	Dir         string `json:"dir"`
	Card        string `json:"card"` // the SD card file
	CardSize    int64  `json:"card_size"`
	LoopDev     string `json:"loop_dev"`
	BootDelayMS int64  `json:"boot_delay_ms"`
	LinkMbit    int    `json:"link_mbit"` // 0 = unlimited
	EventsLog   string `json:"events_log"`
	TFTPDir     string `json:"tftp_dir"` // <tftp_root>/<serial>

	// The card's speeds in MB/s (10^6 bytes/s), set on its loop device; 0 = unlimited.
	CardWriteMBs int `json:"card_write_mbs"`
	CardReadMBs  int `json:"card_read_mbs"`
	// CardDevice: the card as the node's Linux names it (CardSD; CardNVMe for an NVMe Pi 5).
	CardDevice string `json:"card_device"`
	// SerialHigh: a Pi 5's serial has 16 hex digits; Serial is the last 8 (its TFTP folder).
	SerialHigh string `json:"serial_high,omitempty"`
	// FakeCardMiB: the card stores only its first FakeCardMiB MiB (0 = a real card).
	FakeCardMiB int `json:"fake_card_mib,omitempty"`
}

// SwitchDesc describes the PoE switch in lab.json.
type SwitchDesc struct {
	Name       string `json:"name"`
	IP         string `json:"ip"`
	Port       int    `json:"port"` // UDP port of SNMP on IP
	Addr       string `json:"addr"`
	Community  string `json:"community"`
	OID        string `json:"oid"` // pethPsePortAdminEnable base; port p is OID.(offset+p), 1=on 2=off
	StatusOID  string `json:"status_oid"`
	Offset     int    `json:"oid_offset"`
	PortNb     int    `json:"port_nb"`
	MasterPort int    `json:"master_port"`
	Dir        string `json:"dir"`
	PortDir    string `json:"port_state_dir"`
	PID        int    `json:"pid"`
}

// Desc is lab.json: everything a deployer or a test needs to drive the lab.
type Desc struct {
	Dir            string     `json:"dir"`
	Subnet         string     `json:"subnet"`
	UplinkMbit     int        `json:"uplink_mbit,omitempty"` // the pimaster's egress to the nodes; 0 = unlimited
	PimasterIP     string     `json:"pimaster_ip"`
	DHCPServerIP   string     `json:"dhcp_server_ip"` // dnsmasq: DHCP and TFTP
	Switch         SwitchDesc `json:"switch"`
	TFTPRoot       string     `json:"tftp_root"`
	NFSBootDir     string     `json:"nfs_boot_dir"`    // copy (or link) into <tftp_root>/<serial>/ to boot the NFS system
	NFSRoot        string     `json:"nfs_root"`        // the export named by the NFS boot files' cmdline.txt
	NFSFiles       string     `json:"nfs_files"`       // the NFS system's own files, over the host's system in its read-only root
	DHCPHostsFile  string     `json:"dhcp_hosts_file"` // dnsmasq --dhcp-hostsfile: MAC,NAME,IP per line
	DnsmasqPID     int        `json:"dnsmasq_pid"`     // send SIGHUP after rewriting the hosts file
	DnsmasqLog     string     `json:"dnsmasq_log"`
	PimasterKey    string     `json:"pimaster_key"` // private key authorized on the NFS system
	PimasterPubKey string     `json:"pimaster_pub_key"`
	NFSHostPubKey  string     `json:"nfs_host_pub_key"` // host key of the NFS system (all nodes)
	KnownHosts     string     `json:"known_hosts"`      // kept current: NFS key + each card's key per node IP
	Image          Image      `json:"image"`
	BootRequires   string     `json:"boot_requires"`
	Nodes          []NodeDesc `json:"nodes"`
}

// Node returns the node called name, or nil.
func (d *Desc) Node(name string) *NodeDesc {
	for i := range d.Nodes {
		if d.Nodes[i].Name == name {
			return &d.Nodes[i]
		}
	}
	return nil
}

// Load reads <dir>/lab.json.
func Load(dir string) (*Desc, error) {
	b, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		return nil, err
	}
	d := &Desc{}
	return d, json.Unmarshal(b, d)
}

// Lab is a running lab.
type Lab struct {
	Desc   *Desc
	opts   Options
	sw     *poeswitch.Switch
	dns    *exec.Cmd
	dnsEnd chan struct{}
	lock   *os.File
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	down   bool
	logMu  sync.Mutex
}

func (l *Lab) logf(format string, a ...any) {
	if l.opts.Log == nil {
		return
	}
	l.logMu.Lock()
	defer l.logMu.Unlock()
	fmt.Fprintf(l.opts.Log, "%s pilab: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

// Commands the lab needs on PATH (lab/install-deps.sh installs them).
var Commands = []string{"ip", "tc", "unshare", "snmpd", "dnsmasq", "udhcpc", "curl", "sshd", "ssh-keygen",
	"losetup", "partx", "sfdisk", "mkfs.vfat", "mcopy", "mtype", "mkfs.ext4", "debugfs", "gzip", "zstd", "openssl"}

// Up brings a lab up. ctx bounds the start-up only (and the wait for the global lab lock:
// one lab per machine at a time, since all labs share the subnet). Call Down to end it.
func Up(ctx context.Context, o Options) (l *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("lab: needs root")
	}
	for _, c := range Commands {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Errorf("lab: missing program %s (run lab/install-deps.sh)", c)
		}
	}
	if o.Dir == "" {
		return nil, errors.New("lab: Options.Dir is required")
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, err
	}
	if o.Nodes <= 0 {
		o.Nodes = 4
	}
	if o.Nodes > 200 {
		return nil, errors.New("lab: at most 200 nodes")
	}
	if o.Model == "" {
		o.Model = ModelPi3
	}
	if o.UplinkMbit < 0 {
		return nil, errors.New("lab: Options.UplinkMbit < 0")
	}
	if o.BootDelay == 0 {
		o.BootDelay = 500 * time.Millisecond
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = 2 * time.Second
	}
	if o.CardSize == 0 {
		o.CardSize = 512 << 20
	}
	if o.Community == "" {
		o.Community = "private"
	}
	lock, err := acquireLock(ctx)
	if err != nil {
		return nil, err
	}
	l = &Lab{opts: o, lock: lock}
	defer func() {
		if err != nil {
			l.Down()
		}
	}()
	// A previous lab whose process died (SIGKILL) left things behind: clean them first.
	if prev, err := os.ReadFile(activeFile); err == nil && strings.TrimSpace(string(prev)) != "" {
		cleanup(strings.TrimSpace(string(prev)), l.logf)
	}
	cleanup(o.Dir, l.logf)
	if err := run("ip", "route", "replace", "unreachable", Subnet, "metric", "4000"); err != nil {
		return l, err
	}
	if err := os.WriteFile(activeFile, []byte(o.Dir+"\n"), 0o644); err != nil {
		return l, err
	}
	d := &Desc{Dir: o.Dir, Subnet: Subnet, UplinkMbit: o.UplinkMbit, PimasterIP: HostIP, DHCPServerIP: DHCPIP, NFSRoot: "/nfs/raspi",
		BootRequires: "<tftp_root>/<serial>/cmdline.txt and a kernel (kernel8.img, kernel7l.img, kernel7.img or kernel.img; " +
			"a Pi 5: kernel_2712.img or kernel8.img, and its device tree bcm2712-rpi-5-b.dtb)"}
	l.Desc = d
	dirs := map[string]string{"scripts": "", "keys": "", "tftpboot": "", "nfs-boot": "", "images": "", "nodes": "", "switch": ""}
	for k := range dirs {
		dirs[k] = filepath.Join(o.Dir, k)
		if err := os.MkdirAll(dirs[k], 0o755); err != nil {
			return l, err
		}
	}
	os.Chmod(o.Dir, 0o755)
	ents, _ := scriptsFS.ReadDir("scripts")
	for _, e := range ents {
		b, _ := scriptsFS.ReadFile("scripts/" + e.Name())
		if err := writeAtomic(filepath.Join(dirs["scripts"], e.Name()), b, 0o755); err != nil {
			return l, err
		}
	}
	d.PimasterKey = filepath.Join(dirs["keys"], "pimaster_ed25519")
	d.PimasterPubKey = d.PimasterKey + ".pub"
	nfsKey := filepath.Join(dirs["keys"], "nfs_host_ed25519_key")
	d.NFSHostPubKey = nfsKey + ".pub"
	for _, k := range [][2]string{{d.PimasterKey, "root@pimaster"}, {nfsKey, "root@nfspi"}} {
		if _, err := os.Stat(k[0]); err != nil {
			if err := run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k[1], "-f", k[0]); err != nil {
				return l, err
			}
		}
	}
	d.KnownHosts = filepath.Join(o.Dir, "known_hosts")
	t0 := time.Now()
	im, err := BuildImage(dirs["images"])
	if err != nil {
		return l, fmt.Errorf("lab: test image: %w", err)
	}
	d.Image = *im
	l.logf("test image ready (%v)", time.Since(t0).Round(time.Millisecond))
	d.NFSFiles = filepath.Join(o.Dir, "nfs-root")
	if err := writeNFSFiles(d, nfsKey); err != nil {
		return l, fmt.Errorf("lab: NFS system files: %w", err)
	}
	d.NFSBootDir = dirs["nfs-boot"]
	cmdline, err := netboot.NFSCmdline(HostIP) // the pimaster's
	if err != nil {
		return l, err
	}
	if err := WriteBootFiles(d.NFSBootDir, strings.TrimSpace(cmdline)); err != nil {
		return l, err
	}
	d.TFTPRoot = dirs["tftpboot"]
	// Fresh cards, fresh TFTP folders: nothing boots until the deployer says so.
	if old, _ := os.ReadDir(d.TFTPRoot); len(old) > 0 {
		for _, e := range old {
			os.RemoveAll(filepath.Join(d.TFTPRoot, e.Name()))
		}
	}
	d.DHCPHostsFile = filepath.Join(o.Dir, "dhcp-hosts")
	d.DnsmasqLog = filepath.Join(o.Dir, "dnsmasq.log")

	// Nodes.
	seen := map[string]bool{}
	var hosts strings.Builder
	for i := 1; i <= o.Nodes; i++ {
		spec := NodeSpec{}
		if i-1 < len(o.Specs) {
			spec = o.Specs[i-1]
		}
		if spec.Model == "" {
			spec.Model = o.Model
		}
		if _, ok := cardSpeeds[spec.Model]; !ok {
			return l, fmt.Errorf("lab: unknown model %q (%s, %s or %s)", spec.Model, ModelPi3, ModelPi4, ModelPi5)
		}
		switch spec.CardDevice {
		case "":
			spec.CardDevice = CardSD
		case CardSD:
		case CardNVMe:
			if spec.Model != ModelPi5 {
				return l, fmt.Errorf("lab: node %d: an NVMe drive (%s) is for a %s", i, CardNVMe, ModelPi5)
			}
		default:
			return l, fmt.Errorf("lab: node %d: card device %q is not %s or %s", i, spec.CardDevice, CardSD, CardNVMe)
		}
		if spec.BootDelay == 0 {
			spec.BootDelay = o.BootDelay
		}
		if spec.LinkMbit == 0 {
			spec.LinkMbit = map[string]int{ModelPi3: 80, ModelPi4: 320, ModelPi5: 800}[spec.Model]
		}
		if spec.LinkMbit < 0 {
			spec.LinkMbit = 0
		}
		if spec.CardWriteMBs == 0 {
			spec.CardWriteMBs = o.CardWriteMBs
		}
		if spec.CardReadMBs == 0 {
			spec.CardReadMBs = o.CardReadMBs
		}
		spec.CardWriteMBs, spec.CardReadMBs = cardSpeed(spec.Model, spec.CardDevice, spec.CardWriteMBs, spec.CardReadMBs)
		name := fmt.Sprintf("node-%d", i)
		h := sha256.Sum256([]byte(o.Dir + "/" + name))
		serial := hex.EncodeToString(h[:4])
		if seen[serial] {
			return l, fmt.Errorf("lab: serial collision %s", serial)
		}
		seen[serial] = true
		// Raspberry Pi OUIs as the models ship with them.
		prefix := map[string]string{ModelPi3: "b8:27:eb", ModelPi4: "dc:a6:32", ModelPi5: "2c:cf:67"}[spec.Model]
		nd := NodeDesc{Name: name, Port: i, IP: fmt.Sprintf("%s.%d", SubnetPrefix, 10+i),
			MAC:    fmt.Sprintf("%s:%s:%s:%s", prefix, serial[2:4], serial[4:6], serial[6:8]),
			Serial: serial, Model: spec.Model, Netns: NSPrefix + name, Veth: fmt.Sprintf("%s%d", vethPrefix, i),
			Dir: filepath.Join(dirs["nodes"], name), CardSize: o.CardSize, BootDelayMS: spec.BootDelay.Milliseconds(),
			LinkMbit: spec.LinkMbit, TFTPDir: filepath.Join(d.TFTPRoot, serial),
			CardWriteMBs: spec.CardWriteMBs, CardReadMBs: spec.CardReadMBs, CardDevice: spec.CardDevice,
			SerialHigh: hex.EncodeToString(h[4:8]), FakeCardMiB: spec.FakeCardMiB}
		nd.Card = filepath.Join(nd.Dir, "sdcard.img")
		nd.EventsLog = filepath.Join(nd.Dir, "events.log")
		d.Nodes = append(d.Nodes, nd)
		if !o.NoDHCPHosts {
			fmt.Fprintf(&hosts, "%s,%s,%s\n", nd.MAC, nd.Name, nd.IP)
		}
	}
	if err := writeAtomic(d.DHCPHostsFile, []byte(hosts.String()), 0o644); err != nil {
		return l, err
	}

	// Switch: nodes on ports 1..N, the pimaster on port N+1.
	ports := o.Nodes + 1
	if ports < 8 {
		ports = 8
	}
	sw, err := poeswitch.Start(ctx, poeswitch.Options{Dir: dirs["switch"], Ports: ports, Offset: o.Offset,
		Community: o.Community, Addr: "127.0.0.1:0"})
	if err != nil {
		return l, fmt.Errorf("lab: switch: %w", err)
	}
	l.sw = sw
	d.Switch = SwitchDesc{Name: SwitchName, IP: sw.Host(), Port: sw.Port(), Addr: sw.Addr(), Community: sw.Community(),
		OID: strings.TrimPrefix(sw.OIDBase(), "."), StatusOID: strings.TrimPrefix(sw.StatusOIDBase(), "."),
		Offset: sw.Offset(), PortNb: ports, MasterPort: o.Nodes + 1, Dir: dirs["switch"], PortDir: sw.PortStateDir(), PID: sw.PID()}

	if err := l.network(); err != nil {
		return l, err
	}
	if err := l.startDnsmasq(); err != nil {
		return l, err
	}
	for i := range d.Nodes {
		if err := l.prepareNode(&d.Nodes[i]); err != nil {
			return l, err
		}
	}
	if err := l.writeKnownHosts(); err != nil {
		return l, err
	}
	b, _ := json.MarshalIndent(d, "", "  ")
	if err := writeAtomic(filepath.Join(o.Dir, "lab.json"), append(b, '\n'), 0o644); err != nil {
		return l, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for i := range d.Nodes {
		n := &node{lab: l, d: d.Nodes[i]}
		l.wg.Add(1)
		go func() { defer l.wg.Done(); n.supervise(sctx) }()
	}
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.watchCardKeys(sctx) }()
	l.logf("up: %d nodes in %s, switch %s", o.Nodes, o.Dir, sw.Addr())
	return l, nil
}

// Switch returns the running PoE switch.
func (l *Lab) Switch() *poeswitch.Switch { return l.sw }

// ReloadDHCP makes dnsmasq re-read the DHCP hosts file (SIGHUP).
func (l *Lab) ReloadDHCP() error {
	if l.dns == nil || l.dns.Process == nil {
		return errors.New("lab: dnsmasq not running")
	}
	return l.dns.Process.Signal(syscall.SIGHUP)
}

func (l *Lab) network() error {
	d := l.Desc
	steps := [][]string{
		{"ip", "link", "add", Bridge, "type", "bridge"},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	disableIPv6("", Bridge)
	for _, s := range [][]string{
		{"ip", "addr", "add", HostIP + "/24", "dev", Bridge},
		{"ip", "link", "set", Bridge, "up"},
	} {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	if d.UplinkMbit > 0 {
		c := tbf("", Bridge, d.UplinkMbit)
		if err := run(c[0], c[1:]...); err != nil {
			return err
		}
	}
	add := func(ns, veth, ip, mac string, mbit int) error {
		if err := run("ip", "netns", "add", ns); err != nil {
			return err
		}
		disableIPv6(ns, "all")
		disableIPv6(ns, "default")
		if err := run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns); err != nil {
			return err
		}
		disableIPv6("", veth)
		cmds := [][]string{
			{"ip", "link", "set", veth, "master", Bridge},
			{"ip", "link", "set", veth, "up"},
			{"ip", "-n", ns, "link", "set", "lo", "up"},
			{"ip", "-n", ns, "link", "set", "eth0", "address", mac},
		}
		if ip != "" {
			cmds = append(cmds, []string{"ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
				[]string{"ip", "-n", ns, "link", "set", "eth0", "up"})
		}
		if mbit > 0 {
			cmds = append(cmds, tbf("", veth, mbit), tbf(ns, "eth0", mbit))
		}
		for _, c := range cmds {
			if err := run(c[0], c[1:]...); err != nil {
				return err
			}
		}
		return nil
	}
	if err := add(DHCPNS, "pl-dhcp", DHCPIP, "02:00:0a:7b:00:02", 0); err != nil {
		return err
	}
	for _, n := range d.Nodes {
		if err := add(n.Netns, n.Veth, "", n.MAC, n.LinkMbit); err != nil {
			return err
		}
	}
	return nil
}

// tbf is the tc command that limits dev's egress (in netns ns, "" = the root one) to mbit Mbit/s.
func tbf(ns, dev string, mbit int) []string {
	c := []string{"tc"}
	if ns != "" {
		c = append(c, "-n", ns)
	}
	return append(c, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", fmt.Sprintf("%dmbit", mbit),
		"burst", fmt.Sprintf("%dkb", max(32, mbit/8*4)), "latency", "100ms")
}

func disableIPv6(ns, iface string) {
	p := "/proc/sys/net/ipv6/conf/" + iface + "/disable_ipv6"
	if ns == "" {
		os.WriteFile(p, []byte("1"), 0o644)
		return
	}
	run("ip", "netns", "exec", ns, "sh", "-c", "[ ! -e "+p+" ] || echo 1 > "+p)
}

func (l *Lab) startDnsmasq() error {
	d := l.Desc
	pidFile := filepath.Join(d.Dir, "dnsmasq.pid")
	os.Remove(pidFile)
	cmd := exec.Command("ip", "netns", "exec", DHCPNS, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--port=0", "--no-resolv", "--no-hosts", "--interface=eth0", "--bind-interfaces",
		"--user=root", "--group=root",
		"--dhcp-range="+SubnetPrefix+".0,static,255.255.255.0,1h", "--dhcp-hostsfile="+d.DHCPHostsFile,
		"--dhcp-leasefile="+filepath.Join(d.Dir, "dnsmasq.leases"), "--dhcp-authoritative", "--dhcp-option=3",
		"--pxe-service=0,Raspberry Pi Boot", "--enable-tftp", "--tftp-root="+d.TFTPRoot,
		"--pid-file="+pidFile, "--log-facility="+d.DnsmasqLog, "--log-dhcp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, _ := os.OpenFile(d.DnsmasqLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	l.dns = cmd
	l.dnsEnd = make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(l.dnsEnd) }()
	d.DnsmasqPID = cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-l.dnsEnd:
			b, _ := os.ReadFile(d.DnsmasqLog)
			return fmt.Errorf("lab: dnsmasq exited: %s", tailStr(string(b), 500))
		default:
		}
		if b, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(b)) != "" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("lab: dnsmasq did not start")
}

// blankCard makes node n's card file: a sparse file, or the file of a fake card's file system.
func blankCard(n *NodeDesc) error {
	os.Remove(n.Card)
	if n.FakeCardMiB > 0 {
		card, err := serveFakeCard(n, n.FakeCardMiB)
		if err != nil {
			return err
		}
		n.Card = card
		return nil
	}
	f, err := os.Create(n.Card)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Truncate(n.CardSize)
}

func (l *Lab) prepareNode(n *NodeDesc) error {
	d := l.Desc
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"events.log", "console.log", "dhcp.log", "state", "card_host_key.pub", "unshare.pid"} {
		os.Remove(filepath.Join(n.Dir, f))
	}
	if err := blankCard(n); err != nil {
		return err
	}
	loop, err := runOut("losetup", "-f", "--show", n.Card)
	if err != nil {
		return err
	}
	n.LoopDev = strings.TrimSpace(loop)
	if err := os.WriteFile(filepath.Join(n.Dir, "loop"), []byte(n.LoopDev+"\n"), 0o644); err != nil {
		return err
	}
	if err := setCardThrottle(n.LoopDev, n.CardWriteMBs, n.CardReadMBs); err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(n.LoopDev, &st); err != nil {
		return err
	}
	maj, min := (st.Rdev>>8)&0xfff|((st.Rdev>>32)&^0xfff), (st.Rdev&0xff)|((st.Rdev>>12)&^0xff)
	uuid := sha256.Sum256([]byte("uuid" + n.Serial))
	env := map[string]string{
		"NAME": n.Name, "SERIAL": n.Serial, "MODEL": n.Model, "MAC": n.MAC, "IP": n.IP,
		"UUID": hex.EncodeToString(uuid[:16]), "CARD_MAJ": strconv.FormatUint(maj, 10), "CARD_MIN": strconv.FormatUint(min, 10),
		"CARD_NAME": filepath.Base(n.LoopDev), "LABDIR": d.Dir, "NFS_FILES": d.NFSFiles,
		"KERNELS": "kernel8.img kernel7l.img kernel7.img kernel.img", "CARD_DEV": n.CardDevice, "DTB": "",
	}
	if n.Model == ModelPi5 {
		// The Pi 5's firmware loads kernel_2712.img, else kernel8.img, and needs the BCM2712's device tree.
		env["KERNELS"], env["DTB"] = "kernel_2712.img kernel8.img", "bcm2712-rpi-5-b.dtb"
	}
	var b strings.Builder
	for _, k := range []string{"NAME", "SERIAL", "MODEL", "MAC", "IP", "UUID", "CARD_MAJ", "CARD_MIN", "CARD_NAME",
		"LABDIR", "NFS_FILES", "KERNELS", "CARD_DEV", "DTB"} {
		fmt.Fprintf(&b, "%s='%s'\n", k, env[k])
	}
	if err := writeAtomic(filepath.Join(n.Dir, "node.env"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(n.Dir, "cpuinfo"), []byte(cpuinfo(n)), 0o444)
}

func cpuinfo(n *NodeDesc) string {
	var b strings.Builder
	hw, rev, model := "BCM2835", "a020d3", "Raspberry Pi 3 Model B Plus Rev 1.3"
	switch n.Model {
	case ModelPi4:
		hw, rev, model = "BCM2711", "c03111", "Raspberry Pi 4 Model B Rev 1.1"
	case ModelPi5:
		// A Pi 5's arm64 kernel prints no Hardware line, and 16 hex digits of serial.
		var b strings.Builder
		for i := 0; i < 4; i++ {
			fmt.Fprintf(&b, "processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"+
				"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n", i)
		}
		fmt.Fprintf(&b, "Revision\t: d04170\nSerial\t\t: %s%s\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n", n.SerialHigh, n.Serial)
		return b.String()
	}
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "processor\t: %d\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nBogoMIPS\t: 38.40\n"+
			"Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32\n"+
			"CPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xd03\nCPU revision\t: 4\n\n", i)
	}
	fmt.Fprintf(&b, "Hardware\t: %s\nRevision\t: %s\nSerial\t\t: 00000000%s\nModel\t\t: %s\n", hw, rev, n.Serial, model)
	return b.String()
}

// writeNFSFiles writes the NFS system's own files, as admin/install.sh puts them in the
// pimaster's NFS root: its hostname, its host key (nfsKey), the pimaster's key for root, its
// first init (pkg/netboot) and, standing for systemd, the lab's init (scripts/nfs-system-init.sh).
// /root and /home are opaque: the host's do not show through.
func writeNFSFiles(d *Desc, nfsKey string) error {
	f := d.NFSFiles
	if err := os.RemoveAll(f); err != nil {
		return err
	}
	pub, err := os.ReadFile(d.PimasterPubKey)
	if err != nil {
		return err
	}
	key, err := os.ReadFile(nfsKey)
	if err != nil {
		return err
	}
	hostPub, err := os.ReadFile(nfsKey + ".pub")
	if err != nil {
		return err
	}
	stage, err := scriptsFS.ReadFile("scripts/nfs-system-init.sh")
	if err != nil {
		return err
	}
	// The lab's init replaces the host's /sbin/init, wherever /sbin points.
	init := "sbin/init"
	if l, err := os.Readlink("/sbin"); err == nil {
		init = filepath.Join(strings.TrimPrefix(l, "/"), "init")
	}
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"etc/hostname", []byte("nfspi\n"), 0o644},
		{"etc/ssh/ssh_host_ed25519_key", key, 0o600},
		{"etc/ssh/ssh_host_ed25519_key.pub", hostPub, 0o644},
		{"root/.ssh/authorized_keys", pub, 0o600},
		{"root/.profile", []byte("# NFS system (pilab)\n"), 0o644},
		{strings.TrimPrefix(netboot.NFSInitPath, "/"), []byte(netboot.NFSInit), 0o755},
		{init, stage, 0o755},
	} {
		p := filepath.Join(f, w.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := writeAtomic(p, w.data, w.mode); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(f, "home"), 0o755); err != nil {
		return err
	}
	for dir, mode := range map[string]os.FileMode{"root": 0o700, "root/.ssh": 0o700, "home": 0o755} {
		if err := os.Chmod(filepath.Join(f, dir), mode); err != nil {
			return err
		}
	}
	for _, dir := range []string{"root", "home"} {
		if err := syscall.Setxattr(filepath.Join(f, dir), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("%s opaque: %w", dir, err)
		}
	}
	return nil
}

// writeKnownHosts writes known_hosts: every node IP with the NFS system's key and, once the
// node has booted from its card, the card's own host key.
func (l *Lab) writeKnownHosts() error {
	d := l.Desc
	nfs, err := os.ReadFile(d.NFSHostPubKey)
	if err != nil {
		return err
	}
	nfsKey := keyPart(string(nfs))
	var b strings.Builder
	for _, n := range d.Nodes {
		fmt.Fprintf(&b, "%s %s\n", n.IP, nfsKey)
		if c, err := os.ReadFile(filepath.Join(n.Dir, "card_host_key.pub")); err == nil && keyPart(string(c)) != "" {
			fmt.Fprintf(&b, "%s %s\n", n.IP, keyPart(string(c)))
		}
	}
	return writeAtomic(d.KnownHosts, []byte(b.String()), 0o644)
}

func keyPart(pub string) string {
	f := strings.Fields(pub)
	if len(f) < 2 {
		return ""
	}
	return f[0] + " " + f[1]
}

func (l *Lab) watchCardKeys(ctx context.Context) {
	last := map[string]string{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(150 * time.Millisecond):
		}
		changed := false
		for _, n := range l.Desc.Nodes {
			b, _ := os.ReadFile(filepath.Join(n.Dir, "card_host_key.pub"))
			if k := keyPart(string(b)); k != last[n.Name] {
				last[n.Name], changed = k, true
			}
		}
		if changed {
			if err := l.writeKnownHosts(); err != nil {
				l.logf("known_hosts: %v", err)
			}
		}
	}
}

// Down powers every node off and removes everything the lab made (processes, namespaces, loop
// devices, partition devices, the bridge). The unreachable route for the subnet stays.
func (l *Lab) Down() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil
	}
	l.down = true
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
	if l.dns != nil && l.dns.Process != nil {
		l.dns.Process.Kill()
		<-l.dnsEnd
	}
	if l.sw != nil {
		l.sw.Stop()
	}
	err := cleanup(l.opts.Dir, l.logf)
	if b, e := os.ReadFile(activeFile); e == nil && strings.TrimSpace(string(b)) == l.opts.Dir {
		os.Remove(activeFile)
	}
	if l.lock != nil {
		l.lock.Close()
	}
	l.logf("down")
	return err
}

func acquireLock(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return f, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lab: another lab holds %s: %w", lockFile, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	os.Chmod(tmp, mode)
	return os.Rename(tmp, path)
}

func tailStr(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
