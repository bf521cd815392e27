package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/power/powerconf"
	"github.com/piseduce/piseduce/pkg/store"
)

type userJSON struct {
	ID             uint      `json:"id"`
	Email          string    `json:"email"`
	FirstName      string    `json:"first_name"`
	LastName       string    `json:"last_name"`
	EmailConfirmed bool      `json:"email_confirmed"`
	Authorized     bool      `json:"authorized"`
	Admin          bool      `json:"admin"`
	CreatedAt      time.Time `json:"created_at"`
}

func (s *Server) apiAdminUsers(c echo.Context) error {
	us, err := s.store.Users(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]userJSON, len(us))
	for i, u := range us {
		out[i] = userJSON{ID: u.ID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
			EmailConfirmed: u.EmailConfirmed, Authorized: u.Authorized, Admin: u.Admin, CreatedAt: u.CreatedAt}
	}
	return c.JSON(http.StatusOK, map[string]any{"users": out})
}

func (s *Server) apiUserAction(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		msg, err := s.userAction(c, action)
		if err != nil {
			return httpError(err)
		}
		return c.JSON(http.StatusOK, map[string]string{"status": msg})
	}
}

func (s *Server) apiApproveUser(c echo.Context) error { return s.apiUserAction("approve")(c) }
func (s *Server) apiRevokeUser(c echo.Context) error  { return s.apiUserAction("revoke")(c) }
func (s *Server) apiMakeAdmin(c echo.Context) error   { return s.apiUserAction("admin")(c) }
func (s *Server) apiUnmakeAdmin(c echo.Context) error { return s.apiUserAction("unadmin")(c) }
func (s *Server) apiDeleteUser(c echo.Context) error  { return s.apiUserAction("delete")(c) }

// apiGiveOneTimePassword answers the new one-time password of the user, once.
func (s *Server) apiGiveOneTimePassword(c echo.Context) error {
	otp, err := s.newOneTimePassword(c)
	if err != nil {
		return httpError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"user_id": otp.User.ID, "email": otp.User.Email,
		"one_time_password": otp.Password, "must_change_password": true})
}

// switchJSON never carries the community or SNMPv3 passwords, only whether they are set.
type switchJSON struct {
	ID            uint   `json:"id"`
	Name          string `json:"name"`
	IP            string `json:"ip"`
	SNMPPort      int    `json:"snmp_port"`
	SNMPVersion   string `json:"snmp_version"`
	HasCommunity  bool   `json:"has_community"`
	V3User        string `json:"v3_user,omitempty"`
	V3AuthProto   string `json:"v3_auth_proto,omitempty"`
	V3PrivProto   string `json:"v3_priv_proto,omitempty"`
	HasV3AuthPass bool   `json:"has_v3_auth_pass"`
	HasV3PrivPass bool   `json:"has_v3_priv_pass"`
	PortCount     int    `json:"port_count"`
	MasterPort    int    `json:"master_port"`
	OID           string `json:"oid"`
	OIDOffset     int    `json:"oid_offset"`
	Driver        string `json:"driver"`
	powerconf.Settings
	Ports []portJSON `json:"ports,omitempty"`
	// StatusError: why pitasks could not read the switch, the last time; Checked: when it read
	// it last; Pending: its status request not ended yet (POST …/status writes one).
	StatusError string     `json:"status_error,omitempty"`
	Checked     *time.Time `json:"checked_at,omitempty"`
	Pending     uint       `json:"pending_status_request,omitempty"`
}

type portJSON struct {
	Port   int    `json:"port"`
	Node   string `json:"node,omitempty"`
	Master bool   `json:"master"`
	Known  bool   `json:"known"`
	On     bool   `json:"on"`
	Detail string `json:"detail,omitempty"`
}

func viewSwitch(sw *store.Switch) switchJSON {
	v := switchJSON{ID: sw.ID, Name: sw.Name, IP: sw.IP, SNMPPort: sw.SNMPPort, SNMPVersion: sw.SNMPVersion,
		HasCommunity: sw.Community != "", V3User: sw.V3User, V3AuthProto: sw.V3AuthProto, V3PrivProto: sw.V3PrivProto,
		HasV3AuthPass: sw.V3AuthPass != "", HasV3PrivPass: sw.V3PrivPass != "", PortCount: sw.PortCount,
		MasterPort: sw.MasterPort, OID: sw.OID, OIDOffset: sw.OIDOffset, Driver: sw.Driver}
	v.Settings = sw.Power
	return v
}

func (s *Server) apiAdminSwitches(c echo.Context) error {
	sws, err := s.store.Switches(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]switchJSON, len(sws))
	for i := range sws {
		out[i] = viewSwitch(&sws[i])
	}
	return c.JSON(http.StatusOK, map[string]any{"switches": out})
}

// apiAdminSwitch returns a switch with the status of each PoE port, as pitasks read it last.
func (s *Server) apiAdminSwitch(c echo.Context) error {
	d, err := s.switchPorts(c)
	if err != nil {
		return err
	}
	out := viewSwitch(&d.Switch)
	out.StatusError, out.Checked, out.Pending = d.Read.Error, d.Read.ReadAt, d.Read.Pending
	for _, p := range d.Ports {
		pj := portJSON{Port: p.Port, Master: p.Master, Known: p.Known, On: p.State.On, Detail: p.State.Detail}
		if p.Node != nil {
			pj.Node = p.Node.Name
		}
		out.Ports = append(out.Ports, pj)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) apiSaveSwitch(c echo.Context, sw *store.Switch) error {
	var in switchInput
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	in.apply(sw)
	code, err := createOrUpdate(c.Request().Context(), sw.ID == 0, sw, s.store.CreateSwitch, s.store.UpdateSwitch)
	if err != nil {
		return httpError(err)
	}
	return c.JSON(code, viewSwitch(sw))
}

func (s *Server) apiCreateSwitch(c echo.Context) error { return s.apiSaveSwitch(c, &store.Switch{}) }

func (s *Server) apiUpdateSwitch(c echo.Context) error {
	return apiUpdate(c, s.store.Switch, s.apiSaveSwitch)
}

func (s *Server) apiDeleteSwitch(c echo.Context) error { return apiDeleteByID(c, s.store.DeleteSwitch) }

type adminNodeJSON struct {
	ID     uint   `json:"id"`
	Switch string `json:"switch"`
	nodeInput
}

func viewAdminNode(n *store.Node) adminNodeJSON {
	return adminNodeJSON{ID: n.ID, Switch: n.Switch.Name, nodeInput: nodeForm(n)}
}

func (s *Server) apiAdminNodes(c echo.Context) error {
	ns, err := s.store.Nodes(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]adminNodeJSON, len(ns))
	for i := range ns {
		out[i] = viewAdminNode(&ns[i])
	}
	return c.JSON(http.StatusOK, map[string]any{"nodes": out})
}

func (s *Server) apiSaveNode(c echo.Context, n *store.Node) error {
	var in nodeInput
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	in.apply(n)
	code, err := createOrUpdate(ctx, n.ID == 0, n, s.store.CreateNode, s.store.UpdateNode)
	if err != nil {
		return httpError(err)
	}
	full, err := s.store.Node(ctx, n.ID)
	if err != nil {
		return err
	}
	return c.JSON(code, viewAdminNode(full))
}

func (s *Server) apiCreateNode(c echo.Context) error { return s.apiSaveNode(c, &store.Node{}) }

func (s *Server) apiUpdateNode(c echo.Context) error {
	return apiUpdate(c, s.store.Node, s.apiSaveNode)
}

func (s *Server) apiDeleteNode(c echo.Context) error { return apiDeleteByID(c, s.store.DeleteNode) }

type adminEnvironmentJSON struct {
	ID      uint `json:"id"`
	OwnerID uint `json:"owner_id"`
	environmentInput
}

func viewAdminEnvironment(e *store.Environment) adminEnvironmentJSON {
	return adminEnvironmentJSON{ID: e.ID, OwnerID: e.OwnerID, environmentInput: environmentForm(e)}
}

func (s *Server) apiAdminEnvironments(c echo.Context) error {
	es, err := s.store.Environments(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]adminEnvironmentJSON, len(es))
	for i := range es {
		out[i] = viewAdminEnvironment(&es[i])
	}
	return c.JSON(http.StatusOK, map[string]any{"environments": out})
}

func (s *Server) apiSaveEnvironment(c echo.Context, e *store.Environment) error {
	in := environmentInput{Type: store.EnvDefault, SSHUser: "root", Shell: "bash"}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	in.apply(e)
	code, err := createOrUpdate(c.Request().Context(), e.ID == 0, e, s.store.CreateEnvironment, s.store.UpdateEnvironment)
	if err != nil {
		return httpError(err)
	}
	return c.JSON(code, viewAdminEnvironment(e))
}

func (s *Server) apiCreateEnvironment(c echo.Context) error {
	return s.apiSaveEnvironment(c, &store.Environment{})
}

func (s *Server) apiUpdateEnvironment(c echo.Context) error {
	return apiUpdate(c, s.store.Environment, s.apiSaveEnvironment)
}

func (s *Server) apiDeleteEnvironment(c echo.Context) error {
	return apiDeleteByID(c, s.store.DeleteEnvironment)
}

func (s *Server) apiAdminDeployments(c echo.Context) error {
	out, err := s.deploymentViews(c, store.DeploymentFilter{Current: s.now()})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"deployments": out})
}

func (s *Server) apiForceState(c echo.Context) error {
	d, err := byID(c, s.store.Deployment)
	if err != nil {
		return err
	}
	var in forceInput
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	if err := s.force(c, d, in); err != nil {
		return httpError(err)
	}
	return s.replyDeployment(c, http.StatusOK, d.ID)
}
