package deploymodel

import (
	"math"
	"testing"
	"time"
)

// base is a small site: 100 MB on the wire per node at 10 MB/s, nothing shared.
func base() Params {
	return Params{ImageBytes: 200e6, WireBytes: 100e6, LinkBps: 10e6, CardWriteBps: 40e6, CheckBps: 50e6,
		Start: time.Second, Boot1: 3 * time.Second, Conf1: 2 * time.Second, Boot2: 4 * time.Second, Conf2: time.Second,
		Fixed: 500 * time.Millisecond}
}

func near(t *testing.T, what string, got time.Duration, want float64) {
	t.Helper()
	if math.Abs(got.Seconds()-want) > 1e-6*max(1, want) {
		t.Errorf("%s: %.6f s, want %.6f s", what, got.Seconds(), want)
	}
}

// The sum of one node's phases: 1 + 3 + 100/10 + 200/50 + 2 + 4 + 1 + 0.5.
const alone = 25.5

func TestOneNodeIsTheSumOfItsPhases(t *testing.T) {
	r := Predict(base(), 1)
	near(t, "one node", r.Max, alone)
	near(t, "its copy", r.Copy, 10)
	if r.Shared != 0 {
		t.Errorf("nothing shared, yet the shared capacity bound %v", r.Shared)
	}
}

func TestNodeCapIsItsSlowestPart(t *testing.T) {
	p := base()
	if c := p.NodeCap(); c != 10e6 {
		t.Errorf("link-bound: %g", c)
	}
	p.CardWriteBps = 15e6 // 15 MB/s raw = 7.5 MB/s of a 2:1 compressed stream
	if c := p.NodeCap(); c != 7.5e6 {
		t.Errorf("card-bound: %g", c)
	}
	p.NodeInflateBps = 12e6
	if c := p.NodeCap(); c != 6e6 {
		t.Errorf("inflater-bound: %g", c)
	}
	p.CPUSecPerByte, p.Cores = 4e-9, 2 // 2 cores at 4 cpu-s/GB: 500 MB/s
	p.UplinkBps = 800e6
	if c := p.SharedCap(); math.Abs(c-500e6) > 1 {
		t.Errorf("CPU-bound shared: %g", c)
	}
}

func TestNodesOverlapFullyWithoutLimits(t *testing.T) {
	r := Predict(base(), 50)
	near(t, "slowest of 50", r.Max, alone)
	near(t, "mean of 50", r.Mean, alone)
}

// With an uplink of 25 MB/s, n nodes' copies (100 MB each, 10 MB/s alone) take n*100/25 s
// once n > 2.5, and the rest of a node's time stays.
func TestUplinkSharesTheCopies(t *testing.T) {
	p := base()
	p.UplinkBps = 25e6
	near(t, "2 nodes (links bind)", Predict(p, 2).Max, alone)
	for _, n := range []int{3, 5, 20} {
		r := Predict(p, n)
		copy := float64(n) * 100 / 25
		near(t, "copy span", r.Copy, copy)
		near(t, "slowest", r.Max, alone-10+copy)
		near(t, "time the uplink bound", r.Shared, copy)
	}
}

func TestCPUSharesTheCopiesLikeAnUplink(t *testing.T) {
	p := base()
	p.CPUSecPerByte, p.Cores = 1/12.5e6, 2 // 25 MB/s
	near(t, "5 nodes CPU-bound", Predict(p, 5).Max, alone-10+20)
}

// 16 nodes, 8 slots: nodes 1-8 boot, then 9-16 (they asked first), then 1-8 reboot, then
// 9-16: the boots and reboots in four waves.
func TestSlotsMakeWaves(t *testing.T) {
	p := base()
	p.Slots = 8
	p.WireBytes, p.CheckBps, p.Conf1, p.Conf2, p.Fixed = 0, 0, 0, 0, 0
	r := Predict(p, 16)
	near(t, "slowest", r.Max, 1+3+3+4+4)
	near(t, "first to finish", min(r.Done[0], r.Done[15]), 1+3+3+4)
	near(t, "8 nodes: one wave each", Predict(p, 8).Max, 1+3+4)
}

// 4 nodes, 2 copy slots: the copies go two at a time.
func TestCopySlotsLimitTheCopies(t *testing.T) {
	p := base()
	p.Copies = 2
	near(t, "slowest", Predict(p, 4).Max, alone+10)
}

func TestSlowerWithMoreNodes(t *testing.T) {
	p := base()
	p.UplinkBps, p.Slots, p.Copies = 60e6, 8, 16
	prev := time.Duration(0)
	for n := 1; n <= 120; n++ {
		r := Predict(p, n)
		if r.Max < prev {
			t.Fatalf("%d nodes: %v, faster than %d nodes' %v", n, r.Max, n-1, prev)
		}
		if r.Mean > r.Max || len(r.Done) != n {
			t.Fatalf("%d nodes: mean %v over max %v, %d done", n, r.Mean, r.Max, len(r.Done))
		}
		prev = r.Max
	}
}

// A chain sends once: the uplink does not divide it, each hop adds its latency.
func TestChainSendsOnce(t *testing.T) {
	p := base()
	p.UplinkBps = 25e6
	near(t, "chain of 1", Chain(p, 1, time.Second), alone)
	near(t, "chain of 20", Chain(p, 20, 10*time.Millisecond), alone+19*0.01)
	p.Slots = 8
	near(t, "chain of 20, 8 slots: 3 waves of boots", Chain(p, 20, 0), alone+2*3+2*4)
	p.UplinkBps = 5e6
	near(t, "chain behind a 5 MB/s uplink", Chain(p, 1, 0), alone-10+20)
}
