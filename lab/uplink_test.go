package lab_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/labtest"
)

// listenIn opens a TCP listener on addr inside the network namespace ns: the socket stays in
// it once this thread is back in its own.
func listenIn(ns, addr string) (net.Listener, error) {
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer self.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked: it ends with this goroutine instead of serving others.
		return nil, fmt.Errorf("back to the root namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ln, lerr
}

// TestUplinkBoundsTheSum: with the pimaster's uplink at 40 Mbit/s (5 MB/s) and node links at
// 24 Mbit/s (3 MB/s), one node alone still receives at its own link's speed, and three nodes
// receiving at once share the uplink: together no more than 5 MB/s, not their links' 9. The
// pimaster (this process, in the root namespace) sends 16 MiB over TCP to a listener of this
// process in each node's namespace (the node's address set by the test; no node is powered).
// The rates are low so that the machine is not what is measured: at load ~45 one TCP flow from
// the root namespace through two tbfs got ~4.8 MB/s, whatever their rates. The limits are
// upper bounds, so the checks are tight above and loose below.
func TestUplinkBoundsTheSum(t *testing.T) {
	need(t)
	const uplinkMbit, linkMbit = 40, 24
	l, _ := labtest.Up(t, lab.Options{Nodes: 3, CardSize: 64 << 20, UplinkMbit: uplinkMbit,
		Specs: []lab.NodeSpec{{LinkMbit: linkMbit}, {LinkMbit: linkMbit}, {LinkMbit: linkMbit}}})
	d := l.Desc
	if d.UplinkMbit != uplinkMbit {
		t.Fatalf("lab.json: uplink %d Mbit/s, want %d", d.UplinkMbit, uplinkMbit)
	}
	if out, err := exec.Command("tc", "qdisc", "show", "dev", lab.Bridge).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "tbf") || !strings.Contains(string(out), "40Mbit") {
		t.Fatalf("tc qdisc show dev %s: %v: %s", lab.Bridge, err, out)
	}
	lns := make([]net.Listener, len(d.Nodes))
	for i, n := range d.Nodes {
		for _, c := range [][]string{{"ip", "-n", n.Netns, "addr", "add", n.IP + "/24", "dev", "eth0"}, {"ip", "-n", n.Netns, "link", "set", "eth0", "up"}} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v: %s", c, err, out)
			}
		}
		ln, err := listenIn(n.Netns, n.IP+":0")
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		defer ln.Close()
		lns[i] = ln
	}
	// The route to the lab subnet is the bridge's, not the unreachable safety net.
	if out, err := exec.Command("ip", "route", "get", d.Nodes[0].IP).CombinedOutput(); err != nil || !strings.Contains(string(out), "dev "+lab.Bridge) {
		t.Fatalf("ip route get %s: %v: %s", d.Nodes[0].IP, err, out)
	}
	const size = 16 << 20
	data := make([]byte, size)
	// send sends size bytes to the listeners at once and returns when each receiver saw its
	// first and last byte.
	send := func(lns []net.Listener) (first, last []time.Time) {
		first, last = make([]time.Time, len(lns)), make([]time.Time, len(lns))
		var wg sync.WaitGroup
		for i, ln := range lns {
			wg.Add(2)
			go func() {
				defer wg.Done()
				c, err := ln.Accept()
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(2 * time.Minute))
				buf := make([]byte, 256<<10)
				got := 0
				for {
					n, err := c.Read(buf)
					if got == 0 && n > 0 {
						first[i] = time.Now()
					}
					got += n
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
				last[i] = time.Now()
				if got != size {
					t.Errorf("receiver %d: %d bytes, want %d", i, got, size)
				}
			}()
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", ln.Addr().String(), 30*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				c.SetWriteDeadline(time.Now().Add(2 * time.Minute))
				if _, err := c.Write(data); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		return first, last
	}
	rate := func(bytes int, first, last []time.Time) float64 {
		f, e := first[0], last[0]
		for i := range first {
			if first[i].Before(f) {
				f = first[i]
			}
			if last[i].After(e) {
				e = last[i]
			}
		}
		return float64(bytes) / e.Sub(f).Seconds() / 1e6
	}
	link, uplink := float64(linkMbit)/8, float64(uplinkMbit)/8 // MB/s
	first, last := send(lns[:1])
	if t.Failed() {
		return
	}
	one := rate(size, first, last)
	first, last = send(lns)
	if t.Failed() {
		return
	}
	// From the first byte anywhere to the last byte anywhere: the rate while all three ran,
	// or a little less.
	sum := rate(size*len(lns), first, last)
	t.Logf("one node: %.1f MB/s (link %.0f MB/s); three at once: %.1f MB/s together (uplink %.0f MB/s, links %.0f MB/s)",
		one, link, sum, uplink, 3*link)
	if one > link*1.1 || one < link*0.7 {
		t.Errorf("one node received at %.1f MB/s, its link is %.0f MB/s and the uplink %.0f MB/s", one, link, uplink)
	}
	if sum > uplink*1.1 || sum < uplink*0.6 {
		t.Errorf("three nodes received at %.1f MB/s together, the uplink is %.0f MB/s", sum, uplink)
	}
}
