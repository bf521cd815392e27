package discovery_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/labtest"
	"github.com/piseduce/piseduce/pkg/discovery"
	"github.com/piseduce/piseduce/pkg/netboot"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// A fresh cluster: a lab whose dnsmasq knows no node, its switch registered, no node.
func TestDiscoverLabSwitch(t *testing.T) {
	l, _ := labtest.Up(t, lab.Options{Nodes: 3, NoDHCPHosts: true, Specs: []lab.NodeSpec{{}, {Model: lab.ModelPi4}, {}}})
	ctx := context.Background()
	desc := l.Desc
	var progress bytes.Buffer
	var mu sync.Mutex
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(desc.DnsmasqLog)
			t.Logf("dnsmasq log:\n%s", labtest.Tail(string(b), 6000))
			for _, n := range desc.Nodes {
				b, _ := os.ReadFile(n.EventsLog)
				t.Logf("%s events:\n%s", n.Name, labtest.Tail(string(b), 1500))
			}
		}
	})
	if b, _ := os.ReadFile(desc.DHCPHostsFile); strings.TrimSpace(string(b)) != "" {
		t.Fatalf("the lab's hosts file is not empty: %q", b)
	}

	st := storetest.Open(t, "sqlite")
	s := desc.Switch
	sw := store.Switch{Name: s.Name, IP: s.IP, SNMPPort: s.Port, SNMPVersion: "2c", Community: s.Community,
		PortCount: s.PortNb, MasterPort: s.MasterPort, OID: s.OID, OIDOffset: s.Offset}
	if err := st.CreateSwitch(ctx, &sw); err != nil {
		t.Fatal(err)
	}
	signer, err := remote.LoadOrCreateKey(desc.PimasterKey)
	if err != nil {
		t.Fatal(err)
	}
	tftp := netboot.TFTP{Root: desc.TFTPRoot, NFSBootDir: desc.NFSBootDir}
	newDiscoverer := func(keys remote.HostKeyStore) *discovery.Discoverer {
		return &discovery.Discoverer{
			Store:       st,
			Dialer:      &remote.Dialer{Signer: signer, Keys: keys, Timeout: 3 * time.Second},
			NFSHostname: "nfspi",
			TFTP:        tftp,
			HostsFile:   desc.DHCPHostsFile,
			PIDFile:     filepath.Join(desc.Dir, "dnsmasq.pid"),
			LogFile:     desc.DnsmasqLog,
			FirstNodeIP: lab.SubnetPrefix + ".11",
			DHCPTimeout: 5 * time.Second,
			BootTimeout: 45 * time.Second,
			OffTime:     300 * time.Millisecond,
			Progress: func(e discovery.Event) {
				mu.Lock()
				defer mu.Unlock()
				progress.WriteString(e.Time.Format("15:04:05.000 ") + e.String() + "\n")
			},
		}
	}
	dump := func() {
		mu.Lock()
		defer mu.Unlock()
		t.Logf("progress:\n%s", progress.String())
		progress.Reset()
	}
	portsOff := func() {
		t.Helper()
		for p := 1; p <= s.PortNb; p++ {
			if p == s.MasterPort {
				continue
			}
			if on, err := l.Switch().PortOn(p); err != nil || on {
				t.Errorf("port %d left on (%v)", p, err)
			}
		}
		for _, n := range desc.Nodes {
			if m, err := tftp.Mode(n.Serial); err != nil || m != netboot.ModeNone {
				t.Errorf("%s: TFTP folder left in mode %s (%v)", n.Name, m, err)
			}
		}
	}

	// No NFS key pinned: the SSH step fails, the port is reported, nothing is registered and
	// nothing is left behind.
	t.Run("ssh fails", func(t *testing.T) {
		d := newDiscoverer(remote.StaticHostKey(""))
		res, err := d.Run(ctx, sw.Name, 1)
		dump()
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Failed) != 1 || res.Failed[0].Port != 1 || len(res.Registered) != 0 {
			t.Fatalf("result %+v", res)
		}
		if msg := res.Err().Error(); !strings.Contains(msg, "port 1:") || !strings.Contains(msg, "no host key") {
			t.Fatalf("error %q does not name the port and the cause", msg)
		}
		if ns, _ := st.Nodes(ctx); len(ns) != 0 {
			t.Fatalf("registered half-way: %+v", ns)
		}
		b, _ := os.ReadFile(desc.DHCPHostsFile)
		if strings.Contains(string(b), desc.Nodes[0].MAC) {
			t.Fatalf("hosts file keeps the failed node: %q", b)
		}
		portsOff()
	})
	if t.Failed() {
		return
	}

	nfsKey, err := os.ReadFile(desc.NFSHostPubKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PinHostKey(ctx, remote.RoleNFS, 0, strings.TrimSpace(string(nfsKey))); err != nil {
		t.Fatal(err)
	}
	d := newDiscoverer(st)

	t0 := time.Now()
	res, err := d.Run(ctx, sw.Name)
	dump()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first run: %s", time.Since(t0).Round(100*time.Millisecond))
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	nodes, err := st.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Registered) != 3 || len(nodes) != 3 {
		t.Fatalf("registered %d, %d in the database; want 3", len(res.Registered), len(nodes))
	}
	for i, want := range desc.Nodes {
		got := nodes[i]
		if got.Name != want.Name || got.Port != want.Port || got.MAC != want.MAC || got.Serial != want.Serial ||
			got.Model != want.Model || got.IP != want.IP || got.SwitchID != sw.ID {
			t.Errorf("node %d: got %+v\nwant %+v", i+1, got, want)
		}
	}
	if want := []int{5, 6, 7, 8}; len(res.Empty) != len(want) {
		t.Errorf("empty ports %v, want %v", res.Empty, want)
	}
	if len(res.Skipped) != 1 || res.Skipped[0] != s.MasterPort {
		t.Errorf("skipped %v, want the master port %d", res.Skipped, s.MasterPort)
	}
	// The hosts file is the database's, and dnsmasq serves it: a node now gets its lease.
	b, _ := os.ReadFile(desc.DHCPHostsFile)
	for _, n := range desc.Nodes {
		if !strings.Contains(string(b), n.MAC+","+n.Name+","+n.IP+"\n") {
			t.Errorf("hosts file lacks %s: %q", n.Name, b)
		}
	}
	// Each node got its lease from the generated hosts file (written, then SIGHUP).
	lg, _ := os.ReadFile(desc.DnsmasqLog)
	for _, n := range desc.Nodes {
		if !strings.Contains(string(lg), "DHCPACK(eth0) "+n.IP+" "+n.MAC+" "+n.Name) {
			t.Errorf("dnsmasq never acknowledged %s's lease", n.Name)
		}
	}
	portsOff()

	// A second run finds nothing new.
	res, err = d.Run(ctx, sw.Name)
	dump()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Registered) != 0 || len(res.Failed) != 0 || len(res.Skipped) != 4 || len(res.Empty) != 4 {
		t.Fatalf("second run: %+v", res)
	}
	if ns, _ := st.Nodes(ctx); len(ns) != 3 {
		t.Fatalf("%d nodes after the second run", len(ns))
	}
	portsOff()
}
