package web

import (
	"context"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

var (
	serialRE = regexp.MustCompile(`^[0-9a-f]{8,16}$`)
	modelRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]{0,63}$`)
)

// nodeInput is the node form.
type nodeInput struct {
	Name     string `json:"name"`
	SwitchID uint   `json:"switch_id"`
	Port     int    `json:"port"`
	IP       string `json:"ip"`
	MAC      string `json:"mac"`
	Serial   string `json:"serial"`
	Model    string `json:"model"`
}

func (s *Server) applyNode(ctx context.Context, in nodeInput, n *store.Node) error {
	in.Serial = strings.ToLower(strings.TrimSpace(in.Serial))
	if !nameRE.MatchString(in.Name) {
		return badInput("The name may hold letters, digits, dots, dashes and underscores (at most 100).")
	}
	sw, err := s.store.Switch(ctx, in.SwitchID)
	if err != nil {
		return badInput("Choose a switch from the list.")
	}
	switch {
	case in.Port < 1 || in.Port > sw.PortCount:
		return badInput("Switch %s has ports 1 to %d.", sw.Name, sw.PortCount)
	case in.Port == sw.MasterPort:
		return badInput("Port %d is the pimaster's.", in.Port)
	case in.IP != "" && net.ParseIP(in.IP) == nil:
		return badInput("The IP address is not valid.")
	case in.Serial != "" && !serialRE.MatchString(in.Serial):
		return badInput("The serial is 8 to 16 hexadecimal digits (the end of Serial in /proc/cpuinfo).")
	case in.Model != "" && !modelRE.MatchString(in.Model):
		return badInput("The model may hold letters, digits and + . _ - (like RPI4B or RPI3Bplus).")
	}
	mac := ""
	if in.MAC != "" {
		hw, err := net.ParseMAC(in.MAC)
		if err != nil || len(hw) != 6 {
			return badInput("The MAC address must look like b8:27:eb:12:34:56.")
		}
		mac = hw.String()
	}
	n.Name, n.SwitchID, n.Port, n.IP, n.MAC, n.Serial, n.Model = in.Name, sw.ID, in.Port, in.IP, mac, in.Serial, in.Model
	n.Switch = store.Switch{} // a loaded node's switch may no longer be its own
	return nil
}

type adminNodesData struct {
	Nodes    []store.Node
	Switches []store.Switch
}

func (s *Server) showAdminNodes(c echo.Context) error {
	ns, err := s.store.Nodes(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_nodes", &page{Title: "Nodes", Nav: "admin", Data: adminNodesData{Nodes: ns}})
}

type nodeFormData struct {
	Form     nodeInput
	ID       uint
	Switches []store.Switch
}

func (s *Server) nodeFormPage(c echo.Context, code int, d nodeFormData, msg string) error {
	sws, err := s.store.Switches(c.Request().Context())
	if err != nil {
		return err
	}
	d.Switches = sws
	return s.render(c, code, "admin_node_form", &page{Title: "Node", Nav: "admin", Error: msg, Data: d})
}

func (s *Server) showNodeForm(c echo.Context) error {
	var d nodeFormData
	if c.Param("id") != "" {
		n, err := byID(c, s.store.Node)
		if err != nil {
			return err
		}
		d.ID = n.ID
		d.Form = nodeInput{Name: n.Name, SwitchID: n.SwitchID, Port: n.Port, IP: n.IP, MAC: n.MAC, Serial: n.Serial, Model: n.Model}
	}
	return s.nodeFormPage(c, http.StatusOK, d, "")
}

func (s *Server) saveNode(c echo.Context) error {
	ctx := c.Request().Context()
	n, err := formRecord(c, s.store.Node)
	if err != nil {
		return err
	}
	swID, _ := strconv.ParseUint(c.FormValue("switch"), 10, 32)
	port, _ := strconv.Atoi(c.FormValue("port"))
	in := nodeInput{Name: strings.TrimSpace(c.FormValue("name")), SwitchID: uint(swID), Port: port,
		IP: strings.TrimSpace(c.FormValue("ip")), MAC: strings.TrimSpace(c.FormValue("mac")),
		Serial: c.FormValue("serial"), Model: strings.TrimSpace(c.FormValue("model"))}
	err = s.applyNode(ctx, in, n)
	if err == nil {
		_, err = createOrUpdate(ctx, n.ID == 0, n, s.store.CreateNode, s.store.UpdateNode)
	}
	if err != nil {
		msg, code, ok := userMessage(err)
		if !ok {
			return err
		}
		return s.nodeFormPage(c, code, nodeFormData{Form: in, ID: n.ID}, msg)
	}
	return s.redirect(c, "/admin/nodes", "Node "+n.Name+" saved.")
}

func (s *Server) deleteNode(c echo.Context) error {
	return s.deleteByID(c, s.store.DeleteNode, "/admin/nodes", "Node deleted.")
}
