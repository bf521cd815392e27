package lab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
)

// cardText reads a file of the ext4 root of a (powered off) node's card with debugfs.
func cardText(t *testing.T, n *lab.NodeDesc, start int, path string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "cat "+path, fmt.Sprintf("%s?offset=%d", n.Card, start*512)).Output()
	if err != nil {
		t.Fatalf("debugfs %s on %s: %v", path, n.Name, err)
	}
	return string(out)
}

func bootText(t *testing.T, n *lab.NodeDesc, name string) (string, error) {
	c := exec.Command("mtype", "-i", fmt.Sprintf("%s@@%d", n.Card, lab.ImageBootStart*512), "::"+name)
	c.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := c.Output()
	return string(out), err
}

// TestFamilyImagesFirstBoot boots the family images straight from their cards (Pi 3B+ nodes:
// bootcode.bin on the card) and checks that their first boot does what the real systems'
// does: Raspberry Pi OS's firstboot (resize to the card's end, new host keys, new disk
// identifier, init= gone, one reboot) and userconf.txt; cloud-init's defaults with Ubuntu's
// seed (the default user made, its password set and expired, host keys of three types made,
// once per instance).
func TestFamilyImagesFirstBoot(t *testing.T) {
	need(t)
	dir := labDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute) // may wait for another lab
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{Dir: dir, Nodes: 2, BootDelay: 300 * time.Millisecond, RetryDelay: time.Second,
		CardSize: 256 << 20, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Down()
	d := l.Desc
	rpi, err := lab.BuildFamilyImage(dir+"/images", lab.ImageRaspiOS)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := lab.BuildFamilyImage(dir+"/images", lab.ImageCloudInit)
	if err != nil {
		t.Fatal(err)
	}
	nr, nc := &d.Nodes[0], &d.Nodes[1]
	for i, im := range []*lab.Image{rpi, ci} {
		n := &d.Nodes[i]
		if out, err := exec.Command("dd", "if="+im.Img, "of="+n.Card, "bs=4M", "conv=notrunc,fsync").CombinedOutput(); err != nil {
			t.Fatalf("dd: %v %s", err, out)
		}
	}
	// userconf.txt renames pi to bob, with this hash.
	hash, _ := exec.Command("openssl", "passwd", "-6", "-salt", "pilabsalt", "bobpw").Output()
	uc := dir + "/userconf.txt"
	os.WriteFile(uc, []byte("bob:"+strings.TrimSpace(string(hash))+"\n"), 0o600)
	mc := exec.Command("mcopy", "-i", fmt.Sprintf("%s@@%d", nr.Card, lab.ImageBootStart*512), uc, "::userconf.txt")
	mc.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := mc.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v %s", err, out)
	}
	l.Switch().SetPort(nr.Port, true)
	l.Switch().SetPort(nc.Port, true)
	// Raspberry Pi OS: firstboot, its reboot, then the system; cloud-init: init, sshd, final.
	deadline := time.Now().Add(4 * time.Minute)
	for countEvents(nr, "booted from card") < 2 || !strings.Contains(readFile(nc.Dir+"/console.log"), "cloud-init: boot finished") ||
		!strings.Contains(readFile(nr.Dir+"/console.log"), "userconf: user bob configured") {
		if time.Now().After(deadline) {
			t.Fatalf("first boots not done:\n%s\n%s\n%s\n%s", readFile(nr.EventsLog), readFile(nr.Dir+"/console.log"),
				readFile(nc.EventsLog), readFile(nc.Dir+"/console.log"))
		}
		time.Sleep(300 * time.Millisecond)
	}
	l.Switch().SetPort(nr.Port, false)
	l.Switch().SetPort(nc.Port, false)
	for _, n := range []*lab.NodeDesc{nr, nc} {
		for st := ""; st != "off"; st = strings.TrimSpace(readFile(n.Dir + "/state")) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not off: %s", n.Name, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Raspberry Pi OS.
	if got := cardText(t, nr, rpi.SectorStart, "/var/log/pilab-firstboot.log"); strings.Count(got, "first boot") != 1 ||
		!strings.Contains(got, "root resized to the end of the card") || !strings.Contains(got, "ssh host keys regenerated") {
		t.Errorf("firstboot log: %q", got)
	}
	cmdline, err := bootText(t, nr, "cmdline.txt")
	id, _ := exec.Command("sfdisk", "--disk-id", nr.Card).Output()
	newID := strings.TrimPrefix(strings.TrimSpace(string(id)), "0x")
	if err != nil || strings.Contains(cmdline, "init=") || newID == lab.ImageDiskID || !strings.Contains(cmdline, "PARTUUID="+newID+"-02") {
		t.Errorf("after firstboot: disk id %s, cmdline.txt %q %v", newID, cmdline, err)
	}
	if got := cardText(t, nr, rpi.SectorStart, "/etc/fstab"); !strings.Contains(got, "PARTUUID="+newID+"-02") {
		t.Errorf("fstab not following the new disk identifier: %q", got)
	}
	var pt struct {
		PartitionTable struct {
			Partitions []struct{ Start, Size int64 }
		}
	}
	out, _ := exec.Command("sfdisk", "--json", nr.Card).Output()
	json.Unmarshal(out, &pt)
	if p := pt.PartitionTable.Partitions; len(p) != 2 || p[1].Start+p[1].Size != 256<<20/512 {
		t.Errorf("root partition not grown to the card's end: %s", out)
	}
	stats, _ := exec.Command("dumpe2fs", "-h", fmt.Sprintf("%s?offset=%d", nr.Card, rpi.SectorStart*512)).Output()
	if p := pt.PartitionTable.Partitions; len(p) == 2 && !strings.Contains(string(stats), fmt.Sprintf("Block count:              %d\n", p[1].Size/2)) {
		t.Errorf("root file system not grown to its partition (%d KiB): %s", p[1].Size/2, stats)
	}
	if got := cardText(t, nr, rpi.SectorStart, "/etc/passwd"); !strings.Contains(got, "bob:x:1000:1000:,,,:/home/bob:") {
		t.Errorf("userconf.txt: passwd %q", got)
	}
	if got := cardText(t, nr, rpi.SectorStart, "/etc/shadow"); !strings.Contains(got, "bob:"+strings.TrimSpace(string(hash))+":") {
		t.Errorf("userconf.txt: shadow %q", got)
	}
	if _, err := bootText(t, nr, "userconf.txt"); err == nil {
		t.Error("userconf.txt left on the boot partition")
	}
	if got := cardText(t, nr, rpi.SectorStart, "/etc/ssh/ssh_host_rsa_key.pub"); !strings.HasPrefix(got, "ssh-rsa ") {
		t.Errorf("ssh-keygen -A made no RSA key: %q", got)
	}

	// cloud-init with Ubuntu's seed.
	if got := cardText(t, nc, ci.SectorStart, "/etc/passwd"); !strings.Contains(got, "ubuntu:x:") {
		t.Errorf("cloud-init: no default user: %q", got)
	}
	var ubuntu []string
	for _, l := range strings.Split(cardText(t, nc, ci.SectorStart, "/etc/shadow"), "\n") {
		if f := strings.Split(l, ":"); f[0] == "ubuntu" && len(f) > 2 {
			ubuntu = f
		}
	}
	if len(ubuntu) < 3 || !strings.HasPrefix(ubuntu[1], "$") || ubuntu[2] != "0" {
		t.Errorf("cloud-init: ubuntu's password not set (text) and expired: %q", ubuntu)
	}
	for _, k := range []string{"rsa", "ecdsa", "ed25519"} {
		if got := cardText(t, nc, ci.SectorStart, "/etc/ssh/ssh_host_"+k+"_key.pub"); got == "" {
			t.Errorf("cloud-init: no %s host key", k)
		}
	}
	if got := cardText(t, nc, ci.SectorStart, "/var/lib/cloud/data/instance-id"); strings.TrimSpace(got) != "cloud-image" {
		t.Errorf("cloud-init: instance-id %q", got)
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
