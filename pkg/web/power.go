package web

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

// The frontend never talks to a switch. Port on / off / power-cycle, and reading the ports for
// the grid, are requests (store.PortRequest) that the page or the API writes and that pitasks
// carries out under its lease (pkg/requests); the page shows the pending request, then its
// outcome, and the grid shows the ports' states pitasks read last.

// portRequestView is a port request as the page and the API show it.
type portRequestView struct {
	ID        uint                    `json:"id"`
	SwitchID  uint                    `json:"switch_id"`
	Switch    string                  `json:"switch"`
	Port      int                     `json:"port,omitempty"`
	Action    string                  `json:"action"`
	State     string                  `json:"state"`
	Active    bool                    `json:"active"`
	Result    string                  `json:"result,omitempty"`
	Error     string                  `json:"error,omitempty"`
	States    map[int]store.PortState `json:"states,omitempty"`
	Attempts  int                     `json:"attempts"`
	CreatedAt time.Time               `json:"created_at"`
	StartedAt *time.Time              `json:"started_at,omitempty"`
	EndedAt   *time.Time              `json:"ended_at,omitempty"`
}

func viewPortRequest(r *store.PortRequest) (portRequestView, error) {
	states, err := r.PortStates()
	if err != nil {
		return portRequestView{}, err
	}
	v := portRequestView{ID: r.ID, SwitchID: r.SwitchID, Switch: r.Switch.Name, Port: r.Port, Action: r.Action, State: r.State,
		Active: r.State == store.RequestPending || r.State == store.RequestRunning, Error: r.Error, States: states,
		Attempts: r.Attempts, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, EndedAt: r.EndedAt}
	if st, ok := states[r.Port]; ok && r.Action != store.PortStatus {
		v.Result = fmt.Sprintf("Port %d is %s.", r.Port, onOff(st))
	} else if r.State == store.RequestDone {
		v.Result = fmt.Sprintf("%d ports read.", len(states))
	}
	return v, nil
}

func onOff(st store.PortState) string {
	s := "off"
	if st.On {
		s = "on"
	}
	if st.Detail != "" {
		s += " (" + st.Detail + ")"
	}
	return s
}

// requestPort writes admin's request: port on, off or cycle, or (store.PortStatus, port 0)
// read every port of sw. Bad ports (the pimaster's, out of range) are the store's to refuse.
func (s *Server) requestPort(c echo.Context, sw *store.Switch, port int, action string) (*store.PortRequest, error) {
	r, err := s.store.RequestPort(c.Request().Context(), sw.ID, port, action, currentUser(c).ID)
	if err != nil {
		return nil, err
	}
	r.Switch = *sw
	s.log.Info("port request written", "admin", currentUser(c).ID, "switch", sw.Name, "port", port, "action", action, "request", r.ID)
	return r, nil
}

// portStates is what pitasks read last of sw's ports: its newest status request, updated by
// the on / off / cycle requests that ended after it (recent, newest first).
type portStates struct {
	States map[int]store.PortState
	// ReadAt: when the newest status request ended (nil: never read).
	ReadAt *time.Time
	// Error: why pitasks could not read the switch, the last time it tried.
	Error string
	// Pending: the status request pitasks has not ended yet (0: none).
	Pending uint
}

func (s *Server) portStates(c echo.Context, sw *store.Switch, recent []store.PortRequest) (portStates, error) {
	ended, pending, err := s.store.LatestPortStatus(c.Request().Context(), sw.ID)
	if err != nil {
		return portStates{}, err
	}
	var out portStates
	if pending != nil {
		out.Pending = pending.ID
	}
	if ended == nil {
		return out, nil
	}
	out.ReadAt, out.Error = ended.EndedAt, ended.Error
	if out.States, err = ended.PortStates(); err != nil {
		return out, err
	}
	for i := len(recent) - 1; i >= 0; i-- {
		r := &recent[i]
		if r.State != store.RequestDone || r.EndedAt == nil || ended.EndedAt == nil || r.EndedAt.Before(*ended.EndedAt) {
			continue
		}
		states, err := r.PortStates()
		if err != nil {
			return out, err
		}
		if out.States == nil {
			out.States = map[int]store.PortState{}
		}
		for p, st := range states {
			out.States[p] = st
		}
	}
	return out, nil
}

// powerPort: POST /admin/switches/:id/ports/:port (action on, off or cycle) writes the request
// and shows it.
func (s *Server) powerPort(c echo.Context) error {
	sw, port, err := s.switchPort(c)
	if err != nil {
		return err
	}
	action := c.FormValue("action")
	if action == store.PortStatus {
		return s.redirectUserError(c, switchURL(sw), badInput("Unknown power action %q (on, off or cycle).", action))
	}
	r, err := s.requestPort(c, sw, port, action)
	if err != nil {
		return s.redirectUserError(c, switchURL(sw), err)
	}
	return s.redirect(c, "/admin/port-requests/"+strconv.Itoa(int(r.ID)), fmt.Sprintf("Port %d: %s requested.", port, action))
}

// readPorts: POST /admin/switches/:id/status asks pitasks to read every port; the switch page
// shows the request pending, then the states.
func (s *Server) readPorts(c echo.Context) error {
	sw, err := byID(c, s.store.Switch)
	if err != nil {
		return err
	}
	if _, err := s.requestPort(c, sw, 0, store.PortStatus); err != nil {
		return s.redirectUserError(c, switchURL(sw), err)
	}
	return s.redirect(c, switchURL(sw), "pitasks will read the ports of "+sw.Name+".")
}

func switchURL(sw *store.Switch) string { return "/admin/switches/" + strconv.Itoa(int(sw.ID)) }

func (s *Server) loadPortRequest(c echo.Context) (portRequestView, error) {
	r, err := byID(c, s.store.PortRequest)
	if err != nil {
		return portRequestView{}, err
	}
	return viewPortRequest(r)
}

// showPortRequest is one request, its state updated live by app.js until pitasks ends it.
func (s *Server) showPortRequest(c echo.Context) error {
	v, err := s.loadPortRequest(c)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("Port %d of %s: %s", v.Port, v.Switch, v.Action)
	if v.Action == store.PortStatus {
		title = "Reading the ports of " + v.Switch
	}
	return s.render(c, http.StatusOK, "admin_port_request", &page{Title: title, Nav: "admin", Data: v})
}

// portRequestStatus is the live feed of showPortRequest, and the API's GET of a request.
func (s *Server) portRequestStatus(c echo.Context) error {
	v, err := s.loadPortRequest(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// apiPowerPort: POST /api/v1/admin/switches/:id/ports/:port/on|off|cycle answers 202 with the
// request, to poll at its Location until it is no longer active.
func (s *Server) apiPowerPort(c echo.Context) error {
	sw, port, err := s.switchPort(c)
	if err != nil {
		return err
	}
	action := c.Param("action")
	if action != store.PortOn && action != store.PortOff && action != store.PortCycle {
		return echo.ErrNotFound
	}
	return s.apiRequestPort(c, sw, port, action)
}

// apiReadPorts: POST /api/v1/admin/switches/:id/status, as apiPowerPort for every port.
func (s *Server) apiReadPorts(c echo.Context) error {
	sw, err := byID(c, s.store.Switch)
	if err != nil {
		return err
	}
	return s.apiRequestPort(c, sw, 0, store.PortStatus)
}

func (s *Server) apiRequestPort(c echo.Context, sw *store.Switch, port int, action string) error {
	r, err := s.requestPort(c, sw, port, action)
	if err != nil {
		return httpError(err)
	}
	v, err := viewPortRequest(r)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/admin/port-requests/"+strconv.Itoa(int(r.ID)))
	return c.JSON(http.StatusAccepted, v)
}
