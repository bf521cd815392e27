package web

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

type deploymentData struct {
	D            apijson.Deployment
	Owner        string
	Mine         bool
	InitScript   string
	ScriptOutput string
	// PublicSSH and PublicWeb: how to reach the node from outside, when nginx publishes it.
	PublicSSH, PublicWeb string
	Timeline             []timelineStep
	Events               []store.StateEvent
	// For the admin's force-state form: the processes' states, and the engine's own.
	Processes []process.Process
	Stopped   []process.StateName
}

// showDeployment is one node's deployment: how to reach it, its password (owner only), the
// timeline of its states, the init script's output and the actions.
func (s *Server) showDeployment(c echo.Context) error {
	d, err := s.paramDeployment(c, true)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	evs, err := s.store.DeploymentEvents(ctx, d.ID)
	if err != nil {
		return err
	}
	u := currentUser(c)
	now := s.now()
	data := deploymentData{D: viewDeployment(d, u, now), Mine: d.UserID == u.ID, InitScript: d.InitScript,
		ScriptOutput: d.ScriptOutput, Timeline: timeline(d, evs, now), Events: evs}
	s.markQueued(ctx, &data.D)
	data.PublicSSH, data.PublicWeb = s.published(d, data.D)
	if u.Admin {
		owner, err := s.store.User(ctx, d.UserID)
		if err == nil {
			data.Owner = owner.DisplayName() + " <" + owner.Email + ">"
		}
		for _, name := range []string{process.Deploy, process.Destroy, process.Reboot, process.BootTest} {
			p, _ := process.Get(name)
			data.Processes = append(data.Processes, p)
		}
		data.Stopped = []process.StateName{process.Lost, process.Failed}
	}
	return s.render(c, http.StatusOK, "deployment", &page{Title: d.Name + " on " + d.Node.Name, Nav: "deployments", Data: data})
}

func (s *Server) deploymentAction(c echo.Context, a process.Action, done string) error {
	d, err := s.paramDeployment(c, false)
	if err != nil {
		return err
	}
	back := "/deployments"
	if c.FormValue("back") == "deployment" {
		back = "/deployments/" + strconv.Itoa(int(d.ID))
	}
	if err := s.request(c.Request().Context(), currentUser(c), d, a); err != nil {
		return s.redirectUserError(c, back, err)
	}
	return s.redirect(c, back, d.Node.Name+": "+done)
}

func (s *Server) rebootDeployment(c echo.Context) error {
	return s.deploymentAction(c, process.ActReboot, "hard reboot requested.")
}

func (s *Server) redeployDeployment(c echo.Context) error {
	return s.deploymentAction(c, process.ActRedeploy, "deploying again.")
}

func (s *Server) destroyDeployment(c echo.Context) error {
	return s.deploymentAction(c, process.ActDestroy, "being destroyed.")
}

// forceState is the admin's repair: put any deployment in a given process and state, with
// the reason recorded as an event.
func (s *Server) forceState(c echo.Context) error {
	d, err := byID(c, s.store.Deployment)
	if err != nil {
		return err
	}
	back := "/deployments/" + strconv.Itoa(int(d.ID))
	in := forceInput{Process: c.FormValue("process"), State: process.StateName(c.FormValue("state")), Reason: c.FormValue("reason")}
	if err := s.force(c, d, in); err != nil {
		return s.redirectUserError(c, back, err)
	}
	return s.redirect(c, back, "State forced to "+in.Process+"/"+string(in.State)+".")
}

type forceInput struct {
	Process string            `json:"process"`
	State   process.StateName `json:"state"`
	Reason  string            `json:"reason"`
}

func (s *Server) force(c echo.Context, d *store.Deployment, in forceInput) error {
	reason, err := oneLine("The reason", in.Reason, 1, 500)
	if err != nil {
		return err
	}
	p, err := process.Get(in.Process)
	if err != nil {
		return badInput("Unknown process %q.", in.Process)
	}
	if p.Index(in.State) < 0 && !in.State.Stopped() {
		return badInput("%q is not a state of %s.", in.State, p.Name)
	}
	u := currentUser(c)
	if err := s.store.ForceState(c.Request().Context(), d.ID, in.Process, in.State, "by "+u.DisplayName()+": "+reason); err != nil {
		return err
	}
	s.log.Warn("deployment state forced", "admin", u.ID, "deployment", d.ID, "process", in.Process, "state", in.State, "reason", reason)
	return nil
}
