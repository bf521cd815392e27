package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/store"
)

// familyEnv registers a family image of the lab as an admin would: measured (its OS family
// read from the image, not told), compressed as it is shipped.
func familyEnv(t *testing.T, h *deploytest.Harness, kind, user, shell, wantFamily string) store.Environment {
	t.Helper()
	im, err := lab.BuildFamilyImage(filepath.Dir(h.Lab.Desc.Image.Gz), kind)
	if err != nil {
		t.Fatal(err)
	}
	info, o, err := image.ExamineOS(context.Background(), im.Xz, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if o.Family != wantFamily {
		t.Fatalf("%s: measured family %s (%s), want %s", kind, o.Family, o.Why, wantFamily)
	}
	e := store.Environment{Name: "lab " + kind, ImageName: filepath.Base(im.Xz),
		ImageFormat: info.Format, ImageSize: info.Size, ImageSHA256: info.SHA256, SectorStart: info.Layout.RootStart,
		SSHUser: user, Shell: shell, OSFamily: o.Family, Description: o.Name}
	if err := h.Store.CreateEnvironment(context.Background(), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestDeployEachOSFamily deploys, at once, a Raspberry Pi OS-like image (first boot by
// init=, userconf.txt), a cloud-init image (NoCloud seed) and a busybox system (no bash, no
// getent, no chpasswd), then checks as their user what each first boot left: hostname,
// password, key, the init script's output, the root's size, and the pinned host key, still
// the same after a second reboot, with the init script run once.
func TestDeployEachOSFamily(t *testing.T) {
	// Three systems whose first boot does real work, deployed at once: boots get 2 minutes.
	h := deploytest.StartWith(t, lab.Options{Nodes: 3}, deploytest.Config{SSHLost: 2 * time.Minute})
	envs := []store.Environment{
		familyEnv(t, h, lab.ImageRaspiOS, "alice", "bash", image.FamilyFirstboot), // renames the image's pi
		familyEnv(t, h, lab.ImageCloudInit, "ubuntu", "bash", image.FamilyCloudInit),
		familyEnv(t, h, lab.ImageBusybox, "user", "sh", image.FamilyPlain),
	}
	key := deploytest.NewKey(t)
	password := `fam'ly "pw" $(x)`
	script := "#!/bin/sh\necho \"hello from $(hostname)\"\necho ran >>/var/tmp/piseduce-ran\n"
	var ds []store.Deployment
	for i, e := range envs {
		e := e
		ds = append(ds, h.Deploy(h.Nodes[i:i+1], deploytest.Request{Env: &e, SizeMiB: 200, Password: password, Key: key, Script: script})...)
	}
	h.RunUntil(ds, 6*time.Minute, "deployed")

	check := func(n store.Node, e store.Environment, pass string) {
		c, err := dialAs(h, n, e.SSHUser, ssh.PublicKeys(key))
		if err != nil {
			t.Errorf("%s (%s): ssh as %s with the deployment key (%s): %v", n.Name, e.OSFamily, e.SSHUser, pass, err)
			return
		}
		defer c.Close()
		if got, _ := output(c, "hostname"); got != n.Name {
			t.Errorf("%s (%s): hostname %q (%s)", n.Name, e.OSFamily, got, pass)
		}
		if got, _ := output(c, "id -un"); got != e.SSHUser {
			t.Errorf("%s (%s): logged in as %q (%s)", n.Name, e.OSFamily, got, pass)
		}
		if pc, err := dialAs(h, n, e.SSHUser, ssh.Password(password)); err != nil {
			t.Errorf("%s (%s): the OS password does not work (%s): %v", n.Name, e.OSFamily, pass, err)
		} else {
			pc.Close()
		}
		root, err := dialAs(h, n, "root", ssh.PublicKeys(mustSigner(t, h.Lab.Desc.PimasterKey)))
		if err != nil {
			t.Errorf("%s (%s): ssh as root (%s): %v", n.Name, e.OSFamily, pass, err)
			return
		}
		defer root.Close()
		if got, _ := output(root, "cat /var/log/piseduce-init.log"); !strings.Contains(got, "hello from "+n.Name) ||
			!strings.Contains(got, "exit status 0") {
			t.Errorf("%s (%s): init log %q (%s)", n.Name, e.OSFamily, got, pass)
		}
		if got, _ := output(root, "cat /var/tmp/piseduce-ran"); got != "ran" {
			t.Errorf("%s (%s): the init script ran %q, want once (%s)", n.Name, e.OSFamily, got, pass)
		}
		if got, _ := output(root, "blockdev --getsz /dev/mmcblk0p2"); got != strconv.Itoa(200*2048) {
			t.Errorf("%s (%s): root partition %s sectors, want 200 MiB (%s)", n.Name, e.OSFamily, got, pass)
		}
		if got, _ := output(root, "df -k / | tail -1 | awk '{print $2}'"); got == "" || mustAtoi(got) < 150*1024 {
			t.Errorf("%s (%s): root file system of %s KiB, want it grown to ~200 MiB (%s)", n.Name, e.OSFamily, got, pass)
		}
	}
	for i, n := range h.Nodes {
		// The seed and userconf.txt (hashes, the host key) stay on the card: every node reads TFTP.
		for _, f := range []string{"user-data", "meta-data", "userconf.txt"} {
			if _, err := os.Stat(filepath.Join(h.Lab.Desc.Node(n.Name).TFTPDir, f)); err == nil {
				t.Errorf("%s (%s): %s copied into the TFTP folder", n.Name, envs[i].OSFamily, f)
			}
		}
		d := h.Load(ds[i].ID)
		if !strings.Contains(d.ScriptOutput, "hello from "+n.Name) || !strings.Contains(d.ScriptOutput, "exit status 0") {
			t.Errorf("%s (%s): script output kept %q", n.Name, envs[i].OSFamily, d.ScriptOutput)
		}
		check(n, envs[i], "after the first boot")
	}
	// A minimal system has none of bash, getent or chpasswd: pitasks needed none.
	if c, err := dialAs(h, h.Nodes[2], "user", ssh.PublicKeys(key)); err == nil {
		if got, err := output(c, "command -v bash getent chpasswd; readlink /bin/sh"); got != "busybox" {
			t.Errorf("busybox system: %q %v", got, err)
		}
		c.Close()
	}

	// A second reboot: the system's own boot (units, cloud-init per boot) keeps the pinned key.
	for _, n := range h.Nodes {
		root, err := dialAs(h, n, "root", ssh.PublicKeys(mustSigner(t, h.Lab.Desc.PimasterKey)))
		if err != nil {
			t.Fatal(err)
		}
		output(root, "reboot")
		root.Close()
	}
	for i, n := range h.Nodes {
		waitSSH(t, h, n, envs[i].SSHUser, key)
		check(n, envs[i], "after a second reboot")
	}
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}

// waitSSH waits until the node answers SSH again after a reboot, with its pinned host key: a
// host key that is not the pinned one fails at once.
func waitSSH(t *testing.T, h *deploytest.Harness, n store.Node, user string, key ssh.Signer) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	time.Sleep(time.Second) // the reboot shim waits 0.3 s before it ends the node
	for {
		c, err := dialAs(h, n, user, ssh.PublicKeys(key))
		if err == nil {
			if got, _ := output(c, "hostname"); got == n.Name {
				c.Close()
				return
			}
			c.Close()
		} else if strings.Contains(err.Error(), "host key mismatch") {
			t.Fatalf("%s answers with a host key that is not the pinned one: %v", n.Name, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come back after its reboot: %v", n.Name, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
