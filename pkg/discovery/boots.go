package discovery

import (
	"context"
	"log/slog"
	"time"
)

// Boots follows dnsmasq's log for nodes that boot: a node's DHCP answer or TFTP request says
// it is on its way up, so the deployments waiting for its SSH (Waiting) are woken at once and
// then again after each of Backoff, instead of at their next poll. It only nudges: the
// engine's polling stays the truth, and a line missed or a log that does not exist costs time
// only.
type Boots struct {
	Log string // dnsmasq's log (log-facility, with log-dhcp)
	// Waiting returns the deployments waiting for the boot of the node with this MAC or IP
	// (either may be empty).
	Waiting func(ctx context.Context, mac, ip string) ([]uint, error)
	// Wake makes a deployment due now (engine.Engine.Wake).
	Wake func(ctx context.Context, id uint) error
	// Backoff: after a node's boot event, its waits are woken at once and again after each of
	// these (from the event, the last event of the node) [DefaultBootBackoff]: its SSH answers
	// some seconds after its last DHCP or TFTP request.
	Backoff []time.Duration
	// Every is how often the log is read [100ms].
	Every  time.Duration
	Logger *slog.Logger
}

// DefaultBootBackoff is Boots.Backoff's default.
var DefaultBootBackoff = func() []time.Duration {
	var out []time.Duration
	for _, ms := range []int{250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 15000, 20000, 25000, 30000} {
		out = append(out, time.Duration(ms)*time.Millisecond)
	}
	return out
}()

// booting is a node seen booting: its address, and when its waits are woken next.
type booting struct {
	mac, ip string
	seen    time.Time
	next    int // index in Backoff of the next wake after the first
}

// Run follows the log until ctx ends, from its end as it is now.
func (b *Boots) Run(ctx context.Context) {
	every := b.Every
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	backoff := b.Backoff
	if len(backoff) == 0 {
		backoff = DefaultBootBackoff
	}
	log := b.Logger
	if log == nil {
		log = slog.Default()
	}
	tail := newLogTail(b.Log)
	nodes := map[string]*booting{} // by IP (a DHCP answer's and a TFTP request's), else MAC
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false // a log that cannot be read is said once, not every read, until it can
	for {
		lines, err := tail.lines()
		if err != nil && !failing {
			log.Warn("boot events: reading dnsmasq's log", "log", b.Log, "err", err)
		}
		failing = err != nil
		now := time.Now()
		for _, l := range lines {
			ev, ok := ParseLogLine(l)
			if !ok || (ev.Kind == "dhcp" && (ev.Msg != "DHCPACK" || ev.IP == "")) {
				continue // before its answer, the node has no address to reach
			}
			key := ev.IP
			if key == "" {
				key = ev.MAC
			}
			n := &booting{mac: ev.MAC, ip: ev.IP, seen: now}
			if old := nodes[key]; old != nil && n.mac == "" {
				n.mac = old.mac // a TFTP request names no MAC: keep its DHCP answer's
			}
			nodes[key] = n
			b.wake(ctx, log, n)
		}
		for key, n := range nodes {
			if now.Sub(n.seen) < backoff[n.next] {
				continue
			}
			b.wake(ctx, log, n)
			if n.next++; n.next == len(backoff) {
				delete(nodes, key)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *Boots) wake(ctx context.Context, log *slog.Logger, n *booting) {
	ids, err := b.Waiting(ctx, n.mac, n.ip)
	if err != nil {
		log.Warn("boot events: finding the deployments waiting for a node", "mac", n.mac, "ip", n.ip, "err", err)
		return
	}
	for _, id := range ids {
		if err := b.Wake(ctx, id); err != nil && ctx.Err() == nil {
			log.Warn("boot events: waking a deployment", "deployment", id, "err", err)
		}
	}
}
