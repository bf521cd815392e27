// Package deploymodel predicts how long pitasks takes to deploy N nodes at once, from measured
// parameters: each node's link and card, the image's size and compression, the two boots, the
// configuration steps, the pimaster's uplink and CPU, and pitasks' boot and copy slots.
//
// It replays a deployment as pitasks runs it (pkg/deploy): a node takes a boot slot to power on
// and keeps it until its NFS system answers; it streams the image (a worker held for the whole
// copy) at the lowest of its own link, card and inflater, while all copies share the uplink and
// the pimaster's CPU fairly; it checks the card, configures it, takes a slot again to reboot
// into the card, and is configured. Slots go first come, first served. Between
// events every rate is constant, so the replay jumps from event to event: exact for this
// model, and quick for 200 nodes.
package deploymodel

import (
	"math"
	"time"
)

// Params describes a site and an image. Rates are in bytes per second (0 = no limit), bytes
// of the raw image unless said otherwise.
type Params struct {
	ImageBytes float64 // the raw image written onto each card
	WireBytes  float64 // what is sent per node: the compressed file when the node inflates it

	LinkBps        float64 // a node's link, payload bytes on the wire per second
	CardWriteBps   float64 // a node's card, as a copy writes it (through the page cache, fsync at the end)
	NodeInflateBps float64 // a node's CPU inflating the image (raw bytes out); 0: not a limit
	CheckBps       float64 // env_check reading the card back (raw bytes)

	UplinkBps float64 // the pimaster's uplink, payload bytes per second; 0: none
	// The pimaster's CPU per byte on the wire (pitasks' own: read, cipher) and its cores: all
	// copies together send at most Cores/CPUSecPerByte. 0: not a limit.
	CPUSecPerByte float64
	Cores         float64

	Start time.Duration // request to power on (boot_conf, turn_off and its wait)
	Boot1 time.Duration // power on to the NFS system answering SSH (turn_on, ssh_nfs)
	Conf1 time.Duration // partition, system_conf, boot_files (the reboot asked)
	Boot2 time.Duration // reboot to the card's system answering SSH (ssh_system)
	Conf2 time.Duration // user_conf, user_script
	Fixed time.Duration // what the states do not account for (ticks between them), per node

	Slots  int // max_booting: nodes booting at once; 0: no limit
	Copies int // copies at once: max_copying, or the workers if fewer (a copy holds one); 0: no limit
}

// NodeCap is one node's copy rate alone, in bytes on the wire per second: its link, or its
// card or inflater scaled by the compression (they work on raw bytes).
func (p Params) NodeCap() float64 {
	c := math.Inf(1)
	r := p.WireBytes / p.ImageBytes // wire bytes per raw byte
	for _, v := range []float64{p.LinkBps, p.CardWriteBps * r, p.NodeInflateBps * r} {
		if v > 0 {
			c = min(c, v)
		}
	}
	return c
}

// SharedCap is what all copies together can send: the uplink or the pimaster's CPU.
func (p Params) SharedCap() float64 {
	c := math.Inf(1)
	if p.UplinkBps > 0 {
		c = p.UplinkBps
	}
	if p.CPUSecPerByte > 0 && p.Cores > 0 {
		c = min(c, p.Cores/p.CPUSecPerByte)
	}
	return c
}

// Result is one predicted deployment of N nodes.
type Result struct {
	N      int
	Done   []time.Duration // per node, request to deployed
	Max    time.Duration   // the slowest node
	Mean   time.Duration
	Copy   time.Duration // first copy's start to last copy's end
	Shared time.Duration // time during which the shared capacity (uplink, CPU) bound the copies
}

type phase int

const (
	starting phase = iota
	wantSlot1
	boot1
	wantWorker
	copying
	checking
	conf1
	wantSlot2
	boot2
	conf2
	done
)

type node struct {
	phase phase
	end   float64 // seconds: when a timed phase ends
	left  float64 // bytes still to send while copying
	since float64 // when it started waiting (first come, first served)
}

// Predict replays the deployment of n nodes requested at once.
func Predict(p Params, n int) Result {
	sec := func(d time.Duration) float64 { return d.Seconds() }
	check := 0.0
	if p.CheckBps > 0 {
		check = p.ImageBytes / p.CheckBps
	}
	nodeCap, shared := p.NodeCap(), p.SharedCap()
	ns := make([]node, n)
	for i := range ns {
		ns[i] = node{phase: starting, end: sec(p.Start)}
	}
	res := Result{N: n, Done: make([]time.Duration, n)}
	slots, copies := p.Slots, p.Copies
	if slots <= 0 {
		slots = n
	}
	if copies <= 0 {
		copies = n
	}
	usedSlots, usedCopies := 0, 0
	now, copyStart, copyEnd := 0.0, math.Inf(1), 0.0
	// grant gives free boot or copy slots to the nodes waiting for them, oldest first.
	grant := func(waits func(phase) bool, used *int, limit int, next func(*node)) {
		for *used < limit {
			best := -1
			for i := range ns {
				if waits(ns[i].phase) && (best < 0 || ns[i].since < ns[best].since) {
					best = i
				}
			}
			if best < 0 {
				return
			}
			*used++
			next(&ns[best])
		}
	}
	for left := n; left > 0; {
		// The first boots and the reboots wait in one queue for the slots.
		grant(func(ph phase) bool { return ph == wantSlot1 || ph == wantSlot2 }, &usedSlots, slots, func(nd *node) {
			if nd.phase == wantSlot1 {
				nd.phase, nd.end = boot1, now+sec(p.Boot1)
			} else {
				nd.phase, nd.end = boot2, now+sec(p.Boot2)
			}
		})
		grant(func(ph phase) bool { return ph == wantWorker }, &usedCopies, copies, func(nd *node) {
			nd.phase, nd.left = copying, p.WireBytes
			copyStart = min(copyStart, now)
		})

		k := 0
		for i := range ns {
			if ns[i].phase == copying {
				k++
			}
		}
		rate := nodeCap
		if k > 0 && shared/float64(k) < rate {
			rate = shared / float64(k)
		}
		// The next event.
		next := math.Inf(1)
		for i := range ns {
			switch ns[i].phase {
			case copying:
				next = min(next, now+ns[i].left/rate)
			case starting, boot1, checking, conf1, boot2, conf2:
				next = min(next, ns[i].end)
			}
		}
		if math.IsInf(next, 1) {
			panic("deploymodel: no node can move") // an invariant: every wait has a slot or worker to come
		}
		dt := next - now
		if k > 0 && shared/float64(k) < nodeCap {
			res.Shared += time.Duration(dt * 1e9)
		}
		now = next
		const eps = 1e-9
		for i := range ns {
			nd := &ns[i]
			switch nd.phase {
			case copying:
				nd.left -= rate * dt
				if nd.left <= p.WireBytes*eps {
					usedCopies--
					copyEnd = now
					nd.phase, nd.end = checking, now+check
				}
				continue
			case starting, boot1, checking, conf1, boot2, conf2:
				if nd.end > now+eps {
					continue
				}
			default:
				continue
			}
			switch nd.phase {
			case starting:
				nd.phase, nd.since = wantSlot1, now
			case boot1:
				usedSlots--
				nd.phase, nd.since = wantWorker, now
			case checking:
				nd.phase, nd.end = conf1, now+sec(p.Conf1)
			case conf1:
				nd.phase, nd.since = wantSlot2, now
			case boot2:
				usedSlots--
				nd.phase, nd.end = conf2, now+sec(p.Conf2)
			case conf2:
				nd.phase = done
				res.Done[i] = time.Duration((now + sec(p.Fixed)) * 1e9)
				left--
			}
		}
	}
	var sum time.Duration
	for _, d := range res.Done {
		res.Max = max(res.Max, d)
		sum += d
	}
	res.Mean = sum / time.Duration(max(1, n))
	if copyEnd > copyStart {
		res.Copy = time.Duration((copyEnd - copyStart) * 1e9)
	}
	return res
}

// Chain predicts n nodes deployed with the image passed along a pipeline of nodes (each node
// writes its card and forwards the stream to the next), as Kadeploy does: the pimaster sends
// the image once, so the uplink carries one stream whatever n; every node must be in its NFS
// system before the stream starts, and the stream goes at the slowest node's rate (identical
// nodes: one node's, the uplink permitting), each hop adding hop of latency. The boots go in
// waves of Slots; the check, configuration and reboot follow as in Predict.
func Chain(p Params, n int, hop time.Duration) time.Duration {
	waves := 1
	if p.Slots > 0 {
		waves = (n + p.Slots - 1) / p.Slots
	}
	rate := min(p.NodeCap(), p.SharedCap())
	check := 0.0
	if p.CheckBps > 0 {
		check = p.ImageBytes / p.CheckBps
	}
	s := p.Start.Seconds() + float64(waves)*p.Boot1.Seconds() + p.WireBytes/rate + float64(n-1)*hop.Seconds() +
		check + p.Conf1.Seconds() + float64(waves)*p.Boot2.Seconds() + p.Conf2.Seconds() + p.Fixed.Seconds()
	return time.Duration(s * 1e9)
}
