// Package engine is pitasks' reconcile loop. On every tick it leases the deployments that have
// work due, and a bounded pool of workers advances each one through its process: a state's
// Exec acts once, its Post polls until the state is done; a state that takes too long gets one
// hard reboot, then the node is lost. The engine knows states and timers only: what a state
// does on the hardware is a Step, given to it by the caller.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

// Step is the work of one state.
type Step interface {
	// Exec acts once when the state is entered, and again after a hard reboot. It must be
	// idempotent: a crash between Exec and the record of its end runs it again.
	Exec(ctx context.Context, t *Task) error
	// Post reports whether the state's work is done; it is called until it is.
	Post(ctx context.Context, t *Task) (bool, error)
}

// Rebooter power-cycles a node: the hard reboot given to a state that timed out.
type Rebooter interface {
	HardReboot(ctx context.Context, d *store.Deployment) error
}

// PortReader reads whether a node's port gives it power. A Rebooter that is one lets the
// engine tell a node switched off from one that hangs.
type PortReader interface {
	PortOn(ctx context.Context, d *store.Deployment) (bool, error)
}

// Clock tells the time; tests give a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now().UTC() }

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent wraps err so that the deployment fails at once (state failed) instead of retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Store is all the engine asks of the database: claim the deployments due and hold their
// leases, save what a step observed, and find the expired and the lost. *store.Store is it;
// a test may wrap one to make a call fail.
type Store interface {
	ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int, exclude []uint, into []store.Deployment) ([]store.Deployment, error)
	RenewLeases(ctx context.Context, owner string, ids []uint, until time.Time) error
	ReleaseLease(ctx context.Context, owner string, id uint) error
	ReleaseAll(ctx context.Context, owner string) error
	SaveObserved(ctx context.Context, owner string, saves []store.Save) error
	SaveProgress(ctx context.Context, owner string, d *store.Deployment) error
	ExpiredDeployments(ctx context.Context, now time.Time) ([]uint, error)
	RequestProcess(ctx context.Context, id uint, proc string) error
	MakeDue(ctx context.Context, id uint, now time.Time) (bool, error)
	LostDeployments(ctx context.Context) ([]uint, error)
	ResumeLost(ctx context.Context, id uint) error
	// The heartbeat, and the takeover of a stopped peer's leases.
	Beat(ctx context.Context, h *store.Heartbeat) error
	StopHeartbeat(ctx context.Context, owner, reason string, now time.Time) error
	Heartbeats(ctx context.Context) ([]store.Heartbeat, error)
	PruneHeartbeats(ctx context.Context, before time.Time) error
	TakeOver(ctx context.Context, taker string, now, cutoff time.Time, gone map[string]string, force bool) (store.TakenOver, error)
}

var _ Store = (*store.Store)(nil)

// silentError marks an error that says the node did not answer.
type silentError struct{ err error }

func (s silentError) Error() string { return s.err.Error() }
func (s silentError) Unwrap() error { return s.err }

// Silent wraps err, a step's failure to reach its node (refused, no route, no answer), so that
// a state that needs the node (process.State.Recover) brings it back: see Options.SilentLimit.
func Silent(err error) error {
	if err == nil {
		return nil
	}
	return silentError{err}
}

// IsSilent reports whether err was marked Silent.
func IsSilent(err error) bool {
	var s silentError
	return errors.As(err, &s)
}

// switchError marks an error that says the node's switch did not answer.
type switchError struct{ err error }

func (s switchError) Error() string { return s.err.Error() }
func (s switchError) Unwrap() error { return s.err }

// SwitchSilent wraps err, a step's or a hard reboot's failure to get an answer from the
// node's switch. That is not the node's fault: see Options.SwitchLimit.
func SwitchSilent(err error) error {
	if err == nil {
		return nil
	}
	return switchError{err}
}

// IsSwitchSilent reports whether err was marked SwitchSilent.
func IsSwitchSilent(err error) bool {
	var s switchError
	return errors.As(err, &s)
}

// waitError marks a step that could not go on before its turn.
type waitError struct{ what string }

func (w waitError) Error() string { return "waiting for " + w.what }

// Wait is what a step returns when it cannot go on before its turn at something this
// pitasks shares between nodes; what says it to the node's user ("its turn to boot") and is
// kept in Deployment.WaitingFor while it waits. The state's clock stops while it
// waits, so the wait costs it neither a hard reboot nor its limit: the turn is not the node's
// business. The step is tried again each PollInterval; it is not a failure.
func Wait(what string) error { return waitError{what} }

// IsWait reports whether err is a Wait.
func IsWait(err error) bool {
	var w waitError
	return errors.As(err, &w)
}

// Options configure an Engine. Zero values take the defaults in brackets.
type Options struct {
	Store    Store
	Steps    map[process.StateName]Step // every non-terminal state of every process needs one
	Rebooter Rebooter
	Log      *slog.Logger
	Clock    Clock // [real time]
	// Owner names this process in leases [a random id].
	Owner string
	// Workers is the number of deployments worked on at once [64]; a copy holds one for its
	// whole length, so it should exceed the number of nodes deployed together.
	Workers int
	// Lease is how long a claimed deployment stays ours without renewal [60s].
	Lease time.Duration
	// Tick is the time between two calls of Tick [2s]; each writes the heartbeat.
	Tick time.Duration
	// TakeoverAfter is how old a peer's heartbeat is when its leases are taken over
	// [3 ticks + 5s]; see heartbeat.go.
	TakeoverAfter time.Duration
	// StepDeadline bounds every Exec and Post call [30m].
	StepDeadline time.Duration
	// PollInterval is how soon a state whose Post said "not yet" is looked at again [1s].
	PollInterval time.Duration
	// MaxBackoff caps the wait after a failed attempt [1m].
	MaxBackoff time.Duration
	// ProgressEvery is the least time between two progress writes [1s].
	ProgressEvery time.Duration
	// SilentLimit is how long a node may fail to answer a state that needs it (its port on)
	// before it is power-cycled and booted again; a node whose port is off is at once [45s].
	SilentLimit time.Duration
	// SwitchRetry caps the wait before trying again a state whose switch did not answer, so
	// that the node goes on within seconds of the switch's return [3s].
	SwitchRetry time.Duration
	// SwitchLimit is how long a state that does not need its node (power, boot files, the
	// SSH waits) waits for a silent switch; that time does not count against the state's own
	// limit. After it, the deployment is lost, its reason naming the switch [5m].
	SwitchLimit time.Duration
	// Timeouts override the processes' default timeouts, by process and state.
	Timeouts map[process.Key]process.Timeout
	// Observer is told what happens, for metrics [none].
	Observer Observer
}

// Observer is told what the engine does, for metrics. Its methods are called from many
// workers at once and must return quickly.
type Observer interface {
	// StateEnded is called once a StateEvent is recorded: outcome is one of store.Outcome*,
	// d the time since the state started.
	StateEnded(process string, state process.StateName, outcome string, d time.Duration)
	// StepError is called for every failed Exec, Post or hard reboot, before it is retried,
	// failed or lost.
	StepError(process string, state process.StateName, err error)
	// Tick is called at the end of every tick that ran, with its wall-clock duration.
	Tick(d time.Duration)
	// Progress is called with the bytes copied since the previous write each time progress
	// is written.
	Progress(bytes int64)
}

type nopObserver struct{}

func (nopObserver) StateEnded(string, process.StateName, string, time.Duration) {}
func (nopObserver) StepError(string, process.StateName, error)                  {}
func (nopObserver) Tick(time.Duration)                                          {}
func (nopObserver) Progress(int64)                                              {}

// Engine runs deployments. Create it with New, call Tick periodically, Stop at the end.
type Engine struct {
	o        Options
	procs    map[string]process.Process
	log      *slog.Logger
	clock    Clock
	mu       sync.Mutex
	inflight map[uint]context.CancelFunc
	// unreleased are leases whose release failed (the database was down): each tick tries
	// again, or the deployment would wait for its own lease to run out.
	unreleased map[uint]bool
	// woken are deployments woken (Wake) while a worker had them: made due again when the
	// turn ends, as the turn's last save writes its own next check.
	woken    map[uint]bool
	stopping bool
	// claimMu serializes claims (a tick's, a wake's); claimWanted: a Wake asked for one while
	// another held claimMu, and the holder claims again once it lets go.
	claimMu     sync.Mutex
	claimWanted atomic.Bool
	wg          sync.WaitGroup
	tickMu      sync.Mutex
	base        context.Context
	cancel      context.CancelFunc
	renewal     chan struct{}
	hb          store.Heartbeat // this process, as its heartbeat describes it
	tickAt      time.Time       // the start of the last tick (Clock), under mu
	tickMono    time.Time       // the same (monotonic), under mu
	lastBeat    time.Time       // the start of the last tick whose heartbeat was written (monotonic), under mu
	beatMu      sync.Mutex      // one heartbeat written at a time
	beats       chan struct{}   // a token while beatPending is set, for beatLoop
	beatPending *beatRequest    // the heartbeat asked for and not taken up yet, under mu
	beatDone    chan struct{}   // closed once beatLoop returned
	saves       saveQueue
	// spare is the array of a claim whose workers are all done, for the next claim to fill
	// again (a busy pitasks claims as many deployments every tick), under mu. abandons counts
	// the steps call gave up on: such a step may still hold its deployment, whose claim's
	// array then is never reused.
	spare    []store.Deployment
	abandons atomic.Int64
}

// claimed is one claim's array of deployments while workers have them.
type claimed struct {
	ds       []store.Deployment
	left     int   // workers not done with theirs, under Engine.mu
	abandons int64 // Engine.abandons when claimed
}

// doneWith notes that a worker let go of its deployment of c; the last one makes c's array
// the next claim's, unless a step was abandoned since c was claimed.
func (e *Engine) doneWith(c *claimed) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.left--; c.left == 0 && e.abandons.Load() == c.abandons {
		e.spare = c.ds
	}
}

// New checks the options and returns an engine ready to Tick.
func New(o Options) (*Engine, error) {
	if o.Store == nil || o.Rebooter == nil {
		return nil, errors.New("engine: Store and Rebooter are required")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Owner == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		o.Owner = "pitasks-" + hex.EncodeToString(b)
	}
	setDefault(&o.Workers, 64)
	setDefault(&o.Lease, 60*time.Second)
	setDefault(&o.Tick, 2*time.Second)
	setDefault(&o.TakeoverAfter, 3*o.Tick+5*time.Second)
	setDefault(&o.StepDeadline, 30*time.Minute)
	setDefault(&o.PollInterval, time.Second)
	setDefault(&o.MaxBackoff, time.Minute)
	setDefault(&o.ProgressEvery, time.Second)
	setDefault(&o.SilentLimit, 45*time.Second)
	setDefault(&o.SwitchRetry, 3*time.Second)
	setDefault(&o.SwitchLimit, 5*time.Minute)
	procs, err := process.WithTimeouts(o.Timeouts)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	for _, p := range procs {
		for _, st := range p.States {
			if _, ok := o.Steps[st.Name]; !ok && !p.Terminal(st.Name) {
				return nil, fmt.Errorf("engine: no step for state %s of process %s", st.Name, p.Name)
			}
		}
	}
	base, cancel := context.WithCancel(context.Background())
	e := &Engine{o: o, procs: procs, log: o.Log, clock: o.Clock, inflight: map[uint]context.CancelFunc{}, unreleased: map[uint]bool{},
		woken: map[uint]bool{}, base: base, cancel: cancel, renewal: make(chan struct{}), beats: make(chan struct{}, 1), beatDone: make(chan struct{})}
	e.hb = e.newHeartbeat()
	go e.renewLeases()
	go e.fence()
	go e.beatLoop()
	return e, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Owner is the name this engine leases deployments under.
func (e *Engine) Owner() string { return e.o.Owner }

// Start writes the first heartbeat, takes over the leases of the pitasks that are gone, and
// resumes the deployments that were lost, as the original pitasks did when it started.
func (e *Engine) Start(ctx context.Context) error {
	e.noteTick()
	if err := e.beat(ctx); err != nil {
		return err
	}
	if err := e.o.Store.PruneHeartbeats(ctx, e.clock.Now().Add(-7*24*time.Hour)); err != nil {
		return err
	}
	gone, err := e.goneOnThisMachine(ctx)
	if err != nil {
		return err
	}
	if err := e.takeOver(ctx, gone, true); err != nil {
		return err
	}
	ids, err := e.o.Store.LostDeployments(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := e.o.Store.ResumeLost(ctx, id); err != nil {
			return err
		}
		e.log.Info("resuming lost deployment", "deployment", id)
	}
	return nil
}

// Tick does one round of the loop: the heartbeat is written (by beatLoop, unless it is late:
// see heartbeat.go), the leases of dead peers are taken over, reservations that ended are
// destroyed, then due deployments are leased and handed to free workers. It does not wait for
// the work: a slow node never holds up the next tick. A tick that starts while the previous
// one is still claiming returns at once.
func (e *Engine) Tick(ctx context.Context) error {
	if !e.tickMu.TryLock() {
		return nil
	}
	defer e.tickMu.Unlock()
	if e.stopRequested() {
		return nil
	}
	e.noteTick()
	var beat *beatRequest // nil: written already
	if e.beatLate() {
		if err := e.beat(ctx); err != nil {
			return err
		}
	} else {
		beat = e.beatSoon()
	}
	defer func(start time.Time) { e.o.Observer.Tick(time.Since(start)) }(time.Now())
	if err := e.takeOver(ctx, nil, false); err != nil {
		return err
	}
	if err := e.releaseAgain(ctx); err != nil {
		return err
	}
	now := e.clock.Now()
	expired, err := e.o.Store.ExpiredDeployments(ctx, now)
	if err != nil {
		return err
	}
	for _, id := range expired {
		if err := e.o.Store.RequestProcess(ctx, id, process.Destroy); err != nil {
			return err
		}
		e.log.Info("reservation ended: destroying", "deployment", id)
	}
	e.claimMu.Lock()
	err = e.claim(ctx, now, beat)
	e.claimMu.Unlock()
	if err != nil {
		return err
	}
	return e.claimAgain(ctx)
}

// claim leases the deployments due at now, as many as there are free workers, and starts a
// worker on each once beat, the tick's heartbeat, is written (nil: written already). The caller
// holds claimMu: two claims at once would start two workers on one deployment.
func (e *Engine) claim(ctx context.Context, now time.Time, beat *beatRequest) error {
	e.claimWanted.Store(false)
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		return nil
	}
	free := e.o.Workers - len(e.inflight)
	busy := make([]uint, 0, len(e.inflight))
	for id := range e.inflight {
		busy = append(busy, id)
	}
	into := e.spare
	e.spare = nil
	abandons := e.abandons.Load()
	e.mu.Unlock()
	ds, err := e.o.Store.ClaimDue(ctx, e.o.Owner, now, e.o.Lease, free, busy, into)
	if err != nil || len(ds) == 0 {
		e.mu.Lock()
		if e.spare == nil {
			e.spare = into
		}
		e.mu.Unlock()
		return err
	}
	if len(ds) > 0 && beat != nil {
		if err := e.waitBeat(ctx, beat); err != nil {
			e.mu.Lock()
			for i := range ds {
				e.unreleased[ds[i].ID] = true
			}
			e.mu.Unlock()
			return fmt.Errorf("heartbeat: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		// A wake's claim while Stop waits for the workers: no new one may start (Stop gives
		// these leases back, or they run out).
		return nil
	}
	c := &claimed{ds: ds, left: len(ds), abandons: abandons}
	for i := range ds {
		d := &ds[i] // not a copy: a Deployment is big, and ds is read once a tick
		wctx, cancel := context.WithCancel(e.base)
		e.inflight[d.ID] = cancel
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer e.doneWith(c) // d is not used after it
			e.work(wctx, d)
			cancel()
			e.mu.Lock()
			delete(e.inflight, d.ID)
			woken := e.woken[d.ID]
			delete(e.woken, d.ID)
			e.mu.Unlock()
			if woken {
				defer e.wakeIdle(d.ID)
			}
			if d.LeaseOwner == "" {
				return // given back with the turn's last save
			}
			// A fresh context: the lease must go back even while stopping.
			rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer rcancel()
			if err := e.o.Store.ReleaseLease(rctx, e.o.Owner, d.ID); err != nil {
				e.log.Warn("release lease: trying again next tick", "deployment", d.ID, "err", err)
				e.mu.Lock()
				e.unreleased[d.ID] = true
				e.mu.Unlock()
			}
		}()
	}
	return nil
}

// Wake makes deployment id due now and claims it at once, without waiting for the next
// tick: pitasks calls it when dnsmasq's log shows the deployment's node booting. It is a
// nudge, level-triggered: the step decides what is done, and a wake lost (or never sent)
// costs time only. A deployment being worked on is made due again when its turn ends.
func (e *Engine) Wake(ctx context.Context, id uint) error {
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		return nil
	}
	if e.inflight[id] != nil {
		e.woken[id] = true
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	if _, err := e.o.Store.MakeDue(ctx, id, e.clock.Now()); err != nil {
		return err
	}
	e.claimWanted.Store(true)
	return e.claimAgain(ctx)
}

// wakeIdle is Wake for a deployment whose turn has just ended, from its worker.
func (e *Engine) wakeIdle(id uint) {
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Lease/3)
	defer cancel()
	if err := e.Wake(ctx, id); err != nil {
		e.log.Warn("wake", "deployment", id, "err", err)
	}
}

// claimAgain claims what is due while a claim is wanted and no other claim holds claimMu;
// the holder, once it lets go, comes here too, so a wanted claim is never left behind.
// It waits for no heartbeat: with none written lately it claims nothing, and the next tick,
// which writes its own first, takes the wanted claim up.
func (e *Engine) claimAgain(ctx context.Context) error {
	for e.claimWanted.Load() && !e.stopRequested() && !e.beatLate() && e.claimMu.TryLock() {
		err := e.claim(ctx, e.clock.Now(), nil)
		e.claimMu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// releaseAgain gives back the leases whose release failed, unless their deployment is being
// worked on again.
func (e *Engine) releaseAgain(ctx context.Context) error {
	e.mu.Lock()
	var ids []uint
	for id := range e.unreleased {
		if e.inflight[id] == nil {
			ids = append(ids, id)
		}
	}
	e.mu.Unlock()
	for _, id := range ids {
		if err := e.o.Store.ReleaseLease(ctx, e.o.Owner, id); err != nil {
			return err
		}
		e.mu.Lock()
		delete(e.unreleased, id)
		e.mu.Unlock()
	}
	return nil
}

// Busy returns the number of deployments being worked on now.
func (e *Engine) Busy() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.inflight)
}

// Wait blocks until no deployment is being worked on (tests).
func (e *Engine) Wait() { e.wg.Wait() }

// Stop takes no new work, gives running steps until ctx ends to finish, then cancels them,
// waits for them to return (bounded) and gives back every lease.
func (e *Engine) Stop(ctx context.Context) {
	e.mu.Lock()
	e.stopping = true
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		e.log.Warn("stop: abandoning running steps", "running", e.Busy())
		e.cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
	e.cancel()
	close(e.renewal)
	<-e.beatDone // a heartbeat written after StopHeartbeat would say this process was taken over
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.o.Store.ReleaseAll(rctx, e.o.Owner); err != nil {
		e.log.Warn("stop: release leases", "err", err)
	}
	if err := e.o.Store.StopHeartbeat(rctx, e.o.Owner, "stopped", e.clock.Now()); err != nil {
		e.log.Warn("stop: heartbeat", "err", err)
	}
}

// renewLeases keeps the leases of running deployments alive, every third of the lease.
func (e *Engine) renewLeases() {
	t := time.NewTicker(e.o.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-e.renewal:
			return
		case <-t.C:
		}
		e.mu.Lock()
		ids := make([]uint, 0, len(e.inflight))
		for id := range e.inflight {
			ids = append(ids, id)
		}
		e.mu.Unlock()
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		ctx, cancel := context.WithTimeout(context.Background(), e.o.Lease/3)
		if err := e.o.Store.RenewLeases(ctx, e.o.Owner, ids, e.clock.Now().Add(e.o.Lease)); err != nil {
			e.log.Warn("renew leases", "err", err)
		}
		cancel()
	}
}

func (e *Engine) stopRequested() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopping
}

// backoff is the wait after the n-th failed attempt in a row, err: exponential, capped,
// jittered; a switch that did not answer is asked again within SwitchRetry.
func (e *Engine) backoff(n int, err error) time.Duration {
	d := time.Second << min(n, 10)
	d = min(d, e.o.MaxBackoff)
	if IsSwitchSilent(err) {
		d = min(d, e.o.SwitchRetry)
	}
	return d/2 + mrand.N(d/2+1)
}
