package web

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/units"
)

func viewDeployment(d *store.Deployment, viewer *store.User, now time.Time) apijson.Deployment {
	v := apijson.Deployment{ID: d.ID, Name: d.Name, ReservationID: d.ReservationID, NodeID: d.NodeID, Node: d.Node.Name,
		NodeIP: d.Node.IP, NodeModel: d.Node.Model, EnvironmentID: d.EnvironmentID, Environment: d.Environment.Name,
		SSHUser: d.Environment.SSHUser, OSUpdate: d.OSUpdate, SystemSizeMiB: d.SystemSize, PublicKey: d.PublicKey,
		Process: d.Process, State: d.State, StateSince: d.StateStartedAt, Queued: d.Queued && d.Active(),
		Waiting:   d.WaitingSince != nil && d.Active(),
		LastError: d.LastError, BytesDone: d.BytesDone, BytesTotal: d.BytesTotal, EndsAt: d.Reservation.EndsAt,
		TimeZone: d.Reservation.TimeZone, UpdatedAt: d.UpdatedAt, Released: d.Released}
	if d.Reservation.EndedBy != 0 {
		v.EndReason = d.Reservation.EndReason
	}
	if v.Waiting {
		v.WaitingFor = d.WaitingFor
	}
	v.SSHHost, v.SSHPort = d.Node.IP, 22
	if d.Node.PublicIP != "" && d.Node.PublicPort != 0 {
		v.SSHHost, v.SSHPort = d.Node.PublicIP, d.Node.PublicPort
	}
	v.Label, v.StateClass = stateBadge(d.Process, d.State, v.Queued)
	st := stateOf(d.Process, d.State)
	v.Description = st.Description
	v.Reachable = st.Kind == process.OnCard
	if viewer != nil && viewer.ID == d.UserID && v.Reachable {
		v.OSPassword = d.SystemPassword
	}
	if d.Environment.Web && d.Node.IP != "" {
		v.WebURL = "http://" + d.Node.IP + "/"
	}
	v.Step, v.Steps, v.StepText = stepOf(d, v.Queued)
	v.Copying = st.Progress
	if d.BytesTotal > 0 {
		v.Percent = float64(d.BytesDone) * 100 / float64(d.BytesTotal)
		if v.Percent > 100 {
			v.Percent = 100
		}
		v.Percent = float64(int(v.Percent*10)) / 10
	}
	if v.Copying && d.Throughput > 0 {
		v.MiBps, v.Speed = units.MiBs(d.Throughput), units.Rate(d.Throughput)
		if left := d.BytesTotal - d.BytesDone; left > 0 {
			v.ETASeconds = left / d.Throughput
		}
	}
	sit := d.Situation(now)
	v.CanDestroy = process.Allowed(sit, process.ActDestroy) == nil
	v.CanRedeploy = process.Allowed(sit, process.ActRedeploy) == nil
	v.CanReboot = process.Allowed(sit, process.ActReboot) == nil
	v.CanSave = process.Allowed(sit, process.ActSave) == nil
	if d.Hold != "" {
		// Nothing runs: no step to count, and the reason where errors go.
		v.StateClass, v.Step, v.Steps, v.StepText, v.LastError = "warn", 0, 0, "", d.Hold
	}
	return v
}

// stateOf is the definition of state in process proc; the zero State (Working, no
// description) when it is none of proc's.
func stateOf(proc string, state process.StateName) process.State {
	p, err := process.Get(proc)
	if err != nil {
		return process.State{}
	}
	st, _ := p.State(state)
	return st
}

// stepOf is where d is in its process: the state it is in, or the one it stopped in when it
// is lost or failed (its resume point, when that is in the same process).
func stepOf(d *store.Deployment, queued bool) (step, steps int, text string) {
	proc, state := d.Process, d.State
	if d.State.Stopped() {
		if d.ResumeProcess != d.Process {
			return 0, 0, ""
		}
		state = d.ResumeState
	}
	p, err := process.Get(proc)
	if err != nil {
		return 0, 0, "not a process of this PiSeduce"
	}
	i := p.Index(state)
	if i < 0 {
		return 0, 0, string(state) + " is not a step of " + proc
	}
	step, steps = i+1, len(p.States)
	switch {
	case d.State.Stopped():
		text = fmt.Sprintf("stopped at step %d of %d: %s", step, steps, state)
	case queued:
		text = fmt.Sprintf("waiting for a worker, then step %d of %d", step, steps)
	case d.WaitingSince != nil:
		text = fmt.Sprintf("step %d of %d, waiting for %s", step, steps, cmp.Or(d.WaitingFor, "its turn"))
	default:
		text = fmt.Sprintf("step %d of %d", step, steps)
	}
	return step, steps, text
}

// stateBadge is the text and CSS class of a deployment's state badge; the class follows
// the state's Kind.
func stateBadge(proc string, state process.StateName, queued bool) (label, class string) {
	label = proc + ": " + string(state)
	if queued {
		label = proc + ": queued"
	}
	if proc == process.Deploy {
		label = strings.TrimPrefix(label, proc+": ")
	}
	p, err := process.Get(proc)
	kind := stateOf(proc, state).Kind
	switch {
	case state.Stopped():
		class = "bad"
	case err != nil || p.Index(state) < 0 || queued || kind == process.Released:
		class = "idle"
	case kind == process.OnCard || kind == process.OnNFS:
		class = "good"
	case proc == process.Destroy:
		class = "warn"
	default:
		class = "busy"
	}
	return label, class
}

// timelineStep is one state of the deployment's current process.
type timelineStep struct {
	State    string // a state's name, or "queued" for the wait for a worker
	Status   string // done, current, pending, failed, queued
	Duration string
}

// timeline lays the states of the deployment's process out in order with the time each one
// took, from the engine's events and, for the current one, the time since it started. A lost
// or failed deployment shows the process and state it stopped in, with the time that state
// ran until then; a wait for a worker comes first, as "queued". A state that is not one of
// its process's has no timeline.
func timeline(d *store.Deployment, events []store.StateEvent, now time.Time) []timelineStep {
	if d.Hold != "" {
		return nil // none of our processes is running it
	}
	proc, state := d.Process, d.State
	var stop *store.StateEvent // the event that gave the deployment up
	if d.State.Stopped() {
		for i := range events {
			if o := events[i].Outcome; o == store.OutcomeLost || o == store.OutcomeFailed {
				stop = &events[i]
			}
		}
		switch {
		case stop != nil:
			proc, state = stop.Process, stop.State
		case d.ResumeProcess != "":
			proc, state = d.ResumeProcess, d.ResumeState
		}
	}
	p, err := process.Get(proc)
	if err != nil || p.Index(state) < 0 {
		return nil
	}
	queued := d.Queued && d.Active()
	// Events come oldest first: the last "done" event of a state is from the latest run.
	took := map[process.StateName]int64{}
	var wait *store.StateEvent
	for i, ev := range events {
		switch {
		case ev.Process != proc:
		case ev.Outcome == store.OutcomeDone:
			took[ev.State] = ev.DurationMS
		case ev.Outcome == store.OutcomeQueued:
			wait = &events[i]
		}
	}
	var out []timelineStep
	switch {
	case queued:
		out = append(out, timelineStep{State: "queued", Status: "current", Duration: humanDuration(now.Sub(d.StateStartedAt))})
	case wait != nil:
		out = append(out, timelineStep{State: "queued", Status: "done", Duration: humanDuration(time.Duration(wait.DurationMS) * time.Millisecond)})
	}
	cur := p.Index(state)
	for i, st := range p.States {
		ts := timelineStep{State: string(st.Name), Status: "pending"}
		switch {
		case i < cur, i == cur && p.Terminal(st.Name):
			ts.Status = "done"
		case i == cur && d.State.Stopped():
			ts.Status = "failed"
			if stop != nil {
				ts.Duration = humanDuration(time.Duration(stop.DurationMS) * time.Millisecond)
			}
		case i == cur && !queued:
			ts.Status = "current"
			if !d.StateStartedAt.IsZero() {
				ts.Duration = humanDuration(now.Sub(d.StateStartedAt))
			}
		}
		if ms, ok := took[st.Name]; ok && ts.Status == "done" {
			ts.Duration = humanDuration(time.Duration(ms) * time.Millisecond)
		}
		out = append(out, ts)
	}
	return out
}
