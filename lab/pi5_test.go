package lab_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/labtest"
)

// TestPi5NetworkBoot: a Pi 5 network-boots like its EEPROM with BOOT_ORDER=0xf12 — its
// serial-named TFTP folder must hold kernel_2712.img (or kernel8.img) and the BCM2712 device
// tree; without the device tree the boot fails. Its /proc/cpuinfo is a Pi 5's, and an NVMe
// Pi 5 has its disk at /dev/nvme0n1.
func TestPi5NetworkBoot(t *testing.T) {
	need(t)
	l, _ := labtest.Up(t, lab.Options{Nodes: 2, BootDelay: 200 * time.Millisecond, RetryDelay: time.Second,
		CardSize: 64 << 20, Specs: []lab.NodeSpec{{Model: lab.ModelPi5}, {Model: lab.ModelPi5, CardDevice: lab.CardNVMe}}})
	d := l.Desc
	dr := &driver{t: t, d: d}
	sd, nvme := &d.Nodes[0], &d.Nodes[1]
	defer func() {
		if t.Failed() {
			for _, n := range d.Nodes {
				b, _ := os.ReadFile(n.EventsLog)
				t.Logf("%s events:\n%s", n.Name, b)
			}
		}
	}()
	if !strings.HasPrefix(sd.MAC, "2c:cf:67:") || sd.CardDevice != lab.CardSD || nvme.CardDevice != lab.CardNVMe {
		t.Fatalf("lab.json: %+v %+v", *sd, *nvme)
	}
	// node-1: the NFS boot files without the device tree.
	if err := exec.Command("cp", "-r", d.NFSBootDir, sd.TFTPDir).Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(sd.TFTPDir, "bcm2712-rpi-5-b.dtb")); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("cp", "-r", d.NFSBootDir, nvme.TFTPDir).Run(); err != nil {
		t.Fatal(err)
	}
	dr.power(true, 1, 2)
	deadline := time.Now().Add(90 * time.Second)
	for countEvents(sd, "no device tree "+sd.Serial+"/bcm2712-rpi-5-b.dtb") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no boot failure without its device tree", sd.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := exec.Command("cp", filepath.Join(d.NFSBootDir, "bcm2712-rpi-5-b.dtb"), sd.TFTPDir).Run(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*lab.NodeDesc{sd, nvme} {
		if _, err := dr.waitSSH(n, "cat /etc/hostname", func(s string) bool { return strings.TrimSpace(s) == "nfspi" }, 90*time.Second); err != nil {
			t.Fatal(err)
		}
		if c := countEvents(n, "kernel kernel_2712.img"); c < 1 {
			t.Errorf("%s: the firmware did not load kernel_2712.img", n.Name)
		}
		out, err := dr.ssh("root", d.PimasterKey, n, "grep -E '^(Hardware|Revision|Serial|Model)' /proc/cpuinfo; ls /dev | grep -E '^(mmcblk|nvme)'", nil)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"Revision\t: d04170", "Serial\t\t: " + n.Serial[:0], n.Serial + "\n", "Model\t\t: Raspberry Pi 5 Model B Rev 1.0", filepath.Base(n.CardDevice) + "\n"}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: %q has no %q", n.Name, out, w)
			}
		}
		if strings.Contains(out, "Hardware") || strings.Contains(out, "00000000"+n.Serial) {
			t.Errorf("%s: not a Pi 5's cpuinfo: %q", n.Name, out)
		}
	}
}
