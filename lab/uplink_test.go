package lab_test

import (
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/labtest"
)

// TestUplinkBoundsTheSum: with the pimaster's uplink at 120 Mbit/s (15 MB/s) and node links at
// 80 Mbit/s (10 MB/s), one node alone still receives at its own link's speed, and three nodes
// receiving at once share the uplink: together no more than 15 MB/s, not their links' 30. Bytes
// go over SSH into `cat` on the node (as images do), timed on the node. The limits are upper
// bounds, so the checks are tight above and loose below (a busy machine may be slower).
func TestUplinkBoundsTheSum(t *testing.T) {
	need(t)
	const uplinkMbit, linkMbit = 120, 80
	l, _ := labtest.Up(t, lab.Options{Nodes: 3, BootDelay: 200 * time.Millisecond, RetryDelay: time.Second,
		CardSize: 64 << 20, UplinkMbit: uplinkMbit, Specs: []lab.NodeSpec{{LinkMbit: linkMbit}, {LinkMbit: linkMbit}, {LinkMbit: linkMbit}}})
	d := l.Desc
	if d.UplinkMbit != uplinkMbit {
		t.Fatalf("lab.json: uplink %d Mbit/s, want %d", d.UplinkMbit, uplinkMbit)
	}
	if out, err := exec.Command("tc", "qdisc", "show", "dev", lab.Bridge).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "tbf") || !strings.Contains(string(out), "120Mbit") {
		t.Fatalf("tc qdisc show dev %s: %v: %s", lab.Bridge, err, out)
	}
	dr := &driver{t: t, d: d}
	for _, n := range d.Nodes {
		if err := exec.Command("cp", "-r", d.NFSBootDir, n.TFTPDir).Run(); err != nil {
			t.Fatal(err)
		}
	}
	dr.power(true, 1, 2, 3)
	var wg sync.WaitGroup
	for i := range d.Nodes {
		n := &d.Nodes[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := dr.waitSSH(n, "cat /etc/hostname", func(s string) bool { return strings.TrimSpace(s) == "nfspi" }, 90*time.Second); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	data := make([]byte, 32<<20)
	const recv = "cat >/dev/null"
	link, uplink := float64(linkMbit)/8, float64(uplinkMbit)/8 // MB/s

	t0, t1, err := timedOnNode(dr, &d.Nodes[0], recv, data)
	if err != nil {
		t.Fatal(err)
	}
	one := float64(len(data)) / t1.Sub(t0).Seconds() / 1e6

	starts, ends := make([]time.Time, len(d.Nodes)), make([]time.Time, len(d.Nodes))
	for i := range d.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if starts[i], ends[i], err = timedOnNode(dr, &d.Nodes[i], recv, data); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	first, last := starts[0], ends[0]
	for i := range starts {
		if starts[i].Before(first) {
			first = starts[i]
		}
		if ends[i].After(last) {
			last = ends[i]
		}
	}
	// The sessions start a little apart: time from the first start to the last end, a lower
	// bound of the rate while all three ran.
	sum := float64(len(data)*len(d.Nodes)) / last.Sub(first).Seconds() / 1e6
	t.Logf("one node: %.1f MB/s (link %.0f MB/s); three at once: %.1f MB/s together (uplink %.0f MB/s, links %.0f MB/s)",
		one, link, sum, uplink, 3*link)
	if one > link*1.1 || one < link*0.7 {
		t.Errorf("one node received at %.1f MB/s, its link is %.0f MB/s and the uplink %.0f MB/s", one, link, uplink)
	}
	if sum > uplink*1.1 || sum < uplink*0.6 {
		t.Errorf("three nodes received at %.1f MB/s together, the uplink is %.0f MB/s", sum, uplink)
	}
}
