package web

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

// Node discovery ("analyze ports") powers the ports of a switch one by one and registers the
// Raspberry Pi found on each. It needs the pimaster's DHCP log, TFTP folder and SSH key, so
// pitasks runs it: the page writes a request (store.DiscoveryRun) and shows its output live.

// parsePorts reads "1-4, 7" into port numbers of sw (not the pimaster's); "" means every port
// without a node, decided by pitasks.
func parsePorts(text string, sw *store.Switch) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		lo, hi, isRange := strings.Cut(f, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a > b {
			return nil, badInput("Ports look like 1-4, 7 (or leave empty for every port without a node).")
		}
		for p := a; p <= b; p++ {
			if p < 1 || p > sw.PortCount {
				return nil, badInput("Switch %s has ports 1 to %d.", sw.Name, sw.PortCount)
			}
			if p == sw.MasterPort {
				return nil, badInput("Port %d is the pimaster's.", p)
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Ints(out)
	return out, nil
}

func (s *Server) requestDiscovery(c echo.Context, sw *store.Switch, ports []int) (*store.DiscoveryRun, error) {
	r, err := s.store.RequestDiscovery(c.Request().Context(), sw.ID, ports, currentUser(c).ID)
	if err == store.ErrInUse {
		return nil, conflict("A discovery is already under way on switch %s.", sw.Name)
	}
	if err == nil {
		s.log.Info("node discovery requested", "admin", currentUser(c).ID, "switch", sw.Name, "ports", r.Ports)
	}
	return r, err
}

// startDiscovery: POST /admin/switches/:id/discover.
func (s *Server) startDiscovery(c echo.Context) error {
	sw, err := byID(c, s.store.Switch)
	if err != nil {
		return err
	}
	back := "/admin/switches/" + strconv.Itoa(int(sw.ID))
	ports, err := parsePorts(c.FormValue("ports"), sw)
	if err == nil {
		var r *store.DiscoveryRun
		if r, err = s.requestDiscovery(c, sw, ports); err == nil {
			return s.redirect(c, "/admin/discovery/"+strconv.Itoa(int(r.ID)), "Discovery requested.")
		}
	}
	return s.redirectUserError(c, back, err)
}

// discoveryView is a run as the page and the API show it.
type discoveryView struct {
	ID        uint       `json:"id"`
	SwitchID  uint       `json:"switch_id"`
	Switch    string     `json:"switch"`
	Ports     string     `json:"ports"`
	State     string     `json:"state"`
	Output    string     `json:"output"`
	Error     string     `json:"error,omitempty"`
	Active    bool       `json:"active"`
	CreatedAt time.Time  `json:"created_at"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
}

func viewDiscovery(r *store.DiscoveryRun) discoveryView {
	return discoveryView{ID: r.ID, SwitchID: r.SwitchID, Switch: r.Switch.Name, Ports: r.Ports, State: r.State, Output: r.Output,
		Error: r.Error, Active: r.State == store.DiscoveryRequested || r.State == store.DiscoveryRunning,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, EndedAt: r.EndedAt}
}

// showDiscovery is one run with its output, updated live by app.js.
func (s *Server) showDiscovery(c echo.Context) error {
	r, err := byID(c, s.store.DiscoveryRun)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_discovery", &page{Title: "Discovery on " + r.Switch.Name, Nav: "admin", Data: viewDiscovery(r)})
}

// discoveryStatus is the live feed of showDiscovery.
func (s *Server) discoveryStatus(c echo.Context) error {
	r, err := byID(c, s.store.DiscoveryRun)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewDiscovery(r))
}

func (s *Server) apiStartDiscovery(c echo.Context) error {
	sw, err := byID(c, s.store.Switch)
	if err != nil {
		return err
	}
	var in struct {
		Ports []int `json:"ports"`
	}
	if c.Request().ContentLength != 0 {
		if err := bindJSON(c, &in); err != nil {
			return err
		}
	}
	list := make([]string, len(in.Ports))
	for i, p := range in.Ports {
		list[i] = strconv.Itoa(p)
	}
	ports, err := parsePorts(strings.Join(list, ","), sw)
	if err != nil {
		return httpError(err)
	}
	r, err := s.requestDiscovery(c, sw, ports)
	if err != nil {
		return httpError(err)
	}
	r.Switch = *sw
	return c.JSON(http.StatusAccepted, viewDiscovery(r))
}

func (s *Server) apiDiscovery(c echo.Context) error { return s.discoveryStatus(c) }
