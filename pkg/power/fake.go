package power

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Fake is an in-memory Controller for other packages' unit tests. It is safe
// for concurrent use, records every call, and can be told to fail or to hang
// (until the caller's context ends) for a port.
type Fake struct {
	mu     sync.Mutex
	ports  int // 0 = any port > 0
	master int
	state  map[int]PortStatus
	fail   map[int]error
	hang   map[int]bool
	calls  []Call
}

// Call is one recorded Fake call.
type Call struct {
	Op   string // "set" or "status"
	Port int
	On   bool // for "set"
	Err  error
}

var _ Controller = (*Fake)(nil)

// NewFake returns a fake switch with ports 1..ports (0 = no limit), all off;
// masterPort (0 = none) is refused by Set like the real driver does.
func NewFake(ports, masterPort int) *Fake {
	return &Fake{ports: ports, master: masterPort, state: map[int]PortStatus{}, fail: map[int]error{}, hang: map[int]bool{}}
}

func (f *Fake) init() {
	if f.state == nil {
		f.state, f.fail, f.hang = map[int]PortStatus{}, map[int]error{}, map[int]bool{}
	}
}

// Fail makes every call for port return err (nil clears it).
func (f *Fake) Fail(port int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if err == nil {
		delete(f.fail, port)
	} else {
		f.fail[port] = err
	}
}

// Hang makes calls for port block until their context ends (false clears it).
func (f *Fake) Hang(port int, hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.hang[port] = hang
}

// SetState sets a port's state directly (no call recorded).
func (f *Fake) SetState(port int, st PortStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.state[port] = st
}

// State returns a port's current state.
func (f *Fake) State(port int) PortStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state[port]
}

// Calls returns a copy of the recorded calls, in order.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Reset forgets the recorded calls.
func (f *Fake) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

func (f *Fake) begin(ctx context.Context, op string, port int, on bool) error {
	f.mu.Lock()
	f.init()
	hang := f.hang[port]
	f.mu.Unlock()
	var err error
	if hang {
		<-ctx.Done()
		err = fmt.Errorf("power.Fake: %s port %d: %w: %w", op, port, ErrNoAnswer, ctx.Err())
	} else if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("power.Fake: %s port %d: %w", op, port, cerr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		switch {
		case port < 1 || (f.ports > 0 && port > f.ports):
			err = fmt.Errorf("power.Fake: %s port %d: %w", op, port, ErrPortRange)
		case op == "set" && port == f.master:
			err = fmt.Errorf("power.Fake: %s port %d: %w", op, port, ErrMasterPort)
		case f.fail[port] != nil:
			err = f.fail[port]
		}
	}
	if err == nil && op == "set" {
		f.state[port] = PortStatus{On: on, Delivering: on}
	}
	f.calls = append(f.calls, Call{Op: op, Port: port, On: on, Err: err})
	return err
}

// Set implements Controller.
func (f *Fake) Set(ctx context.Context, port int, on bool) error {
	return f.begin(ctx, "set", port, on)
}

// Status implements Controller.
func (f *Fake) Status(ctx context.Context, port int) (PortStatus, error) {
	if err := f.begin(ctx, "status", port, false); err != nil {
		return PortStatus{}, err
	}
	return f.State(port), nil
}

// StatusAll implements Controller: ports 1..ports, or the ports set so far when the fake has
// no limit.
func (f *Fake) StatusAll(ctx context.Context) (map[int]PortStatus, error) {
	f.mu.Lock()
	n := f.ports
	if n == 0 {
		for p := range f.state {
			n = max(n, p)
		}
	}
	f.mu.Unlock()
	return statusEach(ctx, n, f.Status)
}

// Cycle implements Controller.
func (f *Fake) Cycle(ctx context.Context, port int, offFor time.Duration) error {
	return cycleBySet(ctx, f.Set, "fake", port, offFor)
}
