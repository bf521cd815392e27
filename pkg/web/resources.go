package web

import (
	"net/http"
	"sort"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

// nodeGroup is the nodes of one model on one switch.
type nodeGroup struct {
	Switch string
	Model  string
	Nodes  []store.NodeStatus
	Free   int
}

type resourcesData struct {
	Groups []nodeGroup
	Total  int
	Free   int
}

func groupNodes(sts []store.NodeStatus) []nodeGroup {
	idx := map[[2]string]int{}
	var out []nodeGroup
	for _, n := range sts {
		k := [2]string{n.Switch.Name, n.Model}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, nodeGroup{Switch: n.Switch.Name, Model: n.Model})
		}
		out[i].Nodes = append(out[i].Nodes, n)
		if n.Free() {
			out[i].Free++
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Switch != out[j].Switch {
			return out[i].Switch < out[j].Switch
		}
		return out[i].Model < out[j].Model
	})
	return out
}

// showResources is the cluster at a glance: nodes by switch and model, free or held, by whom
// (a name, never an e-mail), until when, and their state.
func (s *Server) showResources(c echo.Context) error {
	sts, err := s.store.NodeStatuses(c.Request().Context(), s.now())
	if err != nil {
		return err
	}
	d := resourcesData{Groups: groupNodes(sts), Total: len(sts)}
	for _, g := range d.Groups {
		d.Free += g.Free
	}
	return s.render(c, http.StatusOK, "resources", &page{Title: "Resources", Nav: "resources", Data: d})
}

type nodeData struct {
	Status store.NodeStatus
	// Mine is the visitor's deployment on the node, if they hold it.
	Mine *deploymentView
}

// showNode is one node: where it is, who holds it and, for its holder, how to reach it.
func (s *Server) showNode(c echo.Context) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	sts, err := s.store.NodeStatuses(ctx, s.now())
	if err != nil {
		return err
	}
	var d nodeData
	found := false
	for _, st := range sts {
		if st.ID == id {
			d.Status, found = st, true
		}
	}
	if !found {
		return echo.ErrNotFound
	}
	u := currentUser(c)
	if d.Status.Held && d.Status.HolderID == u.ID && d.Status.DeploymentID != 0 {
		dep, err := s.store.Deployment(ctx, d.Status.DeploymentID)
		if err != nil {
			return err
		}
		if dep.UserID == u.ID {
			v := viewDeployment(dep, u, s.now())
			d.Mine = &v
		}
	}
	return s.render(c, http.StatusOK, "node", &page{Title: d.Status.Name, Nav: "resources", Data: d})
}
