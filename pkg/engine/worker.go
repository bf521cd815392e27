package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

// Task is what a step sees of the deployment it works on.
type Task struct {
	D   *store.Deployment
	Log *slog.Logger

	e            *Engine
	data         any // the process's step data (Process.NewData), nil when it keeps none
	lastProgress time.Time
	lastBytes    int64
}

// Data returns the step data of t's process, for the step to read and change: the engine
// saves it with the state's outcome, and gives it to the later states of the same run. T is
// the process's type (pkg/process, data.go); asking for another is a permanent error.
func Data[T any](t *Task) (*T, error) {
	v, ok := t.data.(*T)
	if !ok {
		return nil, Permanent(fmt.Errorf("engine: process %s keeps %T as step data, not %T", t.D.Process, t.data, v))
	}
	return v, nil
}

// loadData reads the process's step data from the deployment.
func (t *Task) loadData(p process.Process) error {
	if p.NewData == nil {
		return nil
	}
	t.data = p.NewData()
	if t.D.StepData == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(t.D.StepData), t.data); err != nil {
		return fmt.Errorf("the step data of process %s is unreadable: %w", p.Name, err)
	}
	return nil
}

// keepData puts what the step made of its data back in the deployment, to be saved.
func (t *Task) keepData() {
	if t.data == nil {
		return
	}
	b, err := json.Marshal(t.data)
	if err != nil {
		panic(fmt.Sprintf("engine: step data %T does not marshal: %v", t.data, err)) // its type is ours: a bug
	}
	t.D.StepData = string(b)
}

// Progress records how far a copy is; it is written to the database at most every
// Options.ProgressEvery, with the throughput since the previous write.
func (t *Task) Progress(ctx context.Context, done, total int64) error {
	now := t.e.clock.Now()
	if t.lastProgress.IsZero() {
		t.lastProgress, t.lastBytes = now, t.D.BytesDone
	}
	t.D.BytesDone, t.D.BytesTotal = done, total
	el := now.Sub(t.lastProgress)
	if el < t.e.o.ProgressEvery && done != total {
		return nil
	}
	if el > 0 {
		t.D.Throughput = int64(float64(done-t.lastBytes) / el.Seconds())
	}
	t.e.o.Observer.Progress(done - t.lastBytes)
	t.lastProgress, t.lastBytes = now, done
	return t.e.o.Store.SaveProgress(ctx, t.e.o.Owner, t.D)
}

// work advances one leased deployment as far as it can go now: states whose work is done
// follow one another at once; the first one that must wait, fails or times out ends the turn.
func (e *Engine) work(ctx context.Context, d *store.Deployment) {
	for !e.stopRequested() {
		if !e.step(ctx, d) {
			return
		}
	}
}

// step runs one state of d once and saves the outcome; it reports whether the next state
// can start right away.
func (e *Engine) step(ctx context.Context, d *store.Deployment) bool {
	p, ok := e.procs[d.Process]
	if !ok {
		return e.fail(ctx, d, fmt.Errorf("unknown process %q", d.Process))
	}
	st, ok := p.State(d.State)
	if !ok {
		return e.fail(ctx, d, fmt.Errorf("state %q is not part of process %s", d.State, d.Process))
	}
	if p.Terminal(d.State) {
		return false
	}
	log := e.deploymentLog(d)
	if d.Queued && !e.start(ctx, d, log) {
		return false
	}
	t := &Task{D: d, Log: log, e: e}
	if err := t.loadData(p); err != nil {
		return e.fail(ctx, d, err)
	}
	s := e.o.Steps[d.State]

	if !d.ExecDone {
		began := e.clock.Now()
		err := e.call(ctx, func(c context.Context) error { return s.Exec(c, t) })
		t.keepData()
		e.endWait(d, err, began)
		if err != nil {
			return e.retry(ctx, d, st, log, fmt.Errorf("%s: %w", d.State, err))
		}
		d.ExecDone = true
		e.answered(d, st)
	}
	var done bool
	began := e.clock.Now()
	err := e.call(ctx, func(c context.Context) error {
		var err error
		done, err = s.Post(c, t)
		return err
	})
	t.keepData()
	e.endWait(d, err, began)
	if err != nil {
		return e.retry(ctx, d, st, log, fmt.Errorf("%s: %w", d.State, err))
	}
	now := e.clock.Now()
	if !done && (st.Recover != "" || !e.rebootDue(d, st, now)) {
		// The node answered; in a state that does not drive it, the switch did unless a hard
		// reboot is due: that one has yet to get its answer.
		e.answered(d, st)
	}
	if done {
		ev := e.event(d, store.OutcomeDone, "", now)
		next, ok := p.Next(d.State)
		if !ok && p.Resumes {
			d.Process, next = d.ResumeProcess, d.ResumeState
			d.ResumeProcess, d.ResumeState = "", ""
		}
		e.enter(d, next, now)
		log.Info("state done", "next", next, "took", time.Duration(ev.DurationMS)*time.Millisecond)
		return e.save(ctx, d, ev, log, false)
	}
	elapsed := e.stateTime(d, st, now)
	switch {
	case st.Lost > 0 && elapsed >= st.Lost:
		return e.lose(ctx, d, fmt.Sprintf("no progress in %s after %s", d.State, elapsed.Round(time.Second)), log)
	case e.rebootDue(d, st, now):
		msg := fmt.Sprintf("%s not done after %s: hard reboot", d.State, elapsed.Round(time.Second))
		log.Warn(msg)
		err := e.call(ctx, func(c context.Context) error { return e.o.Rebooter.HardReboot(c, d) })
		if err != nil {
			return e.retry(ctx, d, st, log, fmt.Errorf("hard reboot: %w", err))
		}
		ev := e.event(d, store.OutcomeReboot, msg, now)
		e.answered(d, st)
		d.Rebooted, d.ExecDone = true, false
		d.NextCheckAt = now.Add(e.o.PollInterval)
		e.save(ctx, d, ev, log, true)
		return false
	}
	d.NextCheckAt = now.Add(e.o.PollInterval)
	e.save(ctx, d, nil, log, true)
	return false
}

// call runs f with the step deadline. A step that ignores its context is abandoned shortly
// after the deadline, so a hung driver never holds a worker for ever.
func (e *Engine) call(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, e.o.StepDeadline)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				res <- fmt.Errorf("step panicked: %v", r)
			}
		}()
		res <- f(ctx)
	}()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		select {
		case err := <-res:
			return err
		case <-time.After(2 * time.Second):
			e.abandons.Add(1)
			return fmt.Errorf("abandoned after %s: %w", e.o.StepDeadline, ctx.Err())
		}
	}
}

// start ends the wait of a request for a worker: the wait is recorded as a queued event and
// the state's clock starts now. It reports whether the deployment is still ours.
func (e *Engine) start(ctx context.Context, d *store.Deployment, log *slog.Logger) bool {
	now := e.clock.Now()
	ev := e.event(d, store.OutcomeQueued, "", now)
	if ev.DurationMS < 0 { // the web's clock is ahead of ours
		ev.EndedAt, ev.DurationMS = ev.StartedAt, 0
	}
	d.Queued, d.StateStartedAt = false, now
	return e.save(ctx, d, ev, log, false)
}

// enter puts d at the start of state.
func (e *Engine) enter(d *store.Deployment, state process.StateName, now time.Time) {
	d.State, d.StateStartedAt, d.NextCheckAt = state, now, now
	d.ExecDone, d.Rebooted, d.Failures, d.LastError, d.SilentSince, d.WaitingSince, d.WaitingFor = false, false, 0, "", nil, nil, ""
}

func (e *Engine) event(d *store.Deployment, outcome, msg string, now time.Time) *store.StateEvent {
	return &store.StateEvent{DeploymentID: d.ID, NodeID: d.NodeID, Process: d.Process, State: d.State,
		Outcome: outcome, Message: msg, StartedAt: d.StateStartedAt, EndedAt: now,
		DurationMS: now.Sub(d.StateStartedAt).Milliseconds()}
}

// retry records a failed attempt: a permanent error fails the deployment, a lost timeout
// loses it, anything else is tried again after a backoff.
func (e *Engine) retry(ctx context.Context, d *store.Deployment, st process.State, log *slog.Logger, err error) bool {
	if w := (waitError{}); errors.As(err, &w) {
		return e.wait(ctx, d, st, log, w.what)
	}
	if !errors.Is(err, store.ErrLeaseLost) && ctx.Err() == nil {
		e.o.Observer.StepError(d.Process, d.State, err)
	}
	if IsPermanent(err) {
		return e.fail(ctx, d, err)
	}
	if errors.Is(err, store.ErrLeaseLost) || ctx.Err() != nil {
		log.Info("turn abandoned", "err", err)
		return false
	}
	now := e.clock.Now()
	wait := e.backoff(d.Failures+1, err)
	if st.Recover == "" {
		// Not the node's fault: while its switch is silent, the state's own time stops
		// (stateTime), and the silence has a bound of its own.
		switch {
		case !IsSwitchSilent(err):
			e.answered(d, st)
		case d.SilentSince == nil:
			d.SilentSince = &now
		case now.Sub(*d.SilentSince) >= e.o.SwitchLimit:
			return e.lose(ctx, d, fmt.Sprintf("switch %s did not answer for %s during %s",
				d.Node.Switch.Name, now.Sub(*d.SilentSince).Round(time.Second), d.State), log)
		}
	}
	switch {
	case st.Lost > 0 && e.stateTime(d, st, now) >= st.Lost:
		return e.lose(ctx, d, err.Error(), log)
	case IsSilent(err) && st.Recover != "":
		cause := e.silent(ctx, d, log, now)
		if cause != "" {
			return e.recoverNode(ctx, d, st, log, cause, err)
		}
		// Look again soon enough to act on the limit, not a backoff after it.
		wait = min(wait, e.o.SilentLimit/4)
	}
	d.Failures++
	d.LastError = err.Error()
	d.NextCheckAt = now.Add(wait)
	log.Warn("attempt failed", "err", err, "failures", d.Failures, "retry_at", d.NextCheckAt)
	e.save(ctx, d, e.event(d, store.OutcomeRetry, err.Error(), now), log, true)
	return false
}

// wait keeps d in its state until its turn, the state's clock stopped: see Wait. A silence
// of its switch that stopped the clock already goes on: the wait did not ask the switch, and
// that silence keeps its own bound (SwitchLimit) until the switch answers.
func (e *Engine) wait(ctx context.Context, d *store.Deployment, st process.State, log *slog.Logger, what string) bool {
	now := e.clock.Now()
	if d.WaitingSince == nil && (d.SilentSince == nil || st.Recover != "") {
		d.WaitingSince, d.WaitingFor = &now, what
		log.Info("waiting", "for", what)
	}
	d.NextCheckAt = now.Add(e.o.PollInterval)
	e.save(ctx, d, nil, log, true)
	return false
}

// endWait ends d's wait for its turn once the step call that began at began went on (err is
// not a Wait): the state's clock starts again where it stopped, and runs from that call's
// start, which is the work done in the turn (a copy, a boot).
func (e *Engine) endWait(d *store.Deployment, err error, began time.Time) {
	if d.WaitingSince != nil && !IsWait(err) {
		d.StateStartedAt = d.StateStartedAt.Add(began.Sub(*d.WaitingSince))
		d.WaitingSince, d.WaitingFor = nil, ""
	}
}

// answered ends a silence: in a state that needs its node, the node's; otherwise its
// switch's, and then the state's clock moves past the silence, so that the state's limit
// counts only the time the switch answered.
func (e *Engine) answered(d *store.Deployment, st process.State) {
	if d.SilentSince != nil && st.Recover == "" {
		d.StateStartedAt = d.StateStartedAt.Add(e.clock.Now().Sub(*d.SilentSince))
	}
	d.SilentSince = nil
}

// stateTime is how long d has been in its state, without its wait for a turn or the silence
// of its switch going on now (those that ended were taken out of it by endWait and answered).
func (e *Engine) stateTime(d *store.Deployment, st process.State, now time.Time) time.Duration {
	switch {
	case d.WaitingSince != nil:
		return d.WaitingSince.Sub(d.StateStartedAt)
	case d.SilentSince != nil && st.Recover == "":
		return d.SilentSince.Sub(d.StateStartedAt)
	}
	return now.Sub(d.StateStartedAt)
}

// rebootDue reports whether the state has run past its time before a hard reboot, and not
// had the reboot yet.
func (e *Engine) rebootDue(d *store.Deployment, st process.State, now time.Time) bool {
	return st.BeforeReboot > 0 && !d.Rebooted && e.stateTime(d, st, now) >= st.BeforeReboot
}

// silent notes that d's node did not answer and says why it must be brought back now: its
// port is off, or it has been silent for SilentLimit; "" while it may still answer. A switch
// that does not answer says nothing about the node: the silence alone decides then.
func (e *Engine) silent(ctx context.Context, d *store.Deployment, log *slog.Logger, now time.Time) string {
	if d.SilentSince == nil {
		d.SilentSince = &now
	}
	if pr, ok := e.o.Rebooter.(PortReader); ok {
		var on bool
		err := e.call(ctx, func(c context.Context) error {
			var err error
			on, err = pr.PortOn(c, d)
			return err
		})
		switch {
		case err != nil:
			log.Warn("reading the node's port", "err", err)
		case !on:
			return fmt.Sprintf("%s's port was off during %s", d.Node.Name, d.State)
		}
	}
	if silent := now.Sub(*d.SilentSince); silent >= e.o.SilentLimit {
		return fmt.Sprintf("%s stopped answering during %s (silent for %s)", d.Node.Name, d.State, silent.Round(time.Second))
	}
	return ""
}

// recoverNode power-cycles a node that stopped answering and sends the deployment back to
// the boot its state needs (st.Recover), once per run: this is the deployment's hard reboot,
// and the wait it goes back to gets no other. A second time the node is lost. Every step of
// it is level-triggered: a pitasks that dies halfway leaves the deployment where it was, and
// the next attempt finds the node silent again.
func (e *Engine) recoverNode(ctx context.Context, d *store.Deployment, st process.State, log *slog.Logger, cause string, err error) bool {
	if d.NodeRecovered {
		return e.lose(ctx, d, cause+", again after its power cycle", log)
	}
	log.Warn("node lost: power-cycling it", "cause", cause, "err", err, "back_to", st.Recover)
	if rerr := e.call(ctx, func(c context.Context) error { return e.o.Rebooter.HardReboot(c, d) }); rerr != nil {
		d.Failures++
		d.LastError = fmt.Sprintf("%s; power-cycling it: %v", cause, rerr)
		d.NextCheckAt = e.clock.Now().Add(e.backoff(d.Failures, rerr))
		e.o.Observer.StepError(d.Process, d.State, rerr)
		e.save(ctx, d, e.event(d, store.OutcomeRetry, d.LastError, e.clock.Now()), log, true)
		return false
	}
	now := e.clock.Now()
	ev := e.event(d, store.OutcomeReboot, fmt.Sprintf("%s: power-cycled, back to %s", cause, st.Recover), now)
	e.enter(d, st.Recover, now)
	d.Rebooted, d.NodeRecovered = true, true
	d.LastError = ev.Message
	return e.save(ctx, d, ev, log, false)
}

// lose gives the deployment up as lost, remembering where to resume.
func (e *Engine) lose(ctx context.Context, d *store.Deployment, reason string, log *slog.Logger) bool {
	now := e.clock.Now()
	ev := e.event(d, store.OutcomeLost, reason, now)
	if p := e.procs[d.Process]; !p.Resumes {
		// Inside a reboot the resume point already says where the node was going back to.
		d.ResumeProcess, d.ResumeState = d.Process, d.State
	}
	d.State, d.LastError = process.Lost, reason
	log.Error("node lost", "reason", reason)
	e.save(ctx, d, ev, log, true)
	return false
}

// fail ends the deployment in state failed for a reason retrying cannot fix.
func (e *Engine) fail(ctx context.Context, d *store.Deployment, err error) bool {
	now := e.clock.Now()
	ev := e.event(d, store.OutcomeFailed, err.Error(), now)
	log := e.deploymentLog(d)
	d.ResumeProcess, d.ResumeState = d.Process, d.State
	d.State, d.LastError = process.Failed, err.Error()
	log.Error("deployment failed", "err", err)
	e.save(ctx, d, ev, log, true)
	return false
}

// save writes d's observed columns and ev; it reports whether the deployment is still ours.
// The last save of a turn releases the lease with it.
func (e *Engine) save(ctx context.Context, d *store.Deployment, ev *store.StateEvent, log *slog.Logger, last bool) bool {
	if err := e.saves.write(ctx, e, store.Save{D: d, Event: ev, Release: last}); err != nil {
		if errors.Is(err, store.ErrLeaseLost) {
			log.Info("deployment changed by a new request or leased elsewhere: leaving it")
		} else {
			log.Error("save", "err", err)
		}
		return false
	}
	if ev != nil {
		e.o.Observer.StateEnded(ev.Process, ev.State, ev.Outcome, time.Duration(ev.DurationMS)*time.Millisecond)
	}
	return true
}

// saveQueue groups the saves of the workers into transactions: while one is written, the
// saves that come wait and go together in the next, so many turns ending at once cost a few
// commits instead of one each.
type saveQueue struct {
	writing sync.Mutex // held by the worker writing a batch
	mu      sync.Mutex
	pending []*pendingSave
}

type pendingSave struct {
	ctx  context.Context
	s    store.Save
	done chan struct{} // closed once s.Err is known
}

// write queues s and returns its outcome, writing the queue itself when no one else does.
func (q *saveQueue) write(ctx context.Context, e *Engine, s store.Save) error {
	p := &pendingSave{ctx: ctx, s: s, done: make(chan struct{})}
	q.mu.Lock()
	q.pending = append(q.pending, p)
	q.mu.Unlock()
	q.writing.Lock()
	q.mu.Lock()
	batch := q.pending
	q.pending = nil
	q.mu.Unlock()
	if len(batch) > 0 {
		e.writeBatch(batch)
	}
	q.writing.Unlock()
	<-p.done // p went in this batch or in one written before this worker could write
	return p.s.Err
}

// writeBatch writes the saves whose worker still wants them in one transaction, by
// deployment id (the order of the store's other multi-row writes, so that two pitasks lock
// rows in the same order). A batch that fails as a whole (a deadlock, say) is written again
// one save at a time: one save's failure must not end the others' turns.
func (e *Engine) writeBatch(batch []*pendingSave) {
	live := make([]*pendingSave, 0, len(batch))
	for _, p := range batch {
		if p.s.Err = p.ctx.Err(); p.s.Err == nil {
			live = append(live, p)
		}
	}
	slices.SortFunc(live, func(a, b *pendingSave) int { return cmp.Compare(a.s.D.ID, b.s.D.ID) })
	saves := make([]store.Save, len(live))
	for i, p := range live {
		saves[i] = p.s
	}
	if err := e.saveObserved(saves); err != nil && len(saves) > 1 {
		e.log.Warn("saving a batch failed: saving one at a time", "saves", len(saves), "err", err)
		for i := range saves {
			_ = e.saveObserved(saves[i : i+1]) // the outcome is in its Err
		}
	}
	for i, p := range live {
		p.s.Err = saves[i].Err
	}
	for _, p := range batch {
		close(p.done)
	}
}

// saveObserved writes saves with a context of their own: not one worker's, whose end must not
// fail the others' saves, nor the batch's, whose deadline must not fail the saves one by one.
func (e *Engine) saveObserved(saves []store.Save) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Lease/3)
	defer cancel()
	return e.o.Store.SaveObserved(ctx, e.o.Owner, saves)
}
