package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/power/powerconf"
	"github.com/piseduce/piseduce/pkg/store"
)

// switchInput is the switch form. The secrets (community, SNMPv3 passwords) are write-only:
// empty keeps the stored value.
type switchInput struct {
	Name        string `json:"name"`
	IP          string `json:"ip"`
	SNMPPort    int    `json:"snmp_port"`
	SNMPVersion string `json:"snmp_version"`
	Community   string `json:"community"`
	V3User      string `json:"v3_user"`
	V3AuthProto string `json:"v3_auth_proto"`
	V3AuthPass  string `json:"v3_auth_pass"`
	V3PrivProto string `json:"v3_priv_proto"`
	V3PrivPass  string `json:"v3_priv_pass"`
	PortCount   int    `json:"port_count"`
	MasterPort  int    `json:"master_port"`
	OID         string `json:"oid"`
	OIDOffset   int    `json:"oid_offset"`
	// Driver is the power driver's kind (snmp when empty); the other kinds' settings are
	// powerconf.Settings, whose keys ("command") are this object's.
	Driver string `json:"driver"`
	powerconf.Settings
}

// apply writes in over sw; the store validates the result.
func (in switchInput) apply(sw *store.Switch) {
	sw.Name, sw.IP, sw.SNMPPort, sw.SNMPVersion = in.Name, in.IP, in.SNMPPort, in.SNMPVersion
	sw.V3User, sw.V3AuthProto, sw.V3PrivProto = in.V3User, in.V3AuthProto, in.V3PrivProto
	sw.PortCount, sw.MasterPort, sw.OID, sw.OIDOffset = in.PortCount, in.MasterPort, in.OID, in.OIDOffset
	sw.Driver, sw.Power = in.Driver, in.Settings
	if in.Community != "" {
		sw.Community = in.Community
	}
	if in.V3AuthPass != "" {
		sw.V3AuthPass = in.V3AuthPass
	}
	if in.V3PrivPass != "" {
		sw.V3PrivPass = in.V3PrivPass
	}
}

func (s *Server) showAdminSwitches(c echo.Context) error {
	sws, err := s.store.Switches(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_switches", &page{Title: "Switches", Nav: "admin", Data: sws})
}

type switchFormData struct {
	Switch store.Switch
	Form   switchInput
	New    bool
}

// Drivers are the power driver kinds the form offers.
func (switchFormData) Drivers() []string { return powerconf.Drivers() }

func switchForm(sw *store.Switch) switchInput {
	return switchInput{Name: sw.Name, IP: sw.IP, SNMPPort: sw.SNMPPort, SNMPVersion: sw.SNMPVersion, V3User: sw.V3User,
		V3AuthProto: sw.V3AuthProto, V3PrivProto: sw.V3PrivProto, PortCount: sw.PortCount, MasterPort: sw.MasterPort,
		OID: sw.OID, OIDOffset: sw.OIDOffset, Driver: sw.Driver, Settings: sw.Power}
}

// showSwitchForm is the add (/admin/switches/new) or edit form.
func (s *Server) showSwitchForm(c echo.Context) error {
	d := switchFormData{New: c.Param("id") == ""}
	if d.New {
		d.Switch = store.Switch{Driver: powerconf.DriverSNMP, SNMPVersion: "2c", PortCount: 8, OID: powerconf.PethPsePortAdminEnable}
	} else {
		sw, err := byID(c, s.store.Switch)
		if err != nil {
			return err
		}
		d.Switch = *sw
	}
	d.Form = switchForm(&d.Switch)
	return s.render(c, http.StatusOK, "admin_switch_form", &page{Title: "Switch", Nav: "admin", Data: d})
}

func bindSwitchForm(c echo.Context) switchInput {
	atoi := func(k string) int { n, _ := strconv.Atoi(strings.TrimSpace(c.FormValue(k))); return n }
	return switchInput{Name: strings.TrimSpace(c.FormValue("name")), IP: strings.TrimSpace(c.FormValue("ip")),
		SNMPPort: atoi("snmp_port"), SNMPVersion: c.FormValue("snmp_version"), Community: c.FormValue("community"),
		V3User: c.FormValue("v3_user"), V3AuthProto: c.FormValue("v3_auth_proto"), V3AuthPass: c.FormValue("v3_auth_pass"),
		V3PrivProto: c.FormValue("v3_priv_proto"), V3PrivPass: c.FormValue("v3_priv_pass"), PortCount: atoi("port_count"),
		MasterPort: atoi("master_port"), OID: strings.TrimSpace(c.FormValue("oid")), OIDOffset: atoi("oid_offset"),
		Driver: c.FormValue("driver"), Settings: powerconf.Settings{Command: powerconf.Command{On: argv(c.FormValue("command_on")),
			Off: argv(c.FormValue("command_off")), Status: argv(c.FormValue("command_status")),
			Cycle: argv(c.FormValue("command_cycle")), StatusOn: c.FormValue("command_status_on"),
			StatusOff: c.FormValue("command_status_off"), Timeout: atoi("command_timeout")}}}
}

// argv reads a command from a text area: one argument per line, blank lines skipped. An
// argument is never split at spaces: no shell ever reads it.
func argv(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSuffix(line, "\r"); strings.TrimSpace(line) != "" {
			out = append(out, line)
		}
	}
	return out
}

// saveSwitch creates (POST /admin/switches) or updates (POST /admin/switches/:id) a switch.
func (s *Server) saveSwitch(c echo.Context) error {
	ctx := c.Request().Context()
	sw, err := formRecord(c, s.store.Switch)
	if err != nil {
		return err
	}
	d := switchFormData{Switch: *sw, New: c.Param("id") == ""}
	d.Form = bindSwitchForm(c)
	d.Form.apply(&d.Switch)
	if _, err = createOrUpdate(ctx, d.New, &d.Switch, s.store.CreateSwitch, s.store.UpdateSwitch); err != nil {
		msg, code, ok := userMessage(err)
		if !ok {
			return err
		}
		d.Form.Community, d.Form.V3AuthPass, d.Form.V3PrivPass = "", "", ""
		return s.render(c, code, "admin_switch_form", &page{Title: "Switch", Nav: "admin", Error: msg, Data: d})
	}
	return s.redirect(c, "/admin/switches/"+strconv.Itoa(int(d.Switch.ID)), "Switch "+d.Switch.Name+" saved.")
}

func (s *Server) deleteSwitch(c echo.Context) error {
	return s.deleteByID(c, s.store.DeleteSwitch, "/admin/switches", "Switch deleted.")
}

// portView is one port of the PoE grid.
type portView struct {
	Port   int
	Node   *store.Node
	Master bool
	Known  bool
	State  store.PortState
}

type switchPortsData struct {
	Switch store.Switch
	Ports  []portView
	Runs   []store.DiscoveryRun
	// Read: the ports' states as pitasks read them last, and its pending status request.
	Read portStates
	// Requests: the latest on / off / cycle requests, newest first.
	Requests []portRequestView
}

// switchPorts loads the switch named by :id and the states pitasks read of its ports.
func (s *Server) switchPorts(c echo.Context) (switchPortsData, error) {
	ctx := c.Request().Context()
	sw, err := byID(c, s.store.Switch)
	if err != nil {
		return switchPortsData{}, err
	}
	nodes, err := s.store.Nodes(ctx)
	if err != nil {
		return switchPortsData{}, err
	}
	byPort := map[int]*store.Node{}
	for i := range nodes {
		if nodes[i].SwitchID == sw.ID {
			byPort[nodes[i].Port] = &nodes[i]
		}
	}
	d := switchPortsData{Switch: *sw}
	recent, err := s.store.PortRequests(ctx, sw.ID, 10)
	if err != nil {
		return d, err
	}
	for i := range recent {
		recent[i].Switch = *sw
		v, err := viewPortRequest(&recent[i])
		if err != nil {
			return d, err
		}
		d.Requests = append(d.Requests, v)
	}
	if d.Read, err = s.portStates(c, sw, recent); err != nil {
		return d, err
	}
	for p := 1; p <= sw.PortCount; p++ {
		pv := portView{Port: p, Node: byPort[p], Master: p == sw.MasterPort}
		pv.State, pv.Known = d.Read.States[p]
		d.Ports = append(d.Ports, pv)
	}
	return d, nil
}

// showSwitchPorts is the PoE port grid of a switch: each port's node and power as pitasks read
// them, with on / off / power-cycle buttons (not for the pimaster's port).
func (s *Server) showSwitchPorts(c echo.Context) error {
	d, err := s.switchPorts(c)
	if err != nil {
		return err
	}
	if d.Runs, err = s.store.DiscoveryRuns(c.Request().Context(), d.Switch.ID, 5); err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_switch", &page{Title: "Switch " + d.Switch.Name, Nav: "admin", Data: d})
}

// switchPort loads the switch named by :id and reads the :port number; a port that is not a
// number is a 404.
func (s *Server) switchPort(c echo.Context) (*store.Switch, int, error) {
	sw, err := byID(c, s.store.Switch)
	if err != nil {
		return nil, 0, err
	}
	port, err := strconv.Atoi(c.Param("port"))
	if err != nil {
		return nil, 0, echo.ErrNotFound
	}
	return sw, port, nil
}
