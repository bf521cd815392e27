package admin

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/testenv"
)

// The firewall test runs this test binary again inside its network namespaces, in one of two
// roles (fwRole): a listener on the ports of fwPorts, reporting each UDP datagram on stdout,
// or a probe of fwProbe ("tcp HOST:PORT [FROM]" or "udp HOST:PORT PAYLOAD"), which prints
// "open" or "closed: …" for TCP.
const (
	fwRole  = "PISEDUCE_FWTEST_ROLE"
	fwPorts = "PISEDUCE_FWTEST_PORTS"
	fwProbe = "PISEDUCE_FWTEST_PROBE"
)

// fwHelper plays a role and returns the exit status.
func fwHelper(role string) int {
	switch role {
	case "listen":
		out := log.New(os.Stdout, "", 0) // safe for the listeners' goroutines
		for _, p := range strings.Split(os.Getenv(fwPorts), ",") {
			proto, port, _ := strings.Cut(p, ":")
			if proto == "tcp" {
				l, err := net.Listen("tcp", "[::]:"+port)
				if err != nil {
					fmt.Println("listen:", err)
					return 1
				}
				go func() {
					for {
						c, err := l.Accept()
						if err != nil {
							return
						}
						c.Close()
					}
				}()
				continue
			}
			c, err := net.ListenPacket("udp", "[::]:"+port)
			if err != nil {
				fmt.Println("listen:", err)
				return 1
			}
			go func() {
				b := make([]byte, 512)
				for {
					n, _, err := c.ReadFrom(b)
					if err != nil {
						return
					}
					out.Printf("udp %s %s", port, b[:n])
				}
			}()
		}
		out.Print("ready")
		io.Copy(io.Discard, os.Stdin) // until the test closes it
		return 0
	case "probe":
		f := strings.Fields(os.Getenv(fwProbe))
		if len(f) < 2 {
			return 2
		}
		if f[0] == "udp" {
			c, err := net.Dial("udp", f[1])
			if err != nil {
				fmt.Println("closed:", err)
				return 0
			}
			for range 3 {
				c.Write([]byte(f[2]))
				time.Sleep(20 * time.Millisecond)
			}
			fmt.Println("sent")
			return 0
		}
		d := net.Dialer{Timeout: 3 * time.Second}
		if len(f) == 3 {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(f[2])}
		}
		c, err := d.Dial("tcp", f[1])
		if err != nil {
			fmt.Println("closed:", err)
			return 0
		}
		c.Close()
		fmt.Println("open")
		return 0
	}
	return 2
}

// fwNet is the test's private network: namespaces joined by veth pairs only, nothing in the
// root namespace, so no packet can leave.
type fwNet struct {
	t      *testing.T
	prefix string
}

func (n *fwNet) ns(name string) string { return n.prefix + name }

func (n *fwNet) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// in runs argv in namespace ns.
func (n *fwNet) in(ns string, argv ...string) string {
	n.t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.ns(ns)}, argv...)...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("in %s: %s: %v\n%s", ns, strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// link joins a:ifA (addrA) and b:ifB (addrB) with a veth pair.
func (n *fwNet) link(a, ifA, addrA, b, ifB, addrB string) {
	n.t.Helper()
	n.ip("link", "add", ifA, "netns", n.ns(a), "type", "veth", "peer", "name", ifB, "netns", n.ns(b))
	for _, e := range [][3]string{{a, ifA, addrA}, {b, ifB, addrB}} {
		n.in(e[0], "ip", "addr", "add", e[2], "dev", e[1])
		n.in(e[0], "ip", "link", "set", e[1], "up")
	}
}

// listen starts the listener role in ns; its UDP reports arrive on the returned channel.
func (n *fwNet) listen(ns string, ports ...string) <-chan string {
	n.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.ns(ns), os.Args[0])
	cmd.Env = append(os.Environ(), fwRole+"=listen", fwPorts+"="+strings.Join(ports, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	lines := make(chan string, 100)
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		n.t.Fatalf("listener in %s: %q %v", ns, sc.Text(), sc.Err())
	}
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

// probe runs the probe role in ns.
func (n *fwNet) probe(ns, spec string) string {
	n.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.ns(ns), os.Args[0])
	cmd.Env = append(os.Environ(), fwRole+"=probe", fwProbe+"="+spec)
	out, err := cmd.CombinedOutput()
	if err != nil {
		n.t.Fatalf("probe %s from %s: %v\n%s", spec, ns, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestNodesFirewall loads the ruleset install.sh writes into a pimaster's namespace between a
// node, a switch's management network, an internal mirror the nodes may reach and "the
// internet" (TEST-NET-2), and tries every door from the node, before the ruleset (all open:
// the test can tell) and after.
func TestNodesFirewall(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "nft", "ip")
	root := t.TempDir()
	out, code := script(t, []string{"PISEDUCE_ROOT=" + root}, "install.sh", "--only", "firewall",
		"--nodes-interface", "nodes0", "--nodes-network", "10.124.0.7/24", "--nodes-may-reach", "192.168.125.0/24")
	if code != 0 {
		t.Fatalf("install.sh --only firewall: exit %d\n%s", code, out)
	}
	ruleset := filepath.Join(root, "etc/nftables.d/piseduce.nft")
	if b, _ := os.ReadFile(filepath.Join(root, "etc/nftables.conf")); string(b) != "include \"/etc/nftables.d/piseduce.nft\"\n" {
		t.Errorf("nftables.conf: %q", b)
	}

	n := &fwNet{t: t, prefix: fmt.Sprintf("pstfw%d-", os.Getpid())}
	for _, ns := range []string{"pm", "node", "sw", "mirror", "inet"} {
		n.ip("netns", "add", n.ns(ns))
		t.Cleanup(func() { exec.Command("ip", "netns", "del", n.ns(ns)).Run() })
		n.in(ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
		n.in(ns, "ip", "link", "set", "lo", "up")
	}
	n.in("pm", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	n.link("pm", "nodes0", "10.124.0.2/24", "node", "eth0", "10.124.0.11/24")
	n.link("pm", "mgmt0", "192.168.124.1/24", "sw", "eth0", "192.168.124.2/24")
	n.link("pm", "lan0", "192.168.125.1/24", "mirror", "eth0", "192.168.125.2/24")
	n.link("pm", "up0", "198.51.100.1/24", "inet", "eth0", "198.51.100.2/24")
	for ns, gw := range map[string]string{"node": "10.124.0.2", "sw": "192.168.124.1", "mirror": "192.168.125.1", "inet": "198.51.100.1"} {
		n.in(ns, "ip", "route", "add", "default", "via", gw)
	}
	// The node also holds an address outside its network, to pose as another machine, and
	// the pimaster routes it there (else its answers would not come back: nothing to test).
	n.in("node", "ip", "addr", "add", "192.168.124.50/32", "dev", "eth0")
	n.in("pm", "ip", "route", "add", "192.168.124.50/32", "via", "10.124.0.11")
	pmLink := strings.Fields(n.in("pm", "ip", "-6", "-o", "addr", "show", "dev", "nodes0", "scope", "link"))
	if len(pmLink) < 4 {
		t.Fatalf("no link-local address on the pimaster's nodes0: %q", pmLink)
	}
	pmV6 := "[" + strings.Split(pmLink[3], "/")[0] + "%eth0]"

	if out := n.in("pm", "nft", "-c", "-f", ruleset); out != "" {
		t.Errorf("nft -c: %s", out)
	}
	pm := n.listen("pm", "tcp:22", "tcp:3306", "tcp:9000", "tcp:2049", "tcp:111", "tcp:20048", "tcp:53",
		"udp:67", "udp:69", "udp:53", "udp:161")
	sw := n.listen("sw", "tcp:80", "udp:161")
	n.listen("mirror", "tcp:80")
	inet := n.listen("inet", "tcp:80", "udp:123")

	type door struct {
		from, spec string
		open       bool // with the ruleset
		why        string
	}
	doors := []door{
		{"node", "tcp 10.124.0.2:22", false, "the pimaster's SSH"},
		{"node", "tcp 10.124.0.2:3306", false, "MariaDB"},
		{"node", "tcp 10.124.0.2:9000", false, "pifrontend"},
		{"node", "tcp 192.168.124.1:22", false, "the pimaster's SSH at its other address"},
		{"node", "tcp " + pmV6 + ":22", false, "the pimaster's SSH over IPv6 link-local"},
		{"node", "tcp 10.124.0.2:2049", true, "NFS"},
		{"node", "tcp 10.124.0.2:111", true, "rpcbind"},
		{"node", "tcp 10.124.0.2:20048", true, "mountd"},
		{"node", "tcp 10.124.0.2:53", true, "DNS"},
		{"node", "tcp 10.124.0.2:2049 192.168.124.50", false, "NFS from an address outside the nodes' network"},
		{"node", "tcp 192.168.124.2:80", false, "the switch's management"},
		{"node", "tcp 192.168.125.2:80", true, "the mirror the nodes may reach"},
		{"node", "tcp 198.51.100.2:80", true, "the internet"},
		{"sw", "tcp 192.168.124.1:22", true, "the admins' SSH from another network"},
		{"sw", "tcp 192.168.124.1:9000", true, "the admins' pifrontend from another network"},
	}
	datagrams := []struct {
		to      <-chan string
		spec    string
		open    bool
		payload string
	}{
		{pm, "udp 10.124.0.2:67", true, "dhcp"},
		{pm, "udp 10.124.0.2:69", true, "tftp"},
		{pm, "udp 10.124.0.2:53", true, "dns"},
		{pm, "udp 10.124.0.2:161", false, "snmp-pimaster"},
		{sw, "udp 192.168.124.2:161", false, "snmp-switch"},
		{inet, "udp 198.51.100.2:123", true, "ntp"},
	}
	check := func(phase string, firewall bool) {
		t.Helper()
		for _, d := range doors {
			got := n.probe(d.from, d.spec)
			if want := !firewall || d.open; (got == "open") != want {
				t.Errorf("%s: %s from %s (%s): %s, want open=%v", phase, d.spec, d.from, d.why, got, want)
			}
		}
		for _, d := range datagrams {
			n.probe("node", d.spec+" "+phase+"-"+d.payload)
		}
		// Wait for every datagram that should arrive (bounded), then a moment for the others.
		key := func(spec, payload string) string {
			return "udp " + spec[strings.LastIndexByte(spec, ':')+1:] + " " + phase + "-" + payload
		}
		missing := map[string]bool{}
		for _, d := range datagrams {
			if !firewall || d.open {
				missing[key(d.spec, d.payload)] = true
			}
		}
		got := map[string]bool{}
		deadline, grace := time.After(20*time.Second), (<-chan time.Time)(nil)
	wait:
		for {
			var l string
			select {
			case l = <-pm:
			case l = <-sw:
			case l = <-inet:
			case <-deadline:
				break wait
			case <-grace:
				break wait
			}
			got[l] = true
			delete(missing, l)
			if len(missing) == 0 && grace == nil {
				grace = time.After(500 * time.Millisecond)
			}
		}
		for _, d := range datagrams {
			arrived := got[key(d.spec, d.payload)]
			if want := !firewall || d.open; arrived != want {
				t.Errorf("%s: datagram %s from node arrived=%v, want %v", phase, d.spec, arrived, want)
			}
		}
	}
	check("before", false)
	n.in("pm", "nft", "-f", ruleset)
	check("after", true)
	// Loaded again (install.sh's next run), the table is replaced, not doubled.
	n.in("pm", "nft", "-f", ruleset)
	if tables := n.in("pm", "nft", "list", "tables"); strings.Count(tables, "table inet piseduce") != 1 {
		t.Errorf("tables after a second load:\n%s", tables)
	}
	check("again", true)
}
