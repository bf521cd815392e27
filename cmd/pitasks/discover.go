package main

// Node discovery and the generated dnsmasq files:
//
//	pitasks discover [-dhcp-timeout 20s] [-boot-timeout 2m] SWITCH [PORT…]
//	    power each port of SWITCH without a node (or only PORT…), one at a time, and register
//	    the Raspberry Pi found there (see pkg/discovery); progress on stdout, one line each.
//	pitasks dnsmasq [-no-reload] [-conf FILE -interface IFACE -network NET] [-cmdline]
//	    rewrite [cluster] dhcp_hosts_file from the database and reload dnsmasq (SIGHUP to the pid
//	    in dnsmasq_pid_file); -conf also writes the main snippet (listen address: pimaster_ip),
//	    -cmdline the NFS system's cmdline.txt in nfs_boot_dir.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/piseduce/piseduce/pkg/cli"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/discovery"
	"github.com/piseduce/piseduce/pkg/netboot"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
)

// discoveryCmd runs "discover …" and "dnsmasq …".
func discoveryCmd(ctx context.Context, cfg *config.Config, st *store.Store, cmd string, args []string, w io.Writer) error {
	if cmd == "dnsmasq" {
		return dnsmasqCmd(ctx, cfg, st, args, w)
	}
	return discoverCmd(ctx, cfg, st, args, w)
}

type discoverFlags struct{ dhcpTimeout, bootTimeout *time.Duration }

func discoverCommand() (*cli.Command, discoverFlags) {
	c := cli.New("pitasks discover", "SWITCH [PORT…]",
		"Power each port of SWITCH without a node (or only PORT…), one at a time, and register the\n"+
			"Raspberry Pi found there; progress on stdout, one line each.", 1, -1)
	return c, discoverFlags{
		dhcpTimeout: c.Flags.Duration("dhcp-timeout", discovery.DefaultDHCPTimeout, "how long a powered port is watched for a Pi's DHCP request"),
		bootTimeout: c.Flags.Duration("boot-timeout", discovery.DefaultBootTimeout, "bound of each later wait (TFTP request, NFS system's SSH)"),
	}
}

func discoverCmd(ctx context.Context, cfg *config.Config, st *store.Store, args []string, w io.Writer) error {
	c, f := discoverCommand()
	args, err := c.Parse(args)
	if err != nil {
		return err
	}
	var ports []int
	for _, a := range args[1:] {
		p, err := strconv.Atoi(a)
		if err != nil || p < 1 {
			return c.Errorf("port %q is not a port number (1, 2, …)", a)
		}
		ports = append(ports, p)
	}
	d, err := newDiscoverer(ctx, cfg, st, func(e discovery.Event) {
		fmt.Fprintf(w, "%s %s\n", e.Time.Format("15:04:05"), e)
	})
	if err != nil {
		return err
	}
	d.DHCPTimeout, d.BootTimeout = *f.dhcpTimeout, *f.bootTimeout
	res, err := d.Run(ctx, args[0], ports...)
	if err != nil {
		return err
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("discovery of %s: %d port(s) failed:\n%w", args[0], len(res.Failed), err)
	}
	return nil
}

// newDiscoverer builds the discovery of the configured cluster, reporting to progress.
func newDiscoverer(ctx context.Context, cfg *config.Config, st *store.Store, progress func(discovery.Event)) (*discovery.Discoverer, error) {
	if cfg.Cluster.FirstNodeIP == "" {
		return nil, errors.New("set [cluster] first_node_ip (the address of the first node, e.g. 10.10.0.11) for discovery")
	}
	signer, err := remote.LoadOrCreateKey(cfg.Cluster.SSHKey)
	if err != nil {
		return nil, err
	}
	// The node found boots the NFS system, whose key is known: nothing is trusted on first use.
	if cfg.Cluster.NFSHostKey == "" {
		return nil, errors.New("set [cluster] nfs_host_key (the NFS system's public host key file) for discovery")
	}
	if err := pinNFSKey(ctx, st, cfg.Cluster.NFSHostKey); err != nil {
		return nil, err
	}
	return &discovery.Discoverer{
		Store:       st,
		Power:       func(sw *store.Switch) (power.Controller, error) { return switchDriver(sw) },
		Dialer:      &remote.Dialer{Signer: signer, Keys: st, Timeout: 5 * time.Second},
		NFSHostname: cfg.Cluster.NFSHostname,
		TFTP:        netboot.TFTP{Root: cfg.Cluster.TFTPRoot, NFSBootDir: cfg.Cluster.NFSBootDir},
		HostsFile:   cfg.Cluster.DHCPHostsFile,
		PIDFile:     cfg.Cluster.DnsmasqPIDFile,
		LogFile:     cfg.Cluster.DnsmasqLog,
		FirstNodeIP: cfg.Cluster.FirstNodeIP,
		Progress:    progress,
	}, nil
}

// discoverRun carries out a discovery run an admin asked for on the web (see
// requests.Discoveries), its progress reported line by line.
func discoverRun(cfg *config.Config, st *store.Store) func(context.Context, *store.DiscoveryRun, func(string)) error {
	return func(ctx context.Context, r *store.DiscoveryRun, progress func(string)) error {
		d, err := newDiscoverer(ctx, cfg, st, func(e discovery.Event) { progress(e.String()) })
		if err != nil {
			return err
		}
		res, err := d.Run(ctx, r.Switch.Name, r.PortList()...)
		if err != nil {
			return err
		}
		return res.Err()
	}
}

// keepDHCPHostsCurrent rewrites dnsmasq's hosts file and reloads dnsmasq whenever the nodes
// in the database change (an admin added, edited or deleted a node on the web). It follows
// the database, not the file: a node discovery adds its own entry to the file before the node
// is registered, and that entry must be left alone.
func keepDHCPHostsCurrent(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger) {
	path := cfg.Cluster.DHCPHostsFile
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		log.Warn("dnsmasq's hosts file is not kept current: no such folder", "dhcp_hosts_file", path)
		return
	}
	var last []byte
	keepCurrent(ctx, log, "dnsmasq hosts file", func(ctx context.Context) error {
		return syncHostsOnChange(ctx, st, path, cfg.Cluster.DnsmasqPIDFile, &last)
	})
}

// keepCurrent runs sync now and every 5 seconds until ctx ends, logging its errors: the files
// other daemons read follow the database (sync rewrites them and reloads their daemon when
// what the database calls for changed).
func keepCurrent(ctx context.Context, log *slog.Logger, what string, sync func(context.Context) error) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if err := sync(ctx); err != nil && ctx.Err() == nil {
			log.Warn(what, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// syncHostsOnChange writes the hosts file and reloads dnsmasq when the file the nodes call for
// differs from *last, the one written before (nil: none yet).
func syncHostsOnChange(ctx context.Context, st *store.Store, path, pidFile string, last *[]byte) error {
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return err
	}
	hs, err := discovery.Hosts(nodes)
	if err != nil {
		return err
	}
	want, err := netboot.HostsFile(hs)
	if err != nil {
		return err
	}
	if *last != nil && bytes.Equal(*last, want) {
		return nil
	}
	if err := discovery.SyncDHCP(ctx, st, path, func() error { return netboot.ReloadDnsmasq(pidFile) }); err != nil {
		return err
	}
	*last = want
	return nil
}

type dnsmasqFlags struct {
	noReload, cmdline    *bool
	conf, iface, network *string
}

func dnsmasqCommand() (*cli.Command, dnsmasqFlags) {
	c := cli.New("pitasks dnsmasq", "", "Rewrite [cluster] dhcp_hosts_file from the database and reload dnsmasq (SIGHUP to the\n"+
		"pid in dnsmasq_pid_file).", 0, 0)
	return c, dnsmasqFlags{
		noReload: c.Flags.Bool("no-reload", false, "write the hosts file only, do not signal dnsmasq"),
		conf:     c.Flags.String("conf", "", "also write the main dnsmasq snippet there (e.g. /etc/dnsmasq.d/piseduce.conf)"),
		iface:    c.Flags.String("interface", "", "with -conf: the nodes' network interface (default: [cluster] nodes_interface, else eth0)"),
		network:  c.Flags.String("network", "", "with -conf: the nodes' network, e.g. 10.10.0.0/24 (default: [cluster] nodes_network)"),
		cmdline:  c.Flags.Bool("cmdline", false, "also write cmdline.txt of the NFS system into [cluster] nfs_boot_dir"),
	}
}

func dnsmasqCmd(ctx context.Context, cfg *config.Config, st *store.Store, args []string, w io.Writer) error {
	c, f := dnsmasqCommand()
	if _, err := c.Parse(args); err != nil {
		return err
	}
	noReload, conf, cmdline := f.noReload, f.conf, f.cmdline
	iface := cmp.Or(*f.iface, cfg.Cluster.NodesInterface, "eth0")
	network := cmp.Or(*f.network, cfg.Cluster.NodesNetwork)
	if *conf != "" {
		b, err := netboot.DnsmasqConf(netboot.DnsmasqConfig{Interface: iface, ListenAddress: cfg.Cluster.PimasterIP,
			Network: network, TFTPRoot: cfg.Cluster.TFTPRoot, HostsFile: cfg.Cluster.DHCPHostsFile, LogFile: cfg.Cluster.DnsmasqLog})
		if err != nil {
			return fmt.Errorf("%w (the listen address is [cluster] pimaster_ip)", err)
		}
		if err := writeFile(*conf, b); err != nil {
			return err
		}
		fmt.Fprintf(w, "wrote %s\n", *conf)
	}
	if *cmdline {
		if err := netboot.WriteNFSCmdline(cfg.Cluster.NFSBootDir, cfg.Cluster.PimasterIP); err != nil {
			return fmt.Errorf("%w (set [cluster] pimaster_ip)", err)
		}
		fmt.Fprintf(w, "wrote %s\n", filepath.Join(cfg.Cluster.NFSBootDir, "cmdline.txt"))
	}
	reload := func() error { return netboot.ReloadDnsmasq(cfg.Cluster.DnsmasqPIDFile) }
	if *noReload {
		reload = func() error { return nil }
	}
	if err := discovery.SyncDHCP(ctx, st, cfg.Cluster.DHCPHostsFile, reload); err != nil {
		return err
	}
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return err
	}
	hosts, _ := discovery.Hosts(nodes)
	fmt.Fprintf(w, "wrote %s: %d of %d nodes (those with a MAC and an address)\n", cfg.Cluster.DHCPHostsFile, len(hosts), len(nodes))
	if !*noReload {
		fmt.Fprintf(w, "dnsmasq reloaded (SIGHUP)\n")
	}
	return nil
}

// writeFile writes b at path through a temporary file renamed over it.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
