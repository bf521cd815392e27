// Package admin holds the pimaster's systemd units and admin scripts; this test is their proof:
// shellcheck and bash -n, systemd-analyze verify, install.sh's plan and a real run in a
// throwaway root (twice: the second changes nothing), check.sh on a broken set-up, and the
// pitasks wrappers against a real snmpd on loopback.
package admin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab/poeswitch"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/netboot"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

var scripts = []string{"install.sh", "check.sh", "port.sh", "node-state.sh", "common.sh"}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds pitasks and pifrontend once for all tests and returns their folder.
func binaries(t *testing.T) string {
	t.Helper()
	testenv.NeedCommand(t, "go")
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "piseduce-admin-bin")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "../cmd/pitasks", "../cmd/pifrontend")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	if role := os.Getenv(fwRole); role != "" {
		os.Exit(fwHelper(role)) // inside a namespace of TestNodesFirewall
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// script runs an admin script with env added; it returns stdout+stderr and the exit status.
func script(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		return "", -1
	}
}

func TestScriptsLint(t *testing.T) {
	shellcheck := testenv.NeedCommand(t, "shellcheck")
	for _, s := range scripts {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		if out, err := exec.Command(shellcheck, "-x", "-S", "style", s).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", s, err, out)
		}
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if s == "common.sh" {
			continue
		}
		if !bytes.Contains(b, []byte("\nset -euo pipefail\n")) {
			t.Errorf("%s does not set -euo pipefail", s)
		}
		out, code := script(t, nil, s, "--help")
		if code != 0 || !strings.HasPrefix(out, "usage: admin/"+s) || !strings.Contains(out, "--dry-run") {
			t.Errorf("%s --help: exit %d\n%s", s, code, out)
		}
		if _, code := script(t, nil, s, "--no-such-option"); code == 0 {
			t.Errorf("%s accepts an unknown option", s)
		}
	}
	// The NFS system's first init, which install.sh puts in the NFS root: plain sh.
	if out, err := exec.Command(shellcheck, "-s", "sh", "-S", "style", "../pkg/netboot/nfs-init.sh").CombinedOutput(); err != nil {
		t.Errorf("shellcheck nfs-init.sh: %v\n%s", err, out)
	}
}

// unitKeys parses a systemd unit into section.key -> values.
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	sec := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			sec = strings.Trim(l, "[]")
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: not key=value: %q", path, l)
			}
			m[sec+"."+k] = append(m[sec+"."+k], v)
		}
	}
	return m
}

func TestUnits(t *testing.T) {
	grace := config.Default().Tasks.StopGrace
	for _, c := range []struct {
		unit, user, exec string
		rw               []string
	}{
		{"pifrontend.service", "piseduce", "/usr/bin/pifrontend -config /etc/seducepp.conf", nil},
		{"pitasks.service", "root", "/usr/bin/pitasks -config /etc/seducepp.conf run", []string{"/var/lib/piseduce", "/tftpboot", "/nfs"}},
	} {
		k := unitKeys(t, c.unit)
		one := func(key string) string {
			if v := k[key]; len(v) == 1 {
				return v[0]
			}
			t.Errorf("%s: want one %s, got %q", c.unit, key, k[key])
			return ""
		}
		for key, want := range map[string]string{
			"Service.User": c.user, "Service.ExecStart": c.exec, "Service.Restart": "on-failure",
			"Service.KillSignal": "SIGTERM", "Service.StandardOutput": "journal", "Service.StandardError": "journal",
			"Service.NoNewPrivileges": "yes", "Service.PrivateTmp": "yes", "Install.WantedBy": "multi-user.target",
			"Service.Type": "notify", "Service.NotifyAccess": "main", "Service.SystemCallErrorNumber": "EPERM",
		} {
			if got := one(key); got != want {
				t.Errorf("%s: %s=%q, want %q", c.unit, key, got, want)
			}
		}
		if ps := one("Service.ProtectSystem"); ps != "full" && ps != "strict" {
			t.Errorf("%s: ProtectSystem=%q", c.unit, ps)
		}
		stop, err := time.ParseDuration(one("Service.TimeoutStopSec"))
		if err != nil || stop <= grace {
			t.Errorf("%s: TimeoutStopSec %s (%v) must be above the default stop_grace %s", c.unit, stop, err, grace)
		}
		rw := strings.Join(k["Service.ReadWritePaths"], " ")
		for _, p := range c.rw {
			if !strings.Contains(" "+rw+" ", " "+p+" ") {
				t.Errorf("%s: ReadWritePaths %q lacks %s", c.unit, rw, p)
			}
		}
	}

	// systemd-analyze verify (systemd's own parser; PID 1 need not be systemd) on copies whose
	// binaries exist here.
	analyze := testenv.NeedCommand(t, "systemd-analyze")
	bin := binaries(t)
	dir := t.TempDir()
	var units []string
	for _, u := range []string{"pifrontend.service", "pitasks.service"} {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("/usr/bin/"), []byte(bin+"/")), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	cmd := exec.Command(analyze, append([]string{"verify"}, units...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, stderr.String())
	}
}

// fakeSystem makes a tiny system to copy into the NFS root and a Pi boot folder.
func fakeSystem(t *testing.T) (src, boot string) {
	t.Helper()
	testenv.NeedCommand(t, "ssh-keygen", "rsync")
	dir := t.TempDir()
	src, boot = filepath.Join(dir, "src"), filepath.Join(dir, "boot")
	for _, d := range []string{"etc/ssh", "root/.ssh", "usr/bin", "proc", "tmp"} {
		mustMkdir(t, filepath.Join(src, d))
	}
	mustMkdir(t, boot)
	mustWrite(t, filepath.Join(src, "etc/hostname"), "pimaster\n")
	mustWrite(t, filepath.Join(src, "usr/bin/tool"), "#!/bin/sh\n")
	mustWrite(t, filepath.Join(src, "root/.ssh/id_rsa"), "PRIVATE KEY OF THE PIMASTER\n")
	mustWrite(t, filepath.Join(src, "tmp/junk"), "junk\n")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(src, "etc/ssh/ssh_host_ed25519_key")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	for _, f := range []string{"config.txt", "start4.elf", "kernel8.img", "bootcode.bin", "cmdline.txt"} {
		mustWrite(t, filepath.Join(boot, f), f+"\n")
	}
	return src, boot
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

var installSteps = []string{"packages", "package", "forward", "ssh-key", "nfs-root", "exports", "firewall", "tftp", "database", "nginx", "config", "units"}

// hostDeb is the package built for this machine's architecture.
func hostDeb(t *testing.T) string {
	t.Helper()
	arch := map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "armhf"}[runtime.GOARCH]
	testenv.Need(t, arch != "", "a machine of an architecture the package is built for")
	return deb(debs(t), "1.0.0", arch)
}

var passwordRE = regexp.MustCompile(`mysql://pipi:[0-9a-f]{48}@`)

func TestInstallDryRun(t *testing.T) {
	pkg := hostDeb(t)
	src, boot := fakeSystem(t)
	root := t.TempDir()
	out, code := script(t, []string{"PISEDUCE_ROOT=" + root}, "install.sh", "--dry-run", "--nfs-source", src,
		"--boot-source", boot, "--deb", pkg, "--pimaster-ip", "10.10.0.2", "--nodes-network", "10.10.0.0/24", "--nodes-interface", "eth1")
	if code != 0 {
		t.Fatalf("install.sh --dry-run: exit %d\n%s", code, out)
	}
	for _, s := range installSteps {
		if !strings.Contains(out, "\n== "+s+":") {
			t.Errorf("the plan has no step %q", s)
		}
	}
	for _, want := range []string{
		"apt-get install -y -q --no-install-recommends dnsmasq nfs-kernel-server mariadb-server",
		"== package: " + pkg, "rsync -rlpc ", " " + root + "/\n",
		root + "/etc/sysctl.d/90-piseduce.conf", "net.ipv4.ip_forward = 1",
		"ssh-keygen -q -t ed25519", root + "/var/lib/piseduce/id_ed25519",
		"rsync -aHx --numeric-ids --delete --exclude=/nfs --exclude=/proc --exclude=/sys --exclude=/dev --exclude=/tmp --exclude=/run",
		"--exclude=/etc/seducepp.conf", "--exclude=/root/.ssh/id_\\*", src + "/ " + root + "/nfs/raspi/",
		root + "/nfs/raspi/etc/hostname (mode 644, root:root): nfspi",
		"ssh-keygen -q -t ed25519 -N '' -C root@nfspi -f " + root + "/nfs/raspi/etc/ssh/ssh_host_ed25519_key",
		"chown 65534:65534 " + root + "/nfs/raspi/etc/ssh/ssh_host_ed25519_key",
		"/pkg/netboot/nfs-init.sh " + root + "/nfs/raspi/usr/local/sbin/piseduce-nfs-init",
		root + "/nfs/raspi/root/.ssh/authorized_keys",
		"ln -sfn /dev/null " + root + "/nfs/raspi/etc/systemd/system/dnsmasq.service",
		"write " + root + "/etc/exports (mode 644, root:root): /nfs/raspi 10.10.0.0/24(ro,sync,no_subtree_check,root_squash), and no other line",
		root + "/etc/nfs.conf.d/piseduce.conf", "port = 20048",
		"exportfs -ra",
		"write " + root + "/etc/nftables.d/piseduce.nft (mode 644, root:root): table inet piseduce for eth1, 10.10.0.0/24",
		"append to " + root + `/etc/nftables.conf: include "/etc/nftables.d/piseduce.nft"`,
		"nft -f /etc/nftables.d/piseduce.nft",
		"--exclude=/bootcode.bin --exclude=/cmdline.txt " + boot + "/ " + root + "/tftpboot/rpiboot_uboot/",
		"mariadb <<SQL", "CREATE DATABASE IF NOT EXISTS `piseduce`", "'pipi'@'localhost' IDENTIFIED BY <the password>",
		"write " + root + "/etc/seducepp.conf (mode 640,", "mysql://pipi:<password>@localhost/piseduce",
		"systemctl enable pitasks pifrontend",
		"nginx libnginx-mod-stream", "write " + root + "/etc/nginx/conf.d/piseduce.conf (mode 644, root:root): # PiSeduce: the web nodes",
		"ln -sfn /dev/null " + root + "/nfs/raspi/etc/systemd/system/nginx.service",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan lacks %q", want)
		}
	}
	if passwordRE.MatchString(out) {
		t.Errorf("the plan prints the database password")
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("a dry run wrote into the target root: %v", ents)
	}
	if _, code := script(t, nil, "install.sh", "--dry-run", "--db-user", "pipi'; DROP DATABASE x; --"); code == 0 {
		t.Error("a database user name with quotes is accepted")
	}
	if _, code := script(t, nil, "install.sh", "--dry-run", "--only", "nosuchstep"); code == 0 {
		t.Error("an unknown step is accepted")
	}
	// Without the nodes' network the NFS root is never exported (to everyone, say), nor firewalled.
	for _, step := range []string{"exports", "firewall"} {
		if out, code := script(t, []string{"PISEDUCE_ROOT=" + root}, "install.sh", "--dry-run", "--only", step); code == 0 ||
			!strings.Contains(out, "the "+step+" step needs the nodes'") {
			t.Errorf("--only %s without the nodes' network: exit %d\n%s", step, code, out)
		}
	}
	for _, args := range [][]string{{"--nodes-network", "*"}, {"--nodes-network", "10.10.0.0"}, {"--nodes-interface", "eth0;x"},
		{"--nodes-may-reach", "0.0.0.0/0;"}} {
		if _, code := script(t, nil, "install.sh", append([]string{"--dry-run"}, args...)...); code == 0 {
			t.Errorf("install.sh %q accepted", args)
		}
	}
}

// TestInstallThrowawayRoot runs install.sh for real into a throwaway root, twice: everything
// but the steps that change the running system (printed and skipped) is done the first time, and
// the second run changes nothing.
func TestInstallThrowawayRoot(t *testing.T) {
	testenv.NeedRoot(t)
	pkg := hostDeb(t)
	src, boot := fakeSystem(t)
	root := t.TempDir()
	// An earlier install exported the NFS root read-write to everyone; another export is not ours.
	mustMkdir(t, filepath.Join(root, "etc"))
	mustWrite(t, filepath.Join(root, "etc/exports"), "/srv/other 192.168.1.0/24(ro)\n/nfs/raspi *(rw,sync,no_subtree_check,no_root_squash)\n")
	// The nginx package's own configuration (the packages step is skipped here).
	mustMkdir(t, filepath.Join(root, "etc/nginx"))
	nginxConf := "user www-data;\nevents {\n}\nhttp {\n\tinclude /etc/nginx/conf.d/*.conf;\n}\n"
	mustWrite(t, filepath.Join(root, "etc/nginx/nginx.conf"), nginxConf)
	run := func(args ...string) string {
		out, code := script(t, []string{"PISEDUCE_ROOT=" + root}, "install.sh", append([]string{"--skip", "packages", "--nfs-source", src,
			"--boot-source", boot, "--deb", pkg}, args...)...)
		if code != 0 {
			t.Fatalf("install.sh: exit %d\n%s", code, out)
		}
		return out
	}
	first := run("--pimaster-ip", "10.10.0.2", "--nodes-network", "10.10.0.0/24", "--nodes-interface", "eth1",
		"--public-address", "pimaster.example.org", "--http-domain", "nodes.example.org")
	for _, want := range []string{"+ rsync -aHx", "+ ssh-keygen -q -t ed25519 -N '' -C root@nfspi", "+ write " + root + "/etc/seducepp.conf",
		"- skipped (PISEDUCE_ROOT is not /): the maintainer scripts of piseduce 1.0.0-1",
		"- skipped (PISEDUCE_ROOT is not /): exportfs -ra", "- skipped (PISEDUCE_ROOT is not /): mariadb"} {
		if !strings.Contains(first, want) {
			t.Errorf("first run lacks %q:\n%s", want, first)
		}
	}
	second := run() // the nodes' network, interface and address now come from the configuration
	for _, l := range strings.Split(second, "\n") {
		if strings.HasPrefix(l, " + ") {
			t.Errorf("the second run changes something: %s", l)
		}
	}
	if passwordRE.MatchString(first + second) {
		t.Error("a run prints the database password")
	}

	// The configuration: the shipped one with the generated password, 0640, and it parses.
	confPath := filepath.Join(root, "etc/seducepp.conf")
	st, err := os.Stat(confPath)
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("config: %v mode %v", err, st.Mode())
	}
	cfg, err := config.Load(confPath)
	if err != nil {
		t.Fatal(err)
	}
	if !passwordRE.MatchString(cfg.DB.ConnectionURL.Value()) || cfg.Cluster.PimasterIP != "10.10.0.2" ||
		cfg.Cluster.NodesNetwork != "10.10.0.0/24" || cfg.Cluster.NodesInterface != "eth1" ||
		cfg.Cluster.SSHKey != "/var/lib/piseduce/id_ed25519" || cfg.Cluster.NFSHostKey != "/nfs/raspi/etc/ssh/ssh_host_ed25519_key.pub" {
		t.Errorf("config: url %t, cluster %+v", passwordRE.MatchString(cfg.DB.ConnectionURL.Value()), cfg.Cluster)
	}
	// nginx: the generated files included from the stream and http contexts, once each.
	if n := cfg.Nginx; n.StreamConf != "/etc/nginx/piseduce/stream.conf" || n.HTTPConf != "/etc/nginx/piseduce/http.conf" ||
		strings.Join(n.Reload, " ") != "/usr/sbin/nginx -s reload" || n.PublicAddress != "pimaster.example.org" || n.HTTPDomain != "nodes.example.org" {
		t.Errorf("config [nginx]: %+v", n)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/nginx/nginx.conf")); string(b) != nginxConf+
		"stream { include /etc/nginx/piseduce/stream.conf; } # PiSeduce: the nodes' SSH ports\n" {
		t.Errorf("nginx.conf:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/nginx/conf.d/piseduce.conf")); !strings.Contains(string(b), "\ninclude /etc/nginx/piseduce/http.conf;\n") {
		t.Errorf("conf.d/piseduce.conf: %q", b)
	}
	for _, f := range []string{"stream.conf", "http.conf"} {
		if _, err := os.Stat(filepath.Join(root, "etc/nginx/piseduce", f)); err != nil {
			t.Errorf("nginx's include: %v", err)
		}
	}
	shipped, err := config.Load("../seducepp.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Frontend, shipped.Frontend) || !reflect.DeepEqual(cfg.Tasks, shipped.Tasks) {
		t.Errorf("the installed config changed more than it should:\n%+v\n%+v", cfg.Frontend, shipped.Frontend)
	}

	// The NFS root: a copy without secrets, its own name and host keys, the pimaster's key.
	nfs := filepath.Join(root, "nfs/raspi")
	if b, _ := os.ReadFile(filepath.Join(nfs, "etc/hostname")); string(b) != "nfspi\n" {
		t.Errorf("NFS hostname %q", b)
	}
	for _, p := range []string{"usr/bin/tool", "proc", "sys", "dev", "run", "tmp", "etc/ssh/ssh_host_ed25519_key"} {
		if _, err := os.Stat(filepath.Join(nfs, p)); err != nil {
			t.Errorf("NFS root: %v", err)
		}
	}
	for _, p := range []string{"root/.ssh/id_rsa", "tmp/junk"} {
		if _, err := os.Stat(filepath.Join(nfs, p)); err == nil {
			t.Errorf("NFS root has %s", p)
		}
	}
	a, _ := os.ReadFile(filepath.Join(nfs, "etc/ssh/ssh_host_ed25519_key.pub"))
	b, _ := os.ReadFile(filepath.Join(src, "etc/ssh/ssh_host_ed25519_key.pub"))
	if len(a) == 0 || bytes.Equal(a, b) {
		t.Error("the NFS system does not have its own host key")
	}
	// Readable by the nodes' root, which is "nobody" on the export (root_squash).
	if st, err := os.Stat(filepath.Join(nfs, "etc/ssh/ssh_host_ed25519_key")); err != nil || st.Mode().Perm() != 0o400 ||
		st.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("NFS host key: %v %v", st.Mode(), err)
	}
	if ents, _ := filepath.Glob(filepath.Join(nfs, "etc/ssh/ssh_host_*")); len(ents) != 2 {
		t.Errorf("the NFS system has other host keys than its pinned one: %v", ents)
	}
	for _, d := range []string{"root", "root/.ssh"} {
		if st, err := os.Stat(filepath.Join(nfs, d)); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v (the squashed root must reach authorized_keys)", d, st.Mode(), err)
		}
	}
	// Its first init, the one NFSCmdline names.
	initScript, _ := os.ReadFile("../pkg/netboot/nfs-init.sh")
	if got, err := os.ReadFile(filepath.Join(nfs, "usr/local/sbin/piseduce-nfs-init")); err != nil || !bytes.Equal(got, initScript) {
		t.Errorf("the NFS root's first init: %v", err)
	}
	pub, _ := os.ReadFile(filepath.Join(root, "var/lib/piseduce/id_ed25519.pub"))
	ak, _ := os.ReadFile(filepath.Join(nfs, "root/.ssh/authorized_keys"))
	if len(pub) == 0 || !bytes.Contains(ak, bytes.TrimSpace(pub)) {
		t.Errorf("pitasks' key %q is not in the NFS root's authorized_keys %q", pub, ak)
	}
	if l, _ := os.Readlink(filepath.Join(nfs, "etc/systemd/system/dnsmasq.service")); l != "/dev/null" {
		t.Error("dnsmasq is not masked in the NFS system")
	}
	if key, err := os.Stat(filepath.Join(root, "var/lib/piseduce/id_ed25519")); err != nil || key.Mode().Perm() != 0o600 {
		t.Errorf("ssh key: %v", err)
	}

	// The tftp root: the boot files without bootcode.bin and cmdline.txt.
	tftp := filepath.Join(root, "tftpboot/rpiboot_uboot")
	for f, want := range map[string]bool{"config.txt": true, "start4.elf": true, "kernel8.img": true, "bootcode.bin": false, "cmdline.txt": false} {
		if _, err := os.Stat(filepath.Join(tftp, f)); (err == nil) != want {
			t.Errorf("tftp root: %s present=%t, want %t", f, err == nil, want)
		}
	}
	// Read-only, root squashed, to the nodes' network; the old line gone, the other export kept.
	if b, _ := os.ReadFile(filepath.Join(root, "etc/exports")); string(b) != "/srv/other 192.168.1.0/24(ro)\n/nfs/raspi 10.10.0.0/24(ro,sync,no_subtree_check,root_squash)\n" {
		t.Errorf("exports %q", b)
	}
	// The firewall parses (nft -c) where nft is installed.
	if nft, err := exec.LookPath("nft"); err == nil {
		if out, err := exec.Command(nft, "-c", "-f", filepath.Join(root, "etc/nftables.d/piseduce.nft")).CombinedOutput(); err != nil {
			t.Errorf("nft -c: %v\n%s", err, out)
		}
	}
	for _, f := range []string{"usr/bin/pitasks", "usr/bin/pifrontend", "lib/systemd/system/pitasks.service", "etc/sysctl.d/90-piseduce.conf"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Error(err)
		}
	}
	checkNFSSetup(t, root, filepath.Join(root, "usr/bin"))
}

// checkNFSSetup runs check.sh on the pimaster install.sh made in root: its NFS root, export
// and firewall pass; then, broken as an earlier install or an admin would leave them, each
// fault is flagged.
func checkNFSSetup(t *testing.T, root, bin string) {
	cmdline, err := netboot.NFSCmdline("10.10.0.2")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "tftpboot/rpiboot_uboot/cmdline.txt"), cmdline) // pitasks dnsmasq -cmdline
	env := []string{"PISEDUCE_ROOT=" + root}
	args := []string{"--config", filepath.Join(root, "etc/seducepp.conf"), "--bin-dir", bin}
	out, _ := script(t, env, "check.sh", args...)
	for _, want := range []string{
		"ok: own SSH host key, pinned by nfs_host_key", "ok: first init /usr/local/sbin/piseduce-nfs-init",
		"ok: " + root + "/etc/exports: /nfs/raspi is exported read-only, root squashed, to 10.10.0.0/24",
		"ok: " + root + "/etc/nftables.d/piseduce.nft",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check.sh on the installed pimaster lacks %q", want)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "PROBLEM") && (strings.Contains(l, "/nfs/raspi") || strings.Contains(l, "nfs_") || strings.Contains(l, "firewall")) {
			t.Errorf("check.sh on the installed pimaster: %s", l)
		}
	}

	mustWrite(t, filepath.Join(root, "etc/exports"), "/nfs/raspi *(rw,sync,no_subtree_check,no_root_squash) 10.9.0.0/24(ro)\n")
	mustWrite(t, filepath.Join(root, "tftpboot/rpiboot_uboot/cmdline.txt"), strings.Replace(cmdline, " ro ", " rw ", 1))
	os.Remove(filepath.Join(root, "nfs/raspi/usr/local/sbin/piseduce-nfs-init"))
	os.Remove(filepath.Join(root, "etc/nftables.d/piseduce.nft"))
	_, pub, err := remote.NewHostKey("stranger")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "nfs/raspi/etc/ssh/ssh_host_ed25519_key.pub"), remote.AuthorizedKey(pub)+"\n")
	out, code := script(t, env, "check.sh", args...)
	if code == 0 {
		t.Errorf("check.sh passes a broken set-up:\n%s", out)
	}
	for _, want := range []string{
		"PROBLEM: " + root + "/etc/exports: /nfs/raspi is exported to everyone",
		"PROBLEM: " + root + "/etc/exports: /nfs/raspi is exported read-write to *",
		"PROBLEM: " + root + "/etc/exports: /nfs/raspi is exported with no_root_squash to *",
		"PROBLEM: " + root + "/etc/exports: /nfs/raspi is exported to 10.9.0.0/24, not to the nodes' network 10.10.0.0/24 only",
		"cmdline.txt does not boot the NFS root read-only (ro) with its first init",
		"piseduce-nfs-init is missing: the nodes would get no writable layer",
		"PROBLEM: [cluster] nfs_host_key /nfs/raspi/etc/ssh/ssh_host_ed25519_key.pub is not the key the NFS system serves",
		"piseduce.nft is missing (admin/install.sh --only firewall)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check.sh on a broken set-up lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log("\n" + out)
	}
}

func deadUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// lab is a SQLite database with switch sw1 (4 nodes, master port 5) served by a real snmpd on
// loopback, and the config file that names it.
type lab struct {
	conf string
	psw  *poeswitch.Switch
}

func newLab(t *testing.T, deadSwitch bool, extraConf string) *lab {
	t.Helper()
	testenv.NeedCommand(t, "snmpd")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	psw, err := poeswitch.Start(ctx, poeswitch.Options{Dir: t.TempDir(), Ports: 5, Community: "labsecret", Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = psw.Stop() })
	url := storetest.URL(t, "sqlite")
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	c := storetest.Seed(t, st, 4)
	sw := c.Switch
	sw.IP, sw.SNMPPort, sw.Community = psw.Host(), psw.Port(), "labsecret"
	if err := st.UpdateSwitch(ctx, &sw); err != nil {
		t.Fatal(err)
	}
	if deadSwitch {
		if err := st.CreateSwitch(ctx, &store.Switch{Name: "dead", IP: "127.0.0.1", SNMPPort: deadUDPPort(t), SNMPVersion: "2c",
			Community: "private", PortCount: 2, OID: poeswitch.AdminOID}); err != nil {
			t.Fatal(err)
		}
	}
	c.Deploy(t, st, 1)
	st.Close()
	conf := filepath.Join(t.TempDir(), "seducepp.conf")
	mustWrite(t, conf, "[db]\nconnection_url = "+url+"\n"+extraConf)
	if err := os.Chmod(conf, 0o640); err != nil {
		t.Fatal(err)
	}
	return &lab{conf: conf, psw: psw}
}

func TestCheckBrokenSetup(t *testing.T) {
	bin := binaries(t)
	port := testenv.FreePort(t)
	l := newLab(t, true, fmt.Sprintf("[frontend]\nport = %d\n[cluster]\ntftp_root = /tftpboot\nnfs_boot_dir = /tftpboot/rpiboot_uboot\n", port))
	root := t.TempDir() // an empty machine: nothing installed
	env := []string{"PISEDUCE_ROOT=" + root}

	out, code := script(t, env, "check.sh", "--config", l.conf, "--bin-dir", bin, "--dry-run")
	if code != 0 || !strings.Contains(out, bin+"/pitasks -config "+l.conf+" switches") || !strings.Contains(out, "dnsmasq --test") {
		t.Errorf("check.sh --dry-run: exit %d\n%s", code, out)
	}

	out, code = script(t, env, "check.sh", "--config", l.conf, "--bin-dir", bin)
	t.Log("\n" + out)
	problems := strings.Count(out, "PROBLEM:")
	if code == 0 || code != min(problems, 100) {
		t.Errorf("check.sh: exit %d with %d PROBLEM lines", code, problems)
	}
	for _, want := range []string{
		"ok: pitasks check: " + l.conf + ": configuration valid, database sqlite reachable",
		"PROBLEM: pitasks is not running", "PROBLEM: pifrontend is not running",
		fmt.Sprintf("PROBLEM: nothing listens on TCP port %d", port),
		"PROBLEM: the state folder " + root + "/var/lib/piseduce is missing",
		"PROBLEM: tftp_root " + root + "/tftpboot is missing",
		"PROBLEM: the NFS root " + root + "/nfs/raspi is missing",
		"PROBLEM: " + root + "/etc/exports has no line for /nfs/raspi",
		"PROBLEM: no dnsmasq configuration has tftp-root=/tftpboot",
		"sw1  127.0.0.1:", "answers: ", " 1 ", "node-1",
		"dead  127.0.0.1:", "PROBLEM: power: status of all ports: no answer",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check.sh output lacks %q", want)
		}
	}
	if strings.Contains(out, "labsecret") {
		t.Error("check.sh prints a switch community")
	}

	// A config readable by everyone and a database that is not there.
	bad := filepath.Join(t.TempDir(), "bad.conf")
	mustWrite(t, bad, "[db]\nconnection_url = mysql://nobody:x@127.0.0.1:1/none\n")
	if err := os.Chmod(bad, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = script(t, env, "check.sh", "--config", bad, "--bin-dir", bin)
	if code == 0 || !strings.Contains(out, "has mode 644: others may read the database password") ||
		!strings.Contains(out, "PROBLEM: pitasks check fails") {
		t.Errorf("check.sh on a bad config: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "nobody:x@") {
		t.Error("check.sh prints the database password")
	}
}

func TestPortAndNodeScripts(t *testing.T) {
	bin := binaries(t)
	l := newLab(t, false, "")
	run := func(name string, args ...string) (string, int) {
		return script(t, nil, name, append([]string{"--config", l.conf, "--bin-dir", bin}, args...)...)
	}
	isOn := func(p int) bool {
		on, err := l.psw.PortOn(p)
		if err != nil {
			t.Fatal(err)
		}
		return on
	}

	if out, code := run("port.sh", "sw1", "2", "on"); code != 0 || !strings.Contains(out, "sw1 port 2: on") || !isOn(2) {
		t.Fatalf("port.sh on: exit %d\n%s", code, out)
	}
	if out, code := run("port.sh", "sw1", "2", "status"); code != 0 || !strings.Contains(out, "sw1 port 2: on") {
		t.Fatalf("port.sh status: exit %d\n%s", code, out)
	}
	if out, code := run("port.sh", "sw1", "2", "off"); code != 0 || !strings.Contains(out, "sw1 port 2: off") || isOn(2) {
		t.Fatalf("port.sh off: exit %d\n%s", code, out)
	}
	if err := l.psw.SetPort(5, true); err != nil {
		t.Fatal(err)
	}
	if out, code := run("port.sh", "sw1", "5", "off"); code == 0 || !strings.Contains(out, "refusing to switch the master port") || !isOn(5) {
		t.Fatalf("port.sh on the master port: exit %d, port on %t\n%s", code, isOn(5), out)
	}
	if out, code := run("port.sh", "--dry-run", "sw1", "3", "cycle"); code != 0 ||
		strings.TrimSpace(out) != "+ "+bin+"/pitasks -config "+l.conf+" port sw1 3 cycle" {
		t.Fatalf("port.sh --dry-run: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"sw1", "2"}, {"sw1", "2", "reboot"}, {"sw1", "two", "on"}, {"sw;1", "2", "on"}} {
		if out, code := run("port.sh", args...); code != 2 {
			t.Errorf("port.sh %q: exit %d, want 2\n%s", args, code, out)
		}
	}

	out, code := run("node-state.sh")
	if code != 0 || !strings.Contains(out, "NODE") || !strings.Contains(out, "node-4") || !strings.Contains(out, "sw1/1") {
		t.Fatalf("node-state.sh: exit %d\n%s", code, out)
	}
	out, code = run("node-state.sh", "node-1")
	if code != 0 || !strings.Contains(out, "node node-1: switch sw1 port 1") || !strings.Contains(out, "process deploy, state") {
		t.Fatalf("node-state.sh node-1: exit %d\n%s", code, out)
	}
	if out, code := run("node-state.sh", "node-9"); code == 0 || !strings.Contains(out, `no node named "node-9"`) {
		t.Fatalf("node-state.sh node-9: exit %d\n%s", code, out)
	}
	if _, code := run("node-state.sh", "a", "b"); code != 2 {
		t.Errorf("node-state.sh with two nodes: exit %d", code)
	}
}

// TestCheckSeesItsOwnDaemons: without systemd, check.sh counts a pitasks or pifrontend as
// running only when it was started with the configuration being checked (-config, resolved
// from its working directory): another one on the machine, another site's or a test's, is
// not this site's.
func TestCheckSeesItsOwnDaemons(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "seducepp.conf")
	mustWrite(t, conf, "[db]\nconnection_url = sqlite://"+filepath.Join(dir, "piseduce.db")+"\n")
	// Stand-ins named like the daemons (a script's process takes its file's name); they only wait.
	fake := t.TempDir()
	start := func(name, wd string, args ...string) {
		p := filepath.Join(fake, name)
		mustWrite(t, p, "#!/bin/sh\nsleep 600\n")
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(p, args...)
		cmd.Dir = wd
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	}
	start("pitasks", dir, "-config", filepath.Join(t.TempDir(), "other.conf"), "run")
	start("pifrontend", dir, "-config=seducepp.conf")
	out, _ := script(t, []string{"PISEDUCE_ROOT=" + t.TempDir()}, "check.sh", "--config", conf, "--bin-dir", bin)
	for _, want := range []string{"PROBLEM: pitasks is not running", "ok: pifrontend is running (pifrontend)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check.sh output lacks %q:\n%s", want, out)
		}
	}
}
