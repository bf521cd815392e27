package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/piseduce/piseduce/pkg/client"
)

// options collects a repeated flag.
type options []string

func (o *options) String() string     { return strings.Join(*o, " ") }
func (o *options) Set(s string) error { *o = append(*o, s); return nil }

// The system's host key is made by pitasks and written onto the card, and the API gives it to
// the owner: ssh checks the node against it (StrictHostKeyChecking=yes, a known_hosts file of
// piseduce's own per node), so no key is trusted on first use and a redeployed node's new key
// needs no editing of ~/.ssh/known_hosts.
func (a *app) sshCmd() subcommand {
	c := newCommand("ssh", "NODE [-- COMMAND…]", `Logs in to a deployed node of yours with the system's ssh, as the environment's user,
checking the node's host key against the one the site pinned. Put -- before a command that
has options of its own: piseduce ssh node-1 -- ls -l /.`, 1, -1)
	identity := c.Flags.String("i", "", "the private key file to log in with (ssh -i)")
	var opts options
	c.Flags.Var(&opts, "o", "an ssh option, e.g. -o ConnectTimeout=10 (repeatable)")
	return subcommand{c, func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		ds, err := cl.Deployments(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(ds, func(d client.Deployment) bool { return d.Node == args[0] })
		if i < 0 {
			return fmt.Errorf("%s has no deployment of yours (piseduce nodes lists them)", args[0])
		}
		d, err := cl.Deployment(ctx, ds[i].ID)
		if err != nil {
			return err
		}
		switch {
		case !d.Reachable:
			return fmt.Errorf("%s is not deployed: %s", d.Node, label(d))
		case d.HostKey == "":
			return fmt.Errorf("the site has no host key for %s's system: it cannot be checked, so ssh is not run", d.Node)
		case d.SSHHost == "" || strings.HasPrefix(d.SSHHost, "-") || d.SSHUser == "" || strings.HasPrefix(d.SSHUser, "-"):
			return fmt.Errorf("the site gave no usable address or user for %s (%q, %q)", d.Node, d.SSHHost, d.SSHUser)
		}
		known, err := a.knownHosts(d)
		if err != nil {
			return err
		}
		argv := []string{"ssh", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + known,
			"-o", "GlobalKnownHostsFile=/dev/null", "-p", strconv.Itoa(d.SSHPort), "-l", d.SSHUser}
		if *identity != "" {
			argv = append(argv, "-i", *identity)
		}
		for _, o := range opts {
			argv = append(argv, "-o", o)
		}
		// "--" ends ssh's options: neither the host nor the command is read as one.
		argv = append(append(argv, "--", d.SSHHost), args[1:]...)
		return a.execSSH(argv)
	}}
}

// knownHosts writes the node's pinned key into its own known_hosts file and returns its path.
func (a *app) knownHosts(d *client.Deployment) (string, error) {
	dir, err := a.configDir()
	if err != nil {
		return "", err
	}
	dir = filepath.Join(dir, "known_hosts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	host := d.SSHHost
	if d.SSHPort != 22 {
		host = "[" + d.SSHHost + "]:" + strconv.Itoa(d.SSHPort)
	}
	if strings.ContainsAny(d.HostKey, "\n\r") || strings.ContainsAny(host, " \t\n\r,*?!") || net.ParseIP(d.SSHHost) == nil && strings.ContainsAny(d.SSHHost, "[]") {
		return "", fmt.Errorf("the site gave an odd address or host key for %s: not used", d.Node)
	}
	path := filepath.Join(dir, d.Node)
	if filepath.Base(path) != d.Node {
		return "", fmt.Errorf("odd node name %q", d.Node)
	}
	return path, os.WriteFile(path, []byte(host+" "+d.HostKey+"\n"), 0o600)
}

// execSSH replaces this process with the system's ssh: the terminal, signals and exit status
// are ssh's.
func execSSH(argv []string) error {
	path, err := exec.LookPath("ssh")
	if err != nil {
		return fmt.Errorf("no ssh command found: install OpenSSH's client (%w)", err)
	}
	return syscall.Exec(path, argv, os.Environ())
}
