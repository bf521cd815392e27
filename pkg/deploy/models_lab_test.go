package deploy_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/discovery"
	"github.com/piseduce/piseduce/pkg/store"
)

// TestDeployMixedModels: a Pi 3B+, a Pi 4, a Pi 5 booting its SD card and a Pi 5 booting an
// NVMe drive, imported from the lab's cluster_desc/ and deployed at once. Each comes up
// from its own disk as the user asked: on the Pi 5s, the firmware took kernel_2712.img and the
// BCM2712 device tree from the serial-named TFTP folder; on the NVMe Pi 5, pitasks wrote and
// grew /dev/nvme0n1 and pointed the SD image's root=/dev/mmcblk0p2 at /dev/nvme0n1p2 (the lab
// refuses to boot a root it does not have). Discovery reads each node's /proc/cpuinfo as the
// model it is.
func TestDeployMixedModels(t *testing.T) {
	// Four nodes booting at once on a shared 2-core machine: DHCP alone took 8 s at load 30.
	h := deploytest.StartWith(t, lab.Options{Nodes: 4, Specs: []lab.NodeSpec{
		{Model: lab.ModelPi3}, {Model: lab.ModelPi4}, {Model: lab.ModelPi5}, {Model: lab.ModelPi5, CardDevice: lab.CardNVMe}}},
		deploytest.Config{SSHLost: 2 * time.Minute})
	defer func() {
		if t.Failed() {
			for _, n := range h.Lab.Desc.Nodes {
				b, _ := os.ReadFile(n.EventsLog)
				t.Logf("%s events:\n%s", n.Name, b)
			}
		}
	}()
	want := []struct{ model, dev string }{
		{lab.ModelPi3, store.DefaultCardDevice}, {lab.ModelPi4, store.DefaultCardDevice},
		{lab.ModelPi5, store.DefaultCardDevice}, {lab.ModelPi5, "/dev/nvme0n1"}}
	for i, n := range h.Nodes {
		if n.Model != want[i].model || n.CardDevice != want[i].dev {
			t.Fatalf("%s imported as %s on %s, want %s on %s", n.Name, n.Model, n.CardDevice, want[i].model, want[i].dev)
		}
	}
	ds := h.Deploy(h.Nodes, deploytest.Request{SizeMiB: 100, Key: h.UserKey, Password: "mixed cluster",
		Script: "#!/bin/sh\necho \"hello from $(hostname)\"\n"})
	h.RunUntil(ds, 10*time.Minute, "deployed")
	for i, n := range h.Nodes {
		d := h.Load(ds[i].ID)
		if !strings.Contains(d.ScriptOutput, "hello from "+n.Name) {
			t.Errorf("%s: script output %q", n.Name, d.ScriptOutput)
		}
		c, err := dialAs(h, n, lab.ImageUser, ssh.PublicKeys(h.UserKey))
		if err != nil {
			t.Fatalf("%s: ssh as the user: %v", n.Name, err)
		}
		if got, _ := output(c, "hostname"); got != n.Name {
			t.Errorf("%s: hostname %q", n.Name, got)
		}
		info, _ := output(c, "cat /proc/cpuinfo")
		c.Close()
		ci, err := discovery.ParseCPUInfo(info)
		if err != nil || ci.Model != n.Model || ci.Serial != n.Serial {
			t.Errorf("%s: discovery reads %+v (%v), want model %s serial %s", n.Name, ci, err, n.Model, n.Serial)
		}
		root, err := dialAs(h, n, "root", ssh.PublicKeys(mustSigner(t, h.Lab.Desc.PimasterKey)))
		if err != nil {
			t.Fatal(err)
		}
		p2 := store.CardPartition(n.CardDevice, 2)
		if got, _ := output(root, "blockdev --getsz "+p2); got != strconv.Itoa(100*2048) {
			t.Errorf("%s: %s is %q sectors, want 100 MiB", n.Name, p2, got)
		}
		if got, _ := output(root, "findmnt -n -o SOURCE /"); got != p2 {
			t.Errorf("%s: the system runs from %q, want %s", n.Name, got, p2)
		}
		root.Close()
		events, _ := os.ReadFile(h.Lab.Desc.Node(n.Name).EventsLog)
		boot := lastLine(string(events), "firmware: net boot")
		if n.Model == lab.ModelPi5 {
			if !strings.Contains(boot, "kernel kernel_2712.img") || !strings.Contains(boot, "root="+p2) {
				t.Errorf("%s: last network boot %q, want kernel_2712.img and root=%s", n.Name, boot, p2)
			}
			if _, err := os.Stat(filepath.Join(h.Lab.Desc.TFTPRoot, n.Serial, "bcm2712-rpi-5-b.dtb")); err != nil {
				t.Errorf("%s: no BCM2712 device tree in its TFTP folder: %v", n.Name, err)
			}
		} else if !strings.Contains(boot, "root=/dev/mmcblk0p2") {
			t.Errorf("%s: last network boot %q", n.Name, boot)
		}
	}
}

func lastLine(s, with string) string {
	var last string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, with) {
			last = l
		}
	}
	return last
}
