package lab_test

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/labtest"
)

// cardMBs runs a dd command on n and returns the bytes per second measured on the node
// (time taken there, around dd alone), in MB/s.
func cardMBs(dr *driver, n *lab.NodeDesc, dd string, bytes int64) (float64, error) {
	t0, t1, err := timedOnNode(dr, n, dd+" 2>/dev/null", nil)
	if err != nil {
		return 0, err
	}
	return float64(bytes) / t1.Sub(t0).Seconds() / 1e6, nil
}

// timedOnNode runs cmd on n, stdin fed to it, and returns when it started and ended by the
// node's clock (the host's: the nodes are namespaces), so an SSH session's set-up is not counted.
func timedOnNode(dr *driver, n *lab.NodeDesc, cmd string, stdin []byte) (t0, t1 time.Time, err error) {
	out, err := dr.ssh("root", dr.d.PimasterKey, n, "t0=$(date +%s.%N); "+cmd+" || exit 1; t1=$(date +%s.%N); echo $t0 $t1", stdin)
	if err != nil {
		return t0, t1, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return t0, t1, fmt.Errorf("%s: unexpected output %q", n.Name, out)
	}
	s0, err0 := strconv.ParseFloat(f[0], 64)
	s1, err1 := strconv.ParseFloat(f[1], 64)
	if err0 != nil || err1 != nil || s1 <= s0 {
		return t0, t1, fmt.Errorf("%s: bad times %q", n.Name, out)
	}
	return time.Unix(0, int64(s0*1e9)), time.Unix(0, int64(s1*1e9)), nil
}

// TestCardSpeedLimitHolds: a node's card writes and reads at its set speed, measured on the
// node with dd, both with direct I/O and through the page cache (fsync at the end, as the
// pipeline writes images); a node whose card is set faster (the Pi 4 default) or unlimited
// is faster in the same run. The limit is an upper bound, so the check is tight above
// (+15%) and loose below (a busy machine may be slower than the card). A fake-capacity card
// has its speed limit too, and wraps what is written past what it stores; its limit is set
// lower, under what its FUSE server manages on a busy machine (8–11 MB/s under -race at load
// average 50–69), or the check would not tell the limit from the server's own pace.
func TestCardSpeedLimitHolds(t *testing.T) {
	need(t)
	l, _ := labtest.Up(t, lab.Options{Nodes: 4, BootDelay: 200 * time.Millisecond, RetryDelay: time.Second,
		CardSize: 256 << 20, Specs: []lab.NodeSpec{
			{CardWriteMBs: 12, CardReadMBs: 20}, {Model: lab.ModelPi4}, {CardWriteMBs: -1, CardReadMBs: -1},
			{CardWriteMBs: 5, CardReadMBs: 8, FakeCardMiB: 96}}})
	d := l.Desc
	slow, pi4, free, fake := &d.Nodes[0], &d.Nodes[1], &d.Nodes[2], &d.Nodes[3]
	if slow.CardWriteMBs != 12 || slow.CardReadMBs != 20 || pi4.CardWriteMBs != 25 || pi4.CardReadMBs != 45 ||
		free.CardWriteMBs != 0 || free.CardReadMBs != 0 {
		t.Fatalf("card speeds in lab.json: %+v %+v %+v", *slow, *pi4, *free)
	}
	dr := &driver{t: t, d: d}
	var wg sync.WaitGroup
	for _, n := range d.Nodes {
		if err := exec.Command("cp", "-r", d.NFSBootDir, n.TFTPDir).Run(); err != nil {
			t.Fatal(err)
		}
	}
	dr.power(true, 1, 2, 3, 4)
	for i := range d.Nodes {
		n := &d.Nodes[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := dr.waitSSH(n, "cat /etc/hostname", func(s string) bool { return strings.TrimSpace(s) == "nfspi" }, 60*time.Second); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	checkFakeCard(t, dr, fake)
	const mib = 48
	bytes := int64(mib) << 20
	tests := []struct{ what, dd string }{
		{"write, direct", fmt.Sprintf("dd if=/dev/zero of=/dev/mmcblk0 bs=1M count=%d oflag=direct", mib)},
		{"write, page cache + fsync", fmt.Sprintf("dd if=/dev/zero of=/dev/mmcblk0 bs=4M count=%d conv=fsync", mib/4)},
		{"read, direct", fmt.Sprintf("dd if=/dev/mmcblk0 of=/dev/null bs=1M count=%d iflag=direct", mib)},
	}
	// One node at a time: the nodes share the host's disk and CPUs.
	for _, tc := range tests {
		got := map[string]float64{}
		for _, n := range []*lab.NodeDesc{slow, pi4, free, fake} {
			v, err := cardMBs(dr, n, tc.dd, bytes)
			if err != nil {
				t.Fatalf("%s: %v", tc.what, err)
			}
			got[n.Name] = v
		}
		set := func(n *lab.NodeDesc) float64 {
			if strings.HasPrefix(tc.what, "read") {
				return float64(n.CardReadMBs)
			}
			return float64(n.CardWriteMBs)
		}
		t.Logf("%-26s %s %.1f MB/s (set %.0f), %s %.1f MB/s (set %.0f), %s %.1f MB/s (unlimited); unlimited/slow %.1f×",
			tc.what, slow.Name, got[slow.Name], set(slow), pi4.Name, got[pi4.Name], set(pi4), free.Name, got[free.Name],
			got[free.Name]/got[slow.Name])
		t.Logf("%-26s fake card %s %.1f MB/s (set %.0f)", tc.what, fake.Name, got[fake.Name], set(fake))
		for _, n := range []*lab.NodeDesc{slow, pi4, fake} {
			if v, s := got[n.Name], set(n); v > s*1.15 || v < s*0.4 {
				t.Errorf("%s: %s at %.1f MB/s, set %.0f MB/s", tc.what, n.Name, v, s)
			}
		}
		if got[pi4.Name] < got[slow.Name]*1.3 {
			t.Errorf("%s: the Pi 4's card (%.1f MB/s) is not faster than the slow card (%.1f MB/s)", tc.what, got[pi4.Name], got[slow.Name])
		}
		if got[free.Name] < got[slow.Name]*2 {
			t.Errorf("%s: the unlimited card (%.1f MB/s) is not faster than the slow card (%.1f MB/s)", tc.what, got[free.Name], got[slow.Name])
		}
	}
}

// checkFakeCard: the fake card tells its full size, takes a write past what it stores without
// an error, and reads it back at the offset modulo what it stores, over what was there.
func checkFakeCard(t *testing.T, dr *driver, n *lab.NodeDesc) {
	t.Helper()
	if n.FakeCardMiB != 96 {
		t.Fatalf("lab.json: fake card of %s stores %d MiB, want 96", n.Name, n.FakeCardMiB)
	}
	const script = `set -e
head -c 1048576 /dev/urandom > /run/a
head -c 1048576 /dev/urandom > /run/b
dd if=/run/a of=/dev/mmcblk0 bs=1M seek=10 oflag=direct conv=fsync status=none
dd if=/run/b of=/dev/mmcblk0 bs=1M seek=106 oflag=direct conv=fsync status=none
blockdev --getsize64 /dev/mmcblk0
for at in 10 106; do dd if=/dev/mmcblk0 bs=1M skip=$at count=1 iflag=direct status=none | sha256sum | cut -c1-64; done
sha256sum /run/a /run/b | cut -c1-64`
	out, err := dr.ssh("root", dr.d.PimasterKey, n, script, nil)
	if err != nil {
		t.Fatalf("%s: %v: %s", n.Name, err, out)
	}
	f := strings.Fields(out)
	if len(f) != 5 || f[0] != strconv.Itoa(256<<20) {
		t.Fatalf("%s: fake card: %q, want its 256 MiB size then four hashes", n.Name, out)
	}
	at10, at106, a, b := f[1], f[2], f[3], f[4]
	if at10 != b || at106 != b || a == b {
		t.Errorf("%s: fake card: MiB 10 reads %s, MiB 106 reads %s; wrote %s at 10 then %s at 106, want both to read the last", n.Name, at10, at106, a, b)
	}
}
