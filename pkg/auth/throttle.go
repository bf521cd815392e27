package auth

import (
	"net/netip"
	"sync"
	"time"
)

// Backoff says how a Throttle slows a key down: the first Free failures cost nothing, then
// each failure makes the key wait Base, 2×Base, 4×Base … at most Max before its next attempt.
// A key's failures are forgotten Forget after its last one (Forget longer than Max, so that
// waiting out the delays never resets them).
type Backoff struct {
	Free   int
	Base   time.Duration
	Max    time.Duration
	Forget time.Duration
}

// delay is the wait after the n-th failure.
func (b Backoff) delay(n int) time.Duration {
	over := n - b.Free
	switch {
	case over <= 0:
		return 0
	case over > 30: // Base<<30 is past any sensible Max; shifting further would overflow
		return b.Max
	}
	return min(b.Base<<(over-1), b.Max)
}

// Throttle slows down the keys that fail (a client address, an account tried from an
// address) with growing delays, never a lockout: a key waits at most Max, and only its own
// failures count, so a stranger's failures never slow an account's owner at another address.
//
// It lives in memory: each pifrontend process keeps its own, and a restart forgets.
type Throttle struct {
	b Backoff

	mu   sync.Mutex
	keys map[string]*throttled
}

type throttled struct {
	fails int
	last  time.Time // of the last failure
	next  time.Time // no attempt before
}

// maxThrottled bounds the memory a flood of distinct keys can take.
const maxThrottled = 100_000

// NewThrottle returns a Throttle that slows keys down as b says.
func NewThrottle(b Backoff) *Throttle {
	return &Throttle{b: b, keys: map[string]*throttled{}}
}

// Wait returns how long key must still wait before its next attempt (0: it may try now).
func (t *Throttle) Wait(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if k := t.live(key, now); k != nil && now.Before(k.next) {
		return k.next.Sub(now)
	}
	return 0
}

// Failed reports whether key has failures not forgotten yet.
func (t *Throttle) Failed(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live(key, now) != nil
}

// Fail records a failure of key at now and returns how long key must now wait.
func (t *Throttle) Fail(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.live(key, now)
	if k == nil {
		if len(t.keys) >= maxThrottled {
			t.shrink(now)
		}
		k = &throttled{}
		t.keys[key] = k
	}
	k.fails++
	k.last = now
	d := t.b.delay(k.fails)
	k.next = now.Add(d)
	return d
}

// Reset forgets key (after a success).
func (t *Throttle) Reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, key)
}

// live returns key's state, or nil when it has none or it is forgotten.
func (t *Throttle) live(key string, now time.Time) *throttled {
	k := t.keys[key]
	if k != nil && now.Sub(k.last) >= t.b.Forget {
		delete(t.keys, key)
		return nil
	}
	return k
}

// shrink drops the forgotten keys, then, if that is not enough, arbitrary ones down to three
// quarters of the bound: under a flood of distinct keys, forgetting some beats growing.
func (t *Throttle) shrink(now time.Time) {
	for key, k := range t.keys {
		if now.Sub(k.last) >= t.b.Forget {
			delete(t.keys, key)
		}
	}
	for key := range t.keys {
		if len(t.keys) < maxThrottled*3/4 {
			return
		}
		delete(t.keys, key)
	}
}

// ClientKey is the address a client is counted by: its IPv4 address, or the /64 network of an
// IPv6 one (a single host usually holds a whole /64). Anything unparsable is used as it is.
func ClientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
