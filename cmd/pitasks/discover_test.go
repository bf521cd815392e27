package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

func discoveryConfig(t *testing.T) *config.Config {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Cluster.TFTPRoot = filepath.Join(dir, "tftpboot")
	cfg.Cluster.NFSBootDir = filepath.Join(dir, "nfs-boot")
	cfg.Cluster.DHCPHostsFile = filepath.Join(dir, "dhcp-hosts")
	cfg.Cluster.DnsmasqPIDFile = filepath.Join(dir, "dnsmasq.pid")
	cfg.Cluster.DnsmasqLog = filepath.Join(dir, "dnsmasq.log")
	cfg.Cluster.SSHKey = filepath.Join(dir, "id_ed25519")
	cfg.Cluster.PimasterIP = "10.10.0.2"
	os.MkdirAll(cfg.Cluster.NFSBootDir, 0o755)
	return cfg
}

func TestDnsmasqCommand(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, st, 3)
	// Two nodes with a MAC and an address, one without (imported without them).
	for i, mac := range []string{"B8:27:EB:00:00:01", "dc:a6:32:00:00:02"} {
		n := c.Nodes[i]
		n.MAC, n.IP = mac, fmt.Sprintf("10.10.0.%d", 11+i)
		if err := st.UpdateNode(ctx, &n); err != nil {
			t.Fatal(err)
		}
	}
	cfg := discoveryConfig(t)
	conf := filepath.Join(t.TempDir(), "piseduce.conf")
	var out bytes.Buffer
	err := dnsmasqCmd(ctx, cfg, st, []string{"-no-reload", "-conf", conf, "-network", "10.10.0.0/24", "-cmdline"}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	b, _ := os.ReadFile(cfg.Cluster.DHCPHostsFile)
	if !strings.HasSuffix(string(b), "\nb8:27:eb:00:00:01,node-1,10.10.0.11\ndc:a6:32:00:00:02,node-2,10.10.0.12\n") {
		t.Fatalf("hosts file:\n%s", b)
	}
	if !strings.Contains(out.String(), "2 of 3 nodes") {
		t.Fatalf("output: %s", out.String())
	}
	b, _ = os.ReadFile(conf)
	if !strings.Contains(string(b), "listen-address=10.10.0.2\n") || !strings.Contains(string(b), "dhcp-hostsfile="+cfg.Cluster.DHCPHostsFile+"\n") {
		t.Fatalf("snippet:\n%s", b)
	}
	if dnsmasq, err := exec.LookPath("dnsmasq"); err == nil {
		if out, err := exec.Command(dnsmasq, "--test", "-C", conf).CombinedOutput(); err != nil {
			t.Fatalf("dnsmasq --test: %v: %s", err, out)
		}
	}
	b, _ = os.ReadFile(filepath.Join(cfg.Cluster.NFSBootDir, "cmdline.txt"))
	if !strings.Contains(string(b), "nfsroot=10.10.0.2:/nfs/raspi,vers=3 ") {
		t.Fatalf("cmdline.txt: %q", b)
	}

	// No dnsmasq running: the reload fails clearly (after writing the file).
	out.Reset()
	if err := dnsmasqCmd(ctx, cfg, st, nil, &out); err == nil || !strings.Contains(err.Error(), "dnsmasq pid file") {
		t.Fatalf("reload without dnsmasq: %v", err)
	}
	// A node with a broken MAC (written before the store refused it) is named, and the file is
	// left as it was.
	n := c.Nodes[2]
	n.MAC, n.IP = "not-a-mac", "10.10.0.13"
	if err := st.UpdateNode(ctx, &n); err == nil || !strings.Contains(err.Error(), `mac: "not-a-mac" is not a MAC address`) {
		t.Fatalf("the store took a broken MAC: %v", err)
	}
	if err := storetest.DB(st).Model(&store.Node{}).Where("id = ?", n.ID).Updates(map[string]any{"mac": n.MAC, "ip": n.IP}).Error; err != nil {
		t.Fatal(err)
	}
	if err := dnsmasqCmd(ctx, cfg, st, []string{"-no-reload"}, &out); err == nil || !strings.Contains(err.Error(), "node node-3") {
		t.Fatalf("bad MAC: %v", err)
	}
	if b2, _ := os.ReadFile(cfg.Cluster.DHCPHostsFile); strings.Contains(string(b2), "node-3") {
		t.Fatalf("hosts file changed: %s", b2)
	}
	// -conf without a valid network.
	if err := dnsmasqCmd(ctx, cfg, st, []string{"-no-reload", "-conf", conf}, &out); err == nil || !strings.Contains(err.Error(), "network") {
		t.Fatalf("-conf without -network: %v", err)
	}
	// The nodes' network and interface from the configuration.
	n.MAC = "dc:a6:32:00:00:03"
	st.UpdateNode(ctx, &n)
	cfg.Cluster.NodesNetwork, cfg.Cluster.NodesInterface = "10.10.0.0/24", "eth1"
	if err := dnsmasqCmd(ctx, cfg, st, []string{"-no-reload", "-conf", conf}, &out); err != nil {
		t.Fatalf("-conf with [cluster] nodes_network: %v", err)
	}
	if b, _ := os.ReadFile(conf); !strings.Contains(string(b), "interface=eth1\n") || !strings.Contains(string(b), "dhcp-range=10.10.0.0,static,255.255.255.0\n") {
		t.Fatalf("snippet from the configuration:\n%s", b)
	}
}

func TestDiscoverCommandArguments(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, "sqlite")
	storetest.Seed(t, st, 2)
	cfg := discoveryConfig(t)
	var out bytes.Buffer
	cases := []struct {
		args []string
		want string
	}{
		{nil, "pitasks discover: missing argument"},
		{[]string{"sw1", "x"}, "port \"x\" is not a port number"},
		{[]string{"sw1"}, "set [cluster] first_node_ip"},
	}
	for _, c := range cases {
		if err := discoverCmd(ctx, cfg, st, c.args, &out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("discover %q: %v, want %q", c.args, err, c.want)
		}
	}
	cfg.Cluster.FirstNodeIP = "10.10.0.11"
	// The NFS system's key is required: nothing is trusted on first use.
	if err := discoverCmd(ctx, cfg, st, []string{"sw1"}, &out); err == nil || !strings.Contains(err.Error(), "set [cluster] nfs_host_key") {
		t.Errorf("without nfs_host_key: %v", err)
	}
	cfg.Cluster.NFSHostKey = filepath.Join(t.TempDir(), "nfs_host_key.pub")
	if err := os.WriteFile(cfg.Cluster.NFSHostKey, []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := discoverCmd(ctx, cfg, st, []string{"sw1"}, &out); err == nil || !strings.Contains(err.Error(), "nfs_host_key "+cfg.Cluster.NFSHostKey) {
		t.Errorf("with a broken nfs_host_key: %v", err)
	}
	_, pub, err := remote.NewHostKey("root@nfspi")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Cluster.NFSHostKey, []byte(remote.AuthorizedKey(pub)+" root@nfspi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := discoverCmd(ctx, cfg, st, []string{"nope"}, &out); err == nil || !strings.Contains(err.Error(), `no switch called "nope"`) {
		t.Errorf("unknown switch: %v", err)
	}
	if err := discoverCmd(ctx, cfg, st, []string{"sw1", "9"}, &out); err == nil || !strings.Contains(err.Error(), "no port 9") {
		t.Errorf("port out of range: %v", err)
	}
	// Every port of sw1 has a node or is the master port: nothing is powered, nothing fails.
	out.Reset()
	if err := discoverCmd(ctx, cfg, st, []string{"sw1"}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "port 1: already has node node-1: skipped") ||
		!strings.Contains(out.String(), "port 3: the pimaster's port: skipped") {
		t.Fatalf("output:\n%s", out.String())
	}
	if k, found, err := st.HostKey(ctx, remote.RoleNFS, 0); err != nil || !found || k != remote.AuthorizedKey(pub) {
		t.Errorf("the NFS system's key is not pinned: %q %v %v", k, found, err)
	}
}

// Through run(): the subcommands are wired in.
func TestDnsmasqThroughRun(t *testing.T) {
	cfg := discoveryConfig(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "seducepp.conf")
	db := "sqlite://" + filepath.Join(dir, "piseduce.db")
	os.WriteFile(p, []byte(fmt.Sprintf("[db]\nconnection_url = %s\n[cluster]\ndhcp_hosts_file = %s\nssh_key = %s\n",
		db, cfg.Cluster.DHCPHostsFile, cfg.Cluster.SSHKey)), 0o644)
	if err := run([]string{"-config", p, "dnsmasq", "-no-reload"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(cfg.Cluster.DHCPHostsFile); err != nil || !strings.HasPrefix(string(b), "# Generated by PiSeduce") {
		t.Fatalf("hosts file: %q %v", b, err)
	}
	if err := run([]string{"-config", p, "discover"}); err == nil || !strings.Contains(err.Error(), "pitasks discover: missing argument") {
		t.Fatalf("discover without a switch: %v", err)
	}
}

// TestHostsFileFollowsTheDatabase: pitasks rewrites dnsmasq's hosts file and makes a real
// dnsmasq re-read it when, and only when, the nodes in the database changed; an entry that a
// node discovery added meanwhile is left alone until then.
func TestHostsFileFollowsTheDatabase(t *testing.T) {
	dnsmasq := testenv.NeedCommand(t, "dnsmasq")
	testenv.NeedRoot(t)
	ctx := context.Background()
	st := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, st, 2)
	cfg := discoveryConfig(t)
	os.WriteFile(cfg.Cluster.DHCPHostsFile, nil, 0o644)
	// dnsmasq without DNS, serving DHCP on loopback only: nothing will ask it anything, but it
	// reads its hosts file at start and on every SIGHUP, and logs each read.
	cmd := exec.Command(dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--interface=lo", "--bind-interfaces", "--dhcp-range=127.0.0.2,static", "--dhcp-hostsfile="+cfg.Cluster.DHCPHostsFile, "--pid-file="+cfg.Cluster.DnsmasqPIDFile,
		"--log-facility="+cfg.Cluster.DnsmasqLog, "--user=root")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	reads := func() int {
		b, _ := os.ReadFile(cfg.Cluster.DnsmasqLog)
		return strings.Count(string(b), "read "+cfg.Cluster.DHCPHostsFile)
	}
	waitReads := func(n int) {
		for deadline := time.Now().Add(5 * time.Second); reads() < n; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("dnsmasq read its hosts file %d times, want %d", reads(), n)
			}
		}
	}
	waitReads(1) // at start
	var last []byte
	sync := func() {
		t.Helper()
		if err := syncHostsOnChange(ctx, st, cfg.Cluster.DHCPHostsFile, cfg.Cluster.DnsmasqPIDFile, &last); err != nil {
			t.Fatal(err)
		}
	}
	n := c.Nodes[0]
	n.MAC, n.IP = "b8:27:eb:00:00:01", "10.10.0.11"
	st.UpdateNode(ctx, &n)
	sync()
	waitReads(2)
	if b, _ := os.ReadFile(cfg.Cluster.DHCPHostsFile); !strings.HasSuffix(string(b), "\nb8:27:eb:00:00:01,node-1,10.10.0.11\n") {
		t.Fatalf("hosts file %q", b)
	}
	// A discovery adds the entry of a node it found, not registered yet.
	f, _ := os.OpenFile(cfg.Cluster.DHCPHostsFile, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("dc:a6:32:00:00:09,node-9,10.10.0.19\n")
	f.Close()
	sync() // the database did not change: no rewrite, no reload
	time.Sleep(300 * time.Millisecond)
	if got := reads(); got != 2 {
		t.Fatalf("dnsmasq re-read its file though the nodes did not change (%d reads)", got)
	}
	if b, _ := os.ReadFile(cfg.Cluster.DHCPHostsFile); !strings.Contains(string(b), "node-9") {
		t.Fatal("the discovery's entry was removed")
	}
	if err := st.DeleteNode(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	sync()
	waitReads(3)
	if b, _ := os.ReadFile(cfg.Cluster.DHCPHostsFile); strings.Contains(string(b), "node-1") {
		t.Fatalf("deleted node still in the hosts file: %q", b)
	}
}
