package auth

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// ErrBusy: the Gate gave no turn in time, or the client already has too many requests waiting.
var ErrBusy = errors.New("auth: too many password checks at once; try again in a few seconds")

// Gate bounds the password hashing done at once. A bcrypt check costs tens of milliseconds of
// CPU on purpose, so a flood of logins would otherwise take every core and starve the site.
// At most Slots hashes run at once; a client (address) has one at a time and at most
// PerClient requests in the gate, the others are refused at once; a request waits at most
// Wait for its turn; urgent requests (from clients without recent failures) go first.
//
// Like the Throttle it is per process: it shares out the CPU of the machine it runs on.
type Gate struct {
	slots     int
	perClient int
	wait      time.Duration

	mu      sync.Mutex
	running int
	queue   [2][]chan struct{} // waiting for a slot: urgent ones, then the others
	clients map[string]*clientTurn
}

// clientTurn serialises one client's requests.
type clientTurn struct {
	turn chan struct{} // holds a token while one of the client's requests is past it
	in   int           // the client's requests in the gate
}

// NewGate returns a Gate with slots hashes at once, perClient requests in the gate per
// client, and a wait of at most wait for a turn.
func NewGate(slots, perClient int, wait time.Duration) *Gate {
	return &Gate{slots: max(slots, 1), perClient: max(perClient, 1), wait: wait, clients: map[string]*clientTurn{}}
}

// Do runs f, the hashing of one request of client, when its turn comes; ErrBusy (f not run)
// when it does not come within the Gate's wait or the client has too many requests in the
// gate, ctx's error when ctx ends first.
func (g *Gate) Do(ctx context.Context, client string, urgent bool, f func()) error {
	ct := g.enter(client)
	if ct == nil {
		return ErrBusy
	}
	defer g.leave(client, ct)
	wctx, cancel := context.WithTimeout(ctx, g.wait)
	defer cancel()
	select {
	case ct.turn <- struct{}{}:
	case <-wctx.Done():
		return g.waitError(ctx)
	}
	defer func() { <-ct.turn }()
	if err := g.acquire(wctx, urgent); err != nil {
		return g.waitError(ctx)
	}
	defer g.release()
	f()
	return nil
}

func (g *Gate) waitError(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ErrBusy
}

func (g *Gate) enter(client string) *clientTurn {
	g.mu.Lock()
	defer g.mu.Unlock()
	ct := g.clients[client]
	if ct == nil {
		ct = &clientTurn{turn: make(chan struct{}, 1)}
		g.clients[client] = ct
	}
	if ct.in >= g.perClient {
		return nil
	}
	ct.in++
	return ct
}

func (g *Gate) leave(client string, ct *clientTurn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ct.in--; ct.in == 0 {
		delete(g.clients, client)
	}
}

// acquire takes a slot, waiting in the queue of its class when none is free.
func (g *Gate) acquire(ctx context.Context, urgent bool) error {
	class := 1
	if urgent {
		class = 0
	}
	g.mu.Lock()
	if g.running < g.slots && len(g.queue[0])+len(g.queue[1]) == 0 {
		g.running++
		g.mu.Unlock()
		return nil
	}
	w := make(chan struct{})
	g.queue[class] = append(g.queue[class], w)
	g.mu.Unlock()
	select {
	case <-w: // release handed its slot over
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		select {
		case <-w: // handed over while giving up: pass it on
			g.releaseLocked()
		default:
			g.queue[class] = slices.DeleteFunc(g.queue[class], func(x chan struct{}) bool { return x == w })
		}
		return ctx.Err()
	}
}

func (g *Gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.releaseLocked()
}

// releaseLocked hands the slot to the first waiter, urgent ones first, or frees it.
func (g *Gate) releaseLocked() {
	for class := range g.queue {
		if len(g.queue[class]) > 0 {
			w := g.queue[class][0]
			g.queue[class] = g.queue[class][1:]
			close(w)
			return
		}
	}
	g.running--
}
