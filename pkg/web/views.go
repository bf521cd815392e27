package web

import (
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

// deploymentView is a deployment as pages, the live-status JSON and the API show it. The OS
// password is filled in only for the deployment's owner.
type deploymentView struct {
	ID            uint      `json:"id"`
	Name          string    `json:"name"`
	ReservationID uint      `json:"reservation_id"`
	NodeID        uint      `json:"node_id"`
	Node          string    `json:"node"`
	NodeIP        string    `json:"node_ip"`
	NodeModel     string    `json:"node_model"`
	EnvironmentID uint      `json:"environment_id"`
	Environment   string    `json:"environment"`
	SSHUser       string    `json:"ssh_user"`
	WebURL        string    `json:"web_url,omitempty"`
	OSUpdate      bool      `json:"os_update"`
	SystemSizeMiB int64     `json:"system_size_mib"`
	PublicKey     string    `json:"public_key,omitempty"`
	OSPassword    string    `json:"os_password,omitempty"`
	Process       string    `json:"process"`
	State         string    `json:"state"`
	StateClass    string    `json:"state_class"`
	StateSince    time.Time `json:"state_since"`
	LastError     string    `json:"last_error,omitempty"`
	// Copy progress: Copying is true while the image is being written.
	Copying    bool    `json:"copying"`
	BytesDone  int64   `json:"bytes_done"`
	BytesTotal int64   `json:"bytes_total"`
	Percent    float64 `json:"percent"`
	MBps       float64 `json:"mb_per_s"`
	ETASeconds int64   `json:"eta_s"`
	// Step is the position of State in its process, for a coarse progress; Steps the count.
	Step  int `json:"step"`
	Steps int `json:"steps"`
	// Actions the owner may take now.
	CanReboot   bool      `json:"can_reboot"`
	CanRedeploy bool      `json:"can_redeploy"`
	CanDestroy  bool      `json:"can_destroy"`
	EndsAt      time.Time `json:"reservation_ends_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// copyStates are the deploy states during which the image copy progress means something.
var copyStates = map[string]bool{"env_copy": true, "env_check": true}

func viewDeployment(d *store.Deployment, viewer *store.User, now time.Time) deploymentView {
	v := deploymentView{ID: d.ID, Name: d.Name, ReservationID: d.ReservationID, NodeID: d.NodeID, Node: d.Node.Name,
		NodeIP: d.Node.IP, NodeModel: d.Node.Model, EnvironmentID: d.EnvironmentID, Environment: d.Environment.Name,
		SSHUser: d.Environment.SSHUser, OSUpdate: d.OSUpdate, SystemSizeMiB: d.SystemSize, PublicKey: d.PublicKey,
		Process: d.Process, State: d.State, StateClass: stateClass(d.Process, d.State), StateSince: d.StateStartedAt,
		LastError: d.LastError, BytesDone: d.BytesDone, BytesTotal: d.BytesTotal, EndsAt: d.Reservation.EndsAt,
		UpdatedAt: d.UpdatedAt}
	if viewer != nil && viewer.ID == d.UserID {
		v.OSPassword = d.SystemPassword
	}
	if d.Environment.Web && d.Node.IP != "" {
		v.WebURL = "http://" + d.Node.IP + "/"
	}
	if p, err := process.Get(d.Process); err == nil {
		v.Step, v.Steps = p.Index(d.State)+1, len(p.States)
	}
	v.Copying = d.Process == process.Deploy && copyStates[d.State]
	if d.BytesTotal > 0 {
		v.Percent = float64(d.BytesDone) * 100 / float64(d.BytesTotal)
		if v.Percent > 100 {
			v.Percent = 100
		}
		v.Percent = float64(int(v.Percent*10)) / 10
	}
	if v.Copying && d.Throughput > 0 {
		v.MBps = float64(d.Throughput*10/1e6) / 10
		if left := d.BytesTotal - d.BytesDone; left > 0 {
			v.ETASeconds = left / d.Throughput
		}
	}
	running := !d.Reservation.StartsAt.After(now) && d.Reservation.EndsAt.After(now)
	v.CanDestroy = !d.Destroying()
	v.CanRedeploy = running
	v.CanReboot = running && d.Process != process.Destroy && d.Hold == ""
	if d.Hold != "" {
		// Nothing runs: no step to count, and the reason where errors go.
		v.StateClass, v.Step, v.Steps, v.LastError = "warn", 0, 0, d.Hold
	}
	return v
}

// timelineStep is one state of the deployment's current process.
type timelineStep struct {
	State    string
	Status   string // done, current, pending, failed
	Duration string
}

// timeline lays the current process's states out in order with the time each one took, from
// the engine's events and, for the current one, the time since it started.
func timeline(d *store.Deployment, events []store.StateEvent, now time.Time) []timelineStep {
	if d.Hold != "" {
		return nil // none of our processes is running it
	}
	proc := d.Process
	state := d.State
	if (state == store.StateLost || state == store.StateFailed) && d.ResumeProcess != "" {
		proc, state = d.ResumeProcess, d.ResumeState
	}
	p, err := process.Get(proc)
	if err != nil {
		return nil
	}
	// Events come oldest first: the last "done" event of a state is from the latest run.
	took := map[string]int64{}
	for _, ev := range events {
		if ev.Process == proc && ev.Outcome == store.OutcomeDone {
			took[ev.State] = ev.DurationMS
		}
	}
	cur := p.Index(state)
	out := make([]timelineStep, len(p.States))
	for i, st := range p.States {
		ts := timelineStep{State: st.Name, Status: "pending"}
		switch {
		case i < cur:
			ts.Status = "done"
		case i == cur && p.Terminal(st.Name):
			ts.Status = "done"
		case i == cur:
			ts.Status = "current"
			if d.State == store.StateLost || d.State == store.StateFailed {
				ts.Status = "failed"
			}
			if !d.StateStartedAt.IsZero() {
				ts.Duration = humanDuration(now.Sub(d.StateStartedAt))
			}
		}
		if ms, ok := took[st.Name]; ok && ts.Status == "done" {
			ts.Duration = humanDuration(time.Duration(ms) * time.Millisecond)
		}
		out[i] = ts
	}
	return out
}
