package lab_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/labtest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

func need(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, append([]string{"ssh", "snmpset"}, lab.Commands...)...)
}

func labDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/var/tmp", "pilab-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// timings collects the table printed at the end.
type timings struct {
	mu   sync.Mutex
	rows map[string]map[string]time.Duration
	cols []string
}

func (tm *timings) add(node, phase string, d time.Duration) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if tm.rows == nil {
		tm.rows = map[string]map[string]time.Duration{}
	}
	if tm.rows[node] == nil {
		tm.rows[node] = map[string]time.Duration{}
	}
	tm.rows[node][phase] = d
	for _, c := range tm.cols {
		if c == phase {
			return
		}
	}
	tm.cols = append(tm.cols, phase)
}

func (tm *timings) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s", "node")
	for _, c := range tm.cols {
		fmt.Fprintf(&b, " %13s", c)
	}
	b.WriteString("\n")
	var names []string
	for n := range tm.rows {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%-8s", n)
		for _, c := range tm.cols {
			if d, ok := tm.rows[n][c]; ok {
				fmt.Fprintf(&b, " %12.2fs", d.Seconds())
			} else {
				fmt.Fprintf(&b, " %13s", "-")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

type driver struct {
	t *testing.T
	d *lab.Desc
}

// power sets switch ports with snmpset, as a deployer would.
func (dr *driver) power(on bool, ports ...int) {
	dr.t.Helper()
	v := "2"
	if on {
		v = "1"
	}
	args := []string{"-v2c", "-c", dr.d.Switch.Community, dr.d.Switch.Addr}
	for _, p := range ports {
		args = append(args, fmt.Sprintf("%s.%d", dr.d.Switch.OID, dr.d.Switch.Offset+p), "i", v)
	}
	if out, err := exec.Command("snmpset", args...).CombinedOutput(); err != nil {
		dr.t.Fatalf("snmpset: %v: %s", err, out)
	}
}

// ssh runs a command on a node, checking its host key against the lab's known_hosts.
func (dr *driver) ssh(user, key string, n *lab.NodeDesc, cmd string, stdin []byte) (string, error) {
	c := exec.Command("ssh", "-i", key, "-o", "UserKnownHostsFile="+dr.d.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=2", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
		user+"@"+n.IP, cmd)
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ssh %s@%s %q: %v: %s", user, n.Name, cmd, err, errb.String())
	}
	return out.String(), nil
}

// waitSSH waits until cmd succeeds as root on n and its output satisfies ok.
func (dr *driver) waitSSH(n *lab.NodeDesc, cmd string, ok func(string) bool, max time.Duration) (string, error) {
	deadline := time.Now().Add(max)
	var last error
	for time.Now().Before(deadline) {
		out, err := dr.ssh("root", dr.d.PimasterKey, n, cmd, nil)
		if err == nil && ok(out) {
			return out, nil
		}
		if err == nil {
			last = fmt.Errorf("unexpected output %q", out)
		} else {
			last = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", fmt.Errorf("%s: not ready after %v: %v", n.Name, max, last)
}

func countEvents(n *lab.NodeDesc, s string) int {
	b, _ := os.ReadFile(n.EventsLog)
	return strings.Count(string(b), s)
}

func TestLabDeploysThreeNodes(t *testing.T) {
	need(t)
	dir := labDir(t)
	tm := &timings{}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), labtest.Wait(t)) // may wait for another lab (one per machine)
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{Dir: dir, Nodes: 3, BootDelay: 300 * time.Millisecond, RetryDelay: time.Second,
		CardSize: 256 << 20, Specs: []lab.NodeSpec{{}, {}, {Model: lab.ModelPi4}}, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	downDone := false
	defer func() {
		if !downDone {
			l.Down()
		}
	}()
	d, err := lab.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tm.add("all", "lab up", time.Since(start))
	dr := &driver{t: t, d: d}
	userKey := filepath.Join(dir, "user_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", userKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	userPub, _ := os.ReadFile(userKey + ".pub")
	pimasterPub, _ := os.ReadFile(d.PimasterPubKey)
	img, err := os.ReadFile(d.Image.Img)
	if err != nil {
		t.Fatal(err)
	}

	// 1. Power on with empty TFTP folders: the boot fails and is retried.
	t0 := time.Now()
	dr.power(true, 1, 2, 3)
	for _, n := range d.Nodes {
		deadline := time.Now().Add(2 * time.Minute) // generous: a busy machine boots slowly
		for countEvents(&n, "boot failed") < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: boot not failing and retrying with an empty TFTP folder", n.Name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	tm.add("all", "2 failed boots", time.Since(t0))

	// 2..6 per node, all nodes at once.
	var wg sync.WaitGroup
	errs := make(chan error, len(d.Nodes))
	for i := range d.Nodes {
		n := &d.Nodes[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := deployNode(dr, tm, n, img, pimasterPub, userPub, userKey); err != nil {
				errs <- fmt.Errorf("%s: %w", n.Name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t0 = time.Now()
	if err := l.Down(); err != nil {
		t.Error(err)
	}
	downDone = true
	tm.add("all", "lab down", time.Since(t0))
	checkClean(t, dir)
	tm.add("all", "total", time.Since(start))
	t.Logf("timing table (seconds):\n%s", tm)
	fmt.Printf("virtual Pi lab timing table:\n%s", tm)
}

func deployNode(dr *driver, tm *timings, n *lab.NodeDesc, img, pimasterPub, userPub []byte, userKey string) error {
	d := dr.d
	// NFS boot files in place: the node boots the NFS system.
	t0 := time.Now()
	if err := exec.Command("cp", "-r", d.NFSBootDir, n.TFTPDir).Run(); err != nil {
		return err
	}
	if _, err := dr.waitSSH(n, "cat /etc/hostname", func(s string) bool { return strings.TrimSpace(s) == "nfspi" }, 2*time.Minute); err != nil {
		return err
	}
	tm.add(n.Name, "ssh nfspi", time.Since(t0))

	// Stream the image onto the card.
	t0 = time.Now()
	if out, err := dr.ssh("root", d.PimasterKey, n, "dd of=/dev/mmcblk0 bs=4M iflag=fullblock conv=fsync 2>&1", img); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	tm.add(n.Name, "copy image", time.Since(t0))

	// Configure the card: root partition mounted (ext4), boot partition with mtools (no FAT in this kernel).
	t0 = time.Now()
	host := n.Name + "-lab"
	script := fmt.Sprintf(`set -e
partprobe /dev/mmcblk0
test -b /dev/mmcblk0p2
mkdir -p /mnt/fs
mount /dev/mmcblk0p2 /mnt/fs
echo %s > /mnt/fs/etc/hostname
mkdir -p /mnt/fs/root/.ssh /mnt/fs/home/pi/.ssh
echo '%s' > /mnt/fs/root/.ssh/authorized_keys
echo '%s' > /mnt/fs/home/pi/.ssh/authorized_keys
chmod 700 /mnt/fs/root/.ssh /mnt/fs/home/pi/.ssh
chown -R 1000:1000 /mnt/fs/home/pi/.ssh
umount /mnt/fs
export MTOOLS_SKIP_CHECK=1
mdel -i /dev/mmcblk0p1 ::bootcode.bin 2>/dev/null
mtype -i /dev/mmcblk0p1 ::cmdline.txt 2>/dev/null | sed 's/ init=[^ ]*//' > /tmp/cmdline.txt
mcopy -o -i /dev/mmcblk0p1 /tmp/cmdline.txt ::cmdline.txt 2>/dev/null
mcopy -o -i /dev/mmcblk0p1 /dev/null ::ssh 2>/dev/null
rm -rf /tmp/boot && mkdir /tmp/boot
mcopy -s -n -i /dev/mmcblk0p1 '::/*' /tmp/boot/ 2>/dev/null
`, host, strings.TrimSpace(string(pimasterPub)), strings.TrimSpace(string(userPub)))
	if out, err := dr.ssh("root", d.PimasterKey, n, script, nil); err != nil {
		return fmt.Errorf("configure card: %v: %s", err, out)
	}
	// Copy the card's boot files into the node's TFTP folder.
	tarball, err := dr.ssh("root", d.PimasterKey, n, "tar -C /tmp/boot -cf - .", nil)
	if err != nil {
		return err
	}
	os.RemoveAll(n.TFTPDir)
	os.MkdirAll(n.TFTPDir, 0o755)
	tar := exec.Command("tar", "-C", n.TFTPDir, "-xf", "-")
	tar.Stdin = strings.NewReader(tarball)
	if out, err := tar.CombinedOutput(); err != nil {
		return fmt.Errorf("untar boot files: %v %s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(n.TFTPDir, "cmdline.txt")); err != nil || strings.Contains(string(b), "init=") ||
		!strings.Contains(string(b), "root=/dev/mmcblk0p2") {
		return fmt.Errorf("boot files: cmdline.txt %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(n.TFTPDir, "bootcode.bin")); err == nil {
		return fmt.Errorf("bootcode.bin still on the card")
	}
	tm.add(n.Name, "configure", time.Since(t0))

	// Reboot: the node comes back from its card.
	t0 = time.Now()
	dr.ssh("root", d.PimasterKey, n, "reboot", nil)
	if _, err := dr.waitSSH(n, "hostname; cat /etc/hostname", func(s string) bool {
		return s == host+"\n"+host+"\n"
	}, 2*time.Minute); err != nil {
		return err
	}
	tm.add(n.Name, "reboot->card", time.Since(t0))
	if out, err := dr.ssh("pi", userKey, n, "whoami", nil); err != nil || strings.TrimSpace(out) != "pi" {
		return fmt.Errorf("user key: %q %v", out, err)
	}
	if _, err := dr.ssh("root", d.PimasterKey, n, "echo pi:s3cret-"+n.Serial+" | chpasswd", nil); err != nil {
		return err
	}
	proof := "written by the deployer on " + n.Name
	if _, err := dr.ssh("pi", userKey, n, "echo '"+proof+"' > /home/pi/proof.txt", nil); err != nil {
		return err
	}
	shadow, err := dr.ssh("root", d.PimasterKey, n, "grep ^pi: /etc/shadow", nil)
	if err != nil || !strings.HasPrefix(shadow, "pi:$") || strings.Contains(shadow, "pi:*") {
		return fmt.Errorf("shadow %q %v", shadow, err)
	}

	// Power cycle through the switch: what was written is still there.
	t0 = time.Now()
	dr.power(false, n.Port)
	if _, err := waitUnreachable(n, 15*time.Second); err != nil {
		return err
	}
	dr.power(true, n.Port)
	if _, err := dr.waitSSH(n, "cat /home/pi/proof.txt; grep ^pi: /etc/shadow; hostname", func(s string) bool {
		return s == proof+"\n"+shadow+host+"\n"
	}, 2*time.Minute); err != nil {
		return fmt.Errorf("after power cycle: %w", err)
	}
	tm.add(n.Name, "power cycle", time.Since(t0))

	// Port off: unreachable at once.
	t0 = time.Now()
	dr.power(false, n.Port)
	if _, err := waitUnreachable(n, 15*time.Second); err != nil {
		return err
	}
	tm.add(n.Name, "off->unreach", time.Since(t0))

	// The card file holds the node's writes (root partition read with debugfs at its offset).
	// The node's file system is released (its journal written back) when the last of its
	// processes is gone, which a busy host may take a while to finish after the port is off.
	fsImg := fmt.Sprintf("%s?offset=%d", n.Card, d.Image.SectorStart*512)
	var got []byte
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		got, err = exec.Command("debugfs", "-R", "cat /home/pi/proof.txt", fsImg).Output()
		if err == nil && string(got) == proof+"\n" || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || string(got) != proof+"\n" {
		return fmt.Errorf("proof.txt on the card: %q %v", got, err)
	}
	got, err = exec.Command("debugfs", "-R", "cat /etc/shadow", fsImg).Output()
	if err != nil || !strings.Contains(string(got), shadow) {
		return fmt.Errorf("password change not on the card: %q %v", got, err)
	}
	got, err = exec.Command("debugfs", "-R", "cat /etc/hostname", fsImg).Output()
	if err != nil || string(got) != host+"\n" {
		return fmt.Errorf("hostname on the card: %q %v", got, err)
	}
	return nil
}

// waitUnreachable waits until a TCP connection to the node's sshd fails (200 ms timeout each).
func waitUnreachable(n *lab.NodeDesc, max time.Duration) (time.Duration, error) {
	t0 := time.Now()
	for time.Since(t0) < max {
		c, err := net.DialTimeout("tcp", n.IP+":22", 200*time.Millisecond)
		if err != nil {
			return time.Since(t0), nil
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s still reachable %v after its port was turned off", n.Name, max)
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// checkClean fails t if anything of the lab in dir is left: namespaces, loop devices over its
// cards, loop partition devices, processes.
func checkClean(t *testing.T, dir string) {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), lab.NSPrefix) {
		t.Errorf("namespaces left: %s", out)
	}
	if _, err := os.Stat("/sys/class/net/" + lab.Bridge); err == nil {
		t.Errorf("bridge %s left", lab.Bridge)
	}
	out, _ = exec.Command("losetup", "-l", "-n", "-O", "NAME,BACK-FILE").Output()
	if strings.Contains(string(out), dir) {
		t.Errorf("loop devices left: %s", out)
	}
	if parts, _ := filepath.Glob("/sys/block/loop*/loop*p*"); len(parts) > 0 {
		t.Errorf("loop partition devices left: %v", parts)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), dir) {
			t.Errorf("process left: %s %q", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	route, _ := exec.Command("ip", "route", "show", lab.Subnet).Output()
	if !strings.Contains(string(route), "unreachable") {
		t.Errorf("safety route missing: %q", route)
	}
}

const childEnv = "PILAB_TEST_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		childLab(dir)
	}
	os.Exit(m.Run())
}

// childLab is the lab process that TestDownAfterSIGKILL kills: it never returns.
func childLab(dir string) {
	l, err := lab.Up(context.Background(), lab.Options{Dir: dir, Nodes: 2, BootDelay: 100 * time.Millisecond, CardSize: 128 << 20})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	d := l.Desc
	// node-1 boots its card (image written straight onto the card file, boot files to TFTP).
	n := d.Nodes[0]
	if out, err := exec.Command("dd", "if="+d.Image.Img, "of="+n.Card, "bs=4M", "conv=notrunc,fsync").CombinedOutput(); err != nil {
		fmt.Println(err, string(out))
		os.Exit(1)
	}
	os.MkdirAll(n.TFTPDir, 0o755)
	os.WriteFile(filepath.Join(n.TFTPDir, "cmdline.txt"), []byte(lab.CardCmdline+"\n"), 0o644)
	os.WriteFile(filepath.Join(n.TFTPDir, "kernel8.img"), []byte("k\n"), 0o644)
	l.Switch().SetPort(1, true)
	l.Switch().SetPort(2, true)
	os.WriteFile(filepath.Join(dir, "child-ready"), nil, 0o644)
	select {}
}

func TestDownAfterSIGKILL(t *testing.T) {
	need(t)
	dir := labDir(t)
	c := exec.Command(os.Args[0])
	c.Env = append(os.Environ(), childEnv+"="+dir)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(4 * time.Minute) // the child may wait for another lab (one per machine)
	n1 := filepath.Join(dir, "nodes", "node-1", "state")
	for {
		st, _ := os.ReadFile(n1)
		if strings.TrimSpace(string(st)) == "card" {
			break
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			c.Wait()
			lab.DownDir(dir)
			t.Fatalf("child lab did not boot node-1 from its card: %s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	t0 := time.Now()
	if err := lab.DownDir(dir); err != nil {
		t.Error(err)
	}
	if err := lab.DownDir(dir); err != nil { // idempotent
		t.Error(err)
	}
	t.Logf("down after SIGKILL: %v", time.Since(t0))
	checkClean(t, dir)
}

// TestNFSRootIsReadOnlyToNodes: root on a node running the NFS system tries to change what the
// next node boots — writes into the NFS root, remounts it read-write, replaces a program, the
// hostname — and the other node, and its own next boot, see the pristine system; the host's
// files are untouched. What it changed in its own root lived in its RAM only.
func TestNFSRootIsReadOnlyToNodes(t *testing.T) {
	need(t)
	dir := labDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), labtest.Wait(t)) // may wait for another lab
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{Dir: dir, Nodes: 2, BootDelay: 200 * time.Millisecond, RetryDelay: time.Second,
		CardSize: 64 << 20, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Down()
	d := l.Desc
	dr := &driver{t: t, d: d}
	a, b := &d.Nodes[0], &d.Nodes[1]
	hostDD, err := exec.Command("sha256sum", "/usr/bin/dd").Output()
	if err != nil {
		t.Fatal(err)
	}
	pristine := func(n *lab.NodeDesc) {
		t.Helper()
		const check = "cat /etc/hostname; sha256sum /usr/bin/dd; ls /usr/bin/pilab-evil /pilab-evil /media/nfsroot/usr/bin/pilab-evil 2>&1 | wc -l; ls -A /root"
		want := "nfspi\n" + string(hostDD) + "3\n.profile\n.ssh\n"
		if _, err := dr.waitSSH(n, check, func(s string) bool { return s == want }, time.Minute); err != nil {
			out, _ := dr.ssh("root", d.PimasterKey, n, check, nil)
			t.Fatalf("%s does not boot the pristine NFS system: %v\n%s", n.Name, err, out)
		}
	}
	bootNFS := func(n *lab.NodeDesc) {
		t.Helper()
		if out, err := exec.Command("cp", "-r", d.NFSBootDir, n.TFTPDir).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		dr.power(true, n.Port)
		pristine(n)
	}
	bootNFS(a)
	layout, err := dr.ssh("root", d.PimasterKey, a, "findmnt -n -o FSTYPE,OPTIONS /; findmnt -n -o FSTYPE,OPTIONS /media/nfsroot; findmnt -n -o FSTYPE /media/nfsroot/mnt", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node-1's mounts:\n%s", layout)
	if f := strings.Split(layout, "\n"); len(f) < 3 || !strings.HasPrefix(f[0], "overlay rw,") || !strings.Contains(f[0], "upperdir=/mnt/upper") ||
		!strings.HasPrefix(f[1], "overlay ro,") || f[2] != "tmpfs" {
		t.Fatalf("the NFS system is not a RAM overlay over the read-only NFS root:\n%s", layout)
	}

	// The tenant's attempts, each reported done or refused.
	attack := `try() { if "$@" 2>/dev/null; then echo "$*: done"; else echo "$*: refused"; fi; }
mount -o remount,rw /media/nfsroot 2>/dev/null
mount -o remount,bind,rw /media/nfsroot 2>/dev/null
try sh -c 'echo evil > /media/nfsroot/usr/bin/pilab-evil'
try sh -c 'echo evil > /media/nfsroot/etc/hostname'
try cp /bin/true /media/nfsroot/usr/bin/dd
try cp /bin/true /usr/bin/dd
try sh -c 'echo evil > /etc/hostname'
try sh -c 'echo evil > /usr/bin/pilab-evil'
try sh -c 'echo evil > /pilab-evil'
cmp -s /bin/true /usr/bin/dd && echo "its dd is true"
`
	out, err := dr.ssh("root", d.PimasterKey, a, attack, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("root on node-1:\n%s", out)
	want := `sh -c echo evil > /media/nfsroot/usr/bin/pilab-evil: refused
sh -c echo evil > /media/nfsroot/etc/hostname: refused
cp /bin/true /media/nfsroot/usr/bin/dd: refused
cp /bin/true /usr/bin/dd: done
sh -c echo evil > /etc/hostname: done
sh -c echo evil > /usr/bin/pilab-evil: done
sh -c echo evil > /pilab-evil: done
its dd is true
`
	if out != want {
		t.Fatalf("root on node-1:\n%s\nwant:\n%s", out, want)
	}

	// The other node, booted after, and node-1's own next boot see none of it.
	bootNFS(b)
	dr.power(false, a.Port)
	if _, err := waitUnreachable(a, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	dr.power(true, a.Port)
	pristine(a)
	if got, _ := exec.Command("sha256sum", "/usr/bin/dd").Output(); !bytes.Equal(got, hostDD) {
		t.Errorf("the host's dd changed: %s", got)
	}
	if _, err := os.Stat("/usr/bin/pilab-evil"); err == nil {
		os.Remove("/usr/bin/pilab-evil")
		t.Error("a node wrote into the host's /usr/bin")
	}
	if got, _ := os.ReadFile(filepath.Join(d.NFSFiles, "etc/hostname")); string(got) != "nfspi\n" {
		t.Errorf("the NFS system's hostname file is now %q", got)
	}
}
