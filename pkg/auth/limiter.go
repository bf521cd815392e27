package auth

import (
	"sync"
	"time"
)

// Limiter counts failures per key in a sliding window: after Max failures within Window the key
// is blocked until the oldest one leaves the window. It lives in memory: one pifrontend process
// per database is the supported set-up, and a restart forgets (an attacker gains one window).
type Limiter struct {
	Max    int
	Window time.Duration

	mu   sync.Mutex
	hits map[string][]time.Time
}

// NewLimiter allows max failures per window and key.
func NewLimiter(max int, window time.Duration) *Limiter {
	return &Limiter{Max: max, Window: window, hits: map[string][]time.Time{}}
}

// Blocked reports whether key is blocked at now, and until when.
func (l *Limiter) Blocked(key string, now time.Time) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.prune(key, now)
	if len(h) >= l.Max {
		return true, h[0].Add(l.Window)
	}
	return false, time.Time{}
}

// Fail records a failure of key at now.
func (l *Limiter) Fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hits[key] = append(l.prune(key, now), now)
	if len(l.hits) > 100000 { // a flood of distinct keys: forget the oldest state rather than grow
		for k := range l.hits {
			delete(l.hits, k)
			if len(l.hits) < 50000 {
				break
			}
		}
	}
}

// Reset forgets key (after a success).
func (l *Limiter) Reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.hits, key)
}

func (l *Limiter) prune(key string, now time.Time) []time.Time {
	h := l.hits[key]
	i := 0
	for i < len(h) && now.Sub(h[i]) >= l.Window {
		i++
	}
	h = h[i:]
	if len(h) == 0 {
		delete(l.hits, key)
		return nil
	}
	l.hits[key] = h
	return h
}
