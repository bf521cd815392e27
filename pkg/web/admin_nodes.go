package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

// nodeInput is the node form.
type nodeInput struct {
	Name       string `json:"name"`
	SwitchID   uint   `json:"switch_id"`
	Port       int    `json:"port"`
	IP         string `json:"ip"`
	MAC        string `json:"mac"`
	Serial     string `json:"serial"`
	Model      string `json:"model"`
	PublicIP   string `json:"public_ip"`
	PublicPort int    `json:"public_port"`
	CardDevice string `json:"card_device"`
}

// apply writes in over n; the store validates the result.
func (in nodeInput) apply(n *store.Node) {
	n.Name, n.SwitchID, n.Port, n.IP, n.MAC, n.Serial, n.Model = in.Name, in.SwitchID, in.Port, in.IP, in.MAC, in.Serial, in.Model
	n.PublicIP, n.PublicPort, n.CardDevice = in.PublicIP, in.PublicPort, in.CardDevice
	n.Switch = store.Switch{} // a loaded node's switch may no longer be its own
}

func nodeForm(n *store.Node) nodeInput {
	return nodeInput{Name: n.Name, SwitchID: n.SwitchID, Port: n.Port, IP: n.IP, MAC: n.MAC, Serial: n.Serial,
		Model: n.Model, PublicIP: n.PublicIP, PublicPort: n.PublicPort, CardDevice: n.CardDevice}
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
		d.ID, d.Form = n.ID, nodeForm(n)
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
	atoi := func(k string) int { n, _ := strconv.Atoi(strings.TrimSpace(c.FormValue(k))); return n }
	in := nodeInput{Name: strings.TrimSpace(c.FormValue("name")), SwitchID: uint(swID), Port: atoi("port"),
		IP: strings.TrimSpace(c.FormValue("ip")), MAC: strings.TrimSpace(c.FormValue("mac")),
		Serial: c.FormValue("serial"), Model: strings.TrimSpace(c.FormValue("model")),
		PublicIP: strings.TrimSpace(c.FormValue("public_ip")), PublicPort: atoi("public_port"),
		CardDevice: strings.TrimSpace(c.FormValue("card_device"))}
	in.apply(n)
	if _, err = createOrUpdate(ctx, n.ID == 0, n, s.store.CreateNode, s.store.UpdateNode); err != nil {
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
