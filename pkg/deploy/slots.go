package deploy

import (
	"sync"
	"time"

	"github.com/piseduce/piseduce/pkg/engine"
)

// slots lets at most max nodes do something at once (in this pitasks process): boot, or copy
// an image. Slots go to the nodes in the order they first asked: a node that holds a slot
// only briefly and asks again (its switch did not answer) cannot keep one that waits longer
// from its turn for ever. A node refused a slot returns the slots' wait (engine.Wait): its
// state's clock stops until its turn.
type slots struct {
	mu   sync.Mutex
	max  int
	wait error
	// ttl gives back a slot held that long, in case its deployment went elsewhere without
	// giving it back (0: never; the holder always gives it back).
	ttl     time.Duration
	now     func() time.Time
	taken   map[uint]time.Time // node → when it took its slot
	waiting map[uint]waiter
	asks    uint64 // waiters so far: a waiter's place in the queue
}

// waiter is a node refused a slot: its place in the queue, and when it last asked.
type waiter struct {
	place uint64
	asked time.Time
}

const (
	// bootSlotTTL: a boot slot is given back when the node's system answers SSH or the node
	// is powered off, which a deployment sent elsewhere (destroyed, failed) may never do.
	bootSlotTTL = 6 * time.Minute
	// waiterTTL drops a waiter that stopped asking (its deployment moved on) from the queue;
	// a waiting state asks every poll interval.
	waiterTTL = time.Minute
)

// newBootSlots: turn_on and boot_files wait for one ([tasks] max_booting): Pis that netboot
// all together stall their TFTP and NFS server.
func newBootSlots(max int) *slots {
	return newSlots(max, bootSlotTTL, engine.Wait("its turn to boot"))
}

// newCopySlots: env_copy and img_copy wait for one ([tasks] max_copying). Every copy in flight
// holds an SSH connection and its buffers in pitasks; past what the uplink carries, another
// copy at once only slows the others, so the slots bound pitasks' memory whatever the number
// of nodes, at no cost in time when set to what the uplink carries.
func newCopySlots(max int) *slots {
	return newSlots(max, 0, engine.Wait("its turn to copy an image"))
}

func newSlots(max int, ttl time.Duration, wait error) *slots {
	if max <= 0 {
		max = 1 << 30
	}
	return &slots{max: max, wait: wait, ttl: ttl, now: time.Now, taken: map[uint]time.Time{}, waiting: map[uint]waiter{}}
}

// acquire takes a slot for node, or queues it and reports false: the node then returns
// b.wait.
func (b *slots) acquire(node uint) bool { return b.take(node, true) }

// note takes a slot, if one is free, for a node that reboots without waiting for one (its
// deployment cannot put the reboot off), so that the others wait for its boot.
func (b *slots) note(node uint) { b.take(node, false) }

func (b *slots) take(node uint, queue bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for n, at := range b.taken {
		if b.ttl > 0 && now.Sub(at) > b.ttl {
			delete(b.taken, n)
		}
	}
	for n, w := range b.waiting {
		if now.Sub(w.asked) > waiterTTL {
			delete(b.waiting, n)
		}
	}
	if _, ok := b.taken[node]; ok {
		return true
	}
	me, queued := b.waiting[node]
	ahead := 0
	for n, w := range b.waiting {
		if n != node && (!queued || w.place < me.place) {
			ahead++
		}
	}
	if ahead >= b.max-len(b.taken) {
		if queue {
			if !queued {
				b.asks++
				me.place = b.asks
			}
			me.asked = now
			b.waiting[node] = me
		}
		return false
	}
	delete(b.waiting, node)
	b.taken[node] = now
	return true
}

// release gives node's slot back, or its place in the queue.
func (b *slots) release(node uint) {
	b.mu.Lock()
	delete(b.taken, node)
	delete(b.waiting, node)
	b.mu.Unlock()
}
