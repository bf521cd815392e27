package process

// Action is something a user may request of a deployment.
type Action string

const (
	// ActReboot power-cycles the node and comes back to where it was (process Reboot).
	ActReboot Action = "reboot"
	// ActRedeploy deploys the node again from scratch (process Deploy).
	ActRedeploy Action = "redeploy"
	// ActDestroy wipes the node and powers it off (process Destroy).
	ActDestroy Action = "destroy"
	// ActSave saves the node's card as a new environment (process SaveEnv).
	ActSave Action = "save"
)

// Actions lists every action, in the order pages show them.
var Actions = []Action{ActReboot, ActRedeploy, ActSave, ActDestroy}

// Situation is what decides which actions a deployment allows.
type Situation struct {
	Process string
	State   StateName
	// ResumeProcess is where a reboot or a lost node goes back to (Deployment.ResumeProcess).
	ResumeProcess string
	// Held: the deployment came from the original PiSeduce in a state none of our processes
	// takes over; only a new deploy or a destroy gets it going (Deployment.Hold).
	Held bool
	// Running: the deployment's reservation has started and not ended.
	Running bool
}

// Allowed says what a user may request in situation s: the pages show these buttons, the
// API and the handlers refuse the others. A refusal says why (for the user), nil allows.
func Allowed(s Situation, a Action) *Refusal {
	var st State // the zero State, Working, when s.State is not one of its process's
	if p, err := Get(s.Process); err == nil {
		st, _ = p.State(s.State)
	}
	destroying := s.Process == Destroy && !s.State.Stopped() && !s.Held
	switch a {
	case ActDestroy:
		if destroying {
			return refuse("This node is already being destroyed.")
		}
		return nil
	case ActRedeploy:
		if !s.Running {
			return refuse("The reservation of this node is not running.")
		}
		return nil
	case ActReboot:
		switch {
		case !s.Running:
			return refuse("The reservation of this node is not running.")
		case s.Process == Destroy:
			return refuse("A destroyed node cannot be rebooted; deploy it again.")
		case s.Held:
			return refuse("This node came from the original PiSeduce in a state it cannot go back to: deploy it again, or destroy it.")
		case (s.State.Stopped() || s.Process == Reboot) && s.ResumeProcess == "":
			return refuse("This node has nothing to reboot back to yet.")
		}
		return nil
	case ActSave:
		switch {
		case !s.Running:
			return refuse("The reservation of this node is not running.")
		case s.Held || st.Kind != OnCard:
			return refuse("Only a deployed node can be saved as an environment.")
		}
		return nil
	}
	return refuse("Unknown action " + string(a) + ".")
}

// Refusal is why an action is not allowed, in words for the user.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return r.Reason }

func refuse(reason string) *Refusal { return &Refusal{Reason: reason} }

// Process is the process an action requests.
func (a Action) Process() string {
	switch a {
	case ActReboot:
		return Reboot
	case ActRedeploy:
		return Deploy
	case ActDestroy:
		return Destroy
	case ActSave:
		return SaveEnv
	}
	return ""
}
