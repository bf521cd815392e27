package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A node's SD card reads and writes at a set speed: the block-I/O throttle of the kernel
// (blk-throttle) limits the bytes per second of every bio sent to the node's loop device,
// its partitions included. Every lab process and the kernel's writeback threads are in the
// root blkio cgroup, so the rule is set there: whatever writes the card — a dd with
// oflag=direct, or the page cache flushed by writeback or fsync — goes at the card's speed.
// Reads served from the page cache are not slowed, as on a Pi.
//
// This machine's kernel mounts cgroup v1 (blkio, with throttle files); on a cgroup v2 host
// the same limit is io.max. The rule stays on the loop device after the lab ends unless
// removed, so releaseLoop clears it before the loop device is given back.
var blkioDir = "/sys/fs/cgroup/blkio"

// Card speeds per model, in MB/s (10^6 bytes/s, the unit dd reports): {write, read}.
// A Pi 3B+'s SD bus (SDR25, 50 MHz × 4 bits) caps reads near 22 MB/s; common class 10 / A1
// cards write 10–30 MB/s. A Pi 4's bus (DDR50) reads ~45 MB/s; a Pi 5's (SDR104) ~90 MB/s
// with an A2 card, which writes ~50 MB/s there.
var cardSpeeds = map[string][2]int{
	ModelPi3: {15, 22},
	ModelPi4: {25, 45},
	ModelPi5: {50, 90},
}

// nvmeSpeed: a Pi 5's NVMe drive, on its one PCIe 2.0 lane (~450 MB/s at most).
var nvmeSpeed = [2]int{350, 430}

// cardSpeed resolves a node's card speeds: 0 = the default of its model and card device
// (dev), <0 = unlimited (0 out).
func cardSpeed(model, dev string, write, read int) (int, int) {
	def := cardSpeeds[model]
	if dev == CardNVMe {
		def = nvmeSpeed
	}
	pick := func(v, d int) int {
		switch {
		case v == 0:
			return d
		case v < 0:
			return 0
		}
		return v
	}
	return pick(write, def[0]), pick(read, def[1])
}

// setCardThrottle limits loop (a whole loop device) to writeMBs and readMBs (0 = unlimited).
func setCardThrottle(loop string, writeMBs, readMBs int) error {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(loop), "dev"))
	if err != nil {
		return fmt.Errorf("card speed: %w", err)
	}
	dev := strings.TrimSpace(string(b))
	for _, r := range []struct {
		file string
		mbs  int
	}{{"blkio.throttle.write_bps_device", writeMBs}, {"blkio.throttle.read_bps_device", readMBs}} {
		p := filepath.Join(blkioDir, r.file)
		// "MAJ:MIN 0" removes the rule.
		if err := os.WriteFile(p, []byte(fmt.Sprintf("%s %d\n", dev, int64(r.mbs)*1000*1000)), 0o644); err != nil {
			if r.mbs == 0 && os.IsNotExist(err) {
				continue // no throttle on this machine: nothing to clear
			}
			return fmt.Errorf("card speed of %s (%s): %w (this kernel needs the blkio controller's throttle, CONFIG_BLK_DEV_THROTTLING)", loop, p, err)
		}
	}
	return nil
}
