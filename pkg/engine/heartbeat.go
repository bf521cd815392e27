package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/version"
)

// The heartbeat and the takeover of a dead peer's leases.
//
// Every tick has this process's heartbeat written (store.Beat: the tick's start as LastTick),
// then frees the leases of the peers whose heartbeat is older than Options.TakeoverAfter
// (store.TakeOver), before claiming: a dead pitasks's deployments are picked up at the next
// tick of any live one, not when their leases run out. A pitasks that starts also frees at
// once the leases of a process of the same machine whose PID is gone (a crash and a restart,
// the usual case).
//
// The heartbeat is a commit (on MariaDB a disk flush): a tick hands it to its own goroutine
// (beatLoop) and goes on with its reads, so a tick that has nothing due writes nothing and
// does not wait for it. A tick that claimed work starts it only once its heartbeat is written,
// as before: its workers do not compete with it for the database, and a process whose
// heartbeat cannot be written runs nothing new (the claimed leases are given back at the next
// tick). A tick writes its heartbeat itself, before anything else, when none was written for
// half of fenceAfter (the first tick, a tick after a wedge or a database outage).
//
// A holder that is alive but late must never run a step that a peer took over. Writes are
// guarded by owner (SaveObserved, SaveProgress), so a step result is never written by a
// holder that lost the lease; and the step itself is stopped before a peer can take it:
// when this process has not written a heartbeat for fenceAfter (two thirds of TakeoverAfter,
// measured on its own monotonic clock from the start of the tick whose heartbeat was last
// written), it cancels
// everything it runs, as a peer may soon take it over. A beat that comes late but before
// that keeps its leases: the takeover is conditional on the heartbeat still being old.

// fenceAfter is how long after its last heartbeat this process stops its running steps.
func (e *Engine) fenceAfter() time.Duration { return e.o.TakeoverAfter * 2 / 3 }

// newHeartbeat describes this process for its heartbeat row.
func (e *Engine) newHeartbeat() store.Heartbeat {
	host, _ := os.Hostname()
	return store.Heartbeat{Owner: e.o.Owner, Host: host, PID: os.Getpid(), Version: version.Get().Version,
		Machine: machine(), TickMS: e.o.Tick.Milliseconds()}
}

// noteTick records the start of a tick: the time its heartbeat will say.
func (e *Engine) noteTick() {
	e.mu.Lock()
	e.tickAt, e.tickMono = e.clock.Now(), time.Now()
	e.mu.Unlock()
}

// beatLate reports whether no heartbeat was written for half of fenceAfter (or ever): the
// tick then writes its own before it claims.
func (e *Engine) beatLate() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastBeat.IsZero() || time.Since(e.lastBeat) > e.fenceAfter()/2
}

// beatRequest is a heartbeat asked of beatLoop by one tick or more; err is known once done
// is closed.
type beatRequest struct {
	done chan struct{}
	err  error
}

// beatSoon asks beatLoop for the heartbeat of the tick that just started: it joins the
// request not yet taken up, which writes the latest tick.
func (e *Engine) beatSoon() *beatRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.beatPending == nil {
		e.beatPending = &beatRequest{done: make(chan struct{})}
		e.beats <- struct{}{} // never blocks: a token is in the buffer only while a request is pending
	}
	return e.beatPending
}

// waitBeat waits for r, a heartbeat asked for by this tick.
func (e *Engine) waitBeat(ctx context.Context, r *beatRequest) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	case <-e.base.Done():
		return errors.New("engine: stopping")
	}
}

// beatLoop writes the heartbeats the ticks ask for, until the engine stops.
func (e *Engine) beatLoop() {
	defer close(e.beatDone)
	for {
		select {
		case <-e.renewal:
			return
		case <-e.beats:
		}
		e.mu.Lock()
		r := e.beatPending
		e.beatPending = nil
		e.mu.Unlock()
		ctx, cancel := context.WithTimeout(e.base, e.fenceAfter())
		r.err = e.beat(ctx)
		cancel()
		if r.err != nil && e.base.Err() == nil {
			e.log.Warn("heartbeat", "err", r.err)
		}
		close(r.done)
	}
}

// beat writes the heartbeat of the last tick; when a peer took this process for dead, what it
// still runs is cancelled (the peer may be running it now).
func (e *Engine) beat(ctx context.Context) error {
	e.beatMu.Lock()
	defer e.beatMu.Unlock()
	e.mu.Lock()
	hb := e.hb
	hb.LastTick, hb.Leases = e.tickAt, len(e.inflight)
	tick := e.tickMono
	e.mu.Unlock()
	err := e.o.Store.Beat(ctx, &hb)
	if errors.Is(err, store.ErrTakenOver) {
		e.log.Warn("a peer took this pitasks for dead and took its leases: abandoning what it runs", "err", err)
		e.cancelAll()
		err = nil
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	if tick.After(e.lastBeat) {
		e.lastBeat = tick
	}
	e.mu.Unlock()
	return nil
}

// takeOver frees the leases of the peers that stopped beating (and, at start, of those gone).
func (e *Engine) takeOver(ctx context.Context, gone map[string]string, force bool) error {
	now := e.clock.Now()
	t, err := e.o.Store.TakeOver(ctx, e.o.Owner, now, now.Add(-e.o.TakeoverAfter), gone, force)
	if err != nil {
		return err
	}
	if len(t.Owners) > 0 || t.Deployments+t.Discoveries+t.Ports > 0 {
		e.log.Warn("took over the leases of stopped pitasks", "dead", strings.Join(t.Owners, ","),
			"deployments", t.Deployments, "discovery_runs", t.Discoveries, "port_requests", t.Ports)
	}
	return nil
}

// goneOnThisMachine returns the peers that ran on this machine and whose process is gone,
// with why: a restart after a crash need not wait for their heartbeat to go stale.
func (e *Engine) goneOnThisMachine(ctx context.Context) (map[string]string, error) {
	hs, err := e.o.Store.Heartbeats(ctx)
	if err != nil {
		return nil, err
	}
	gone := map[string]string{}
	for _, h := range hs {
		if h.StoppedAt != nil || h.Owner == e.o.Owner || h.Machine == "" || h.Machine != e.hb.Machine {
			continue
		}
		if h.PID == os.Getpid() || !processExists(h.PID) {
			gone[h.Owner] = fmt.Sprintf("process %d on %s is gone: taken over by %s", h.PID, h.Host, e.o.Owner)
		}
	}
	return gone, nil
}

// processExists reports whether a process pid exists (signal 0: EPERM means it does).
func processExists(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// machine names this boot of this host and its PID namespace: two processes with the same
// machine see each other's PIDs. Empty when unknown (no /proc).
func machine() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(boot)) + "/" + ns
}

// fence cancels everything this process runs once its heartbeat is fenceAfter old, until
// it beats again; it runs until the engine stops.
func (e *Engine) fence() {
	t := time.NewTicker(max(e.o.Tick/4, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-e.renewal:
			return
		case <-t.C:
		}
		e.mu.Lock()
		last, running := e.lastBeat, len(e.inflight)
		e.mu.Unlock()
		if late := time.Since(last); !last.IsZero() && late > e.fenceAfter() && running > 0 {
			e.log.Warn("no heartbeat written for too long: abandoning running steps, a peer may take them over",
				"since", late.Round(time.Millisecond), "running", running)
			e.cancelAll()
		}
	}
}

// cancelAll cancels every running deployment's context; their workers give the leases back.
func (e *Engine) cancelAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, cancel := range e.inflight {
		cancel()
	}
}
