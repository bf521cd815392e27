package power

import (
	"sync"
	"time"
)

// pace adapts a driver to how fast its switch answers. A request the driver gives up on stays
// in the agent's queue, and the agent answers one request at a time: with a timeout shorter
// than a slow switch's answers, every request is sent again, by four sessions at once, until
// the queue holds nothing but requests no one waits for and no port changes any more (seen on
// the lab under load: a 1 s timeout, seven minutes without an answer in time). So the timeout
// follows the answers' round trip (three times its smoothed value, never below the configured
// one), each request that goes unanswered doubles it, and while requests go unanswered only one
// session is in flight.
type pace struct {
	mu   sync.Mutex
	srtt time.Duration // smoothed round trip of the answers (0: none yet)
	late int           // requests unanswered in a row, up to maxLate
	// lone is the one session in flight while the switch is late.
	lone chan struct{}
}

const (
	maxLate = 3 // the timeout grows to 8 × at most…
	// …and to maxTimeout at most, unless the configured timeout is longer.
	maxTimeout = 30 * time.Second
)

func newPace() *pace { return &pace{lone: make(chan struct{}, 1)} }

// timeout is the wait for an answer to a request sent now, base being the configured one.
func (p *pace) timeout(base time.Duration) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return min(max(base, 3*p.srtt)<<p.late, max(base, maxTimeout))
}

// answered records an answer rtt after its request was sent.
func (p *pace) answered(rtt time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srtt == 0 {
		p.srtt = rtt
	} else {
		p.srtt += (rtt - p.srtt) / 8
	}
	p.late = 0
}

// unanswered records a request that went without an answer for its timeout.
func (p *pace) unanswered() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.late = min(p.late+1, maxLate)
}

// isLate reports whether the last request went unanswered.
func (p *pace) isLate() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.late > 0
}
