package web

import (
	"bytes"
	"html/template"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/apijson"
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
	// Tables is the rendered node tables, the same for every visitor (see resourcesCache).
	Tables template.HTML
	Total  int
	Free   int
}

// resourcesCache keeps the resources page's node tables while the live generation stays the
// same, and resourcesTTL at most: under many clients the page is built once per change
// instead of once per request. The tables hold nothing specific to a visitor (holders are
// shown by name to everyone).
type resourcesCache struct {
	mu   sync.Mutex
	at   time.Time
	gen  uint64
	data resourcesData
}

const resourcesTTL = time.Second

// resourceGroup and nodeRow are the resources page, formatted beforehand: with a thousand
// nodes the template must only copy strings (no method calls, no lookups through embedded
// structs), which makes the page several times faster.
type resourceGroup struct {
	Switch, Model string
	Free          int
	// FreeClass is the class of the "n free" badge: green only when some are.
	FreeClass string
	Rows      []nodeRow
}

type nodeRow struct {
	ID                                       uint
	Name, Status, StatusClass, Holder, Until string
	State, StateClass, Next                  string
}

func resourceRows(groups []nodeGroup, z *zones) []resourceGroup {
	out := make([]resourceGroup, len(groups))
	for i, g := range groups {
		rg := resourceGroup{Switch: g.Switch, Model: g.Model, Free: g.Free, FreeClass: "none", Rows: make([]nodeRow, len(g.Nodes))}
		if g.Free > 0 {
			rg.FreeClass = "free"
		}
		for j := range g.Nodes {
			n := &g.Nodes[j]
			r := nodeRow{ID: n.ID, Name: n.Name, Status: "free", StatusClass: "free", State: "never deployed"}
			switch {
			case n.Held:
				r.Status, r.StatusClass, r.Holder, r.Until = "held", "held", n.Holder, z.format(n.Until, n.Zone)
			case !n.Free():
				r.Status, r.StatusClass = "cleaning up", "warn"
			}
			if n.State != "" {
				r.State, r.StateClass = stateBadge(n.Process, n.State, n.Queued)
			}
			if n.NextStart != nil {
				r.Next = z.format(*n.NextStart, n.NextZone)
			}
			rg.Rows[j] = r
		}
		out[i] = rg
	}
	return out
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
			return store.NameLess(out[i].Switch, out[j].Switch)
		}
		return out[i].Model < out[j].Model
	})
	return out
}

// showResources is the cluster at a glance: nodes by switch and model, free or held, by whom
// (a name, never an e-mail), until when, and their state.
func (s *Server) showResources(c echo.Context) error {
	d, err := s.resourcesTables(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "resources", &page{Title: "Resources", Nav: "resources", Data: d})
}

func (s *Server) resourcesTables(c echo.Context) (resourcesData, error) {
	sts, gen, err := s.live.nodes(c.Request().Context())
	if err != nil {
		return resourcesData{}, err
	}
	s.resources.mu.Lock()
	defer s.resources.mu.Unlock()
	if s.resources.gen == gen && time.Since(s.resources.at) < resourcesTTL {
		return s.resources.data, nil
	}
	groups := resourceRows(groupNodes(sts), &s.zones)
	d := resourcesData{Total: len(sts)}
	for _, g := range groups {
		d.Free += g.Free
	}
	var buf bytes.Buffer
	if err := s.pages.sets["resources"].ExecuteTemplate(&buf, "nodetables", groups); err != nil {
		return resourcesData{}, err
	}
	// The tables were produced by html/template with contextual escaping, for the HTML body
	// context the page inserts them in.
	d.Tables = template.HTML(buf.String()) //nolint:gosec // escaped by html/template above
	s.resources.at, s.resources.gen, s.resources.data = time.Now(), gen, d
	return d, nil
}

type nodeData struct {
	Status store.NodeStatus
	// Until and Next are the end of the reservation that holds the node and the start of the
	// next one, each in the zone it was entered in.
	Until, Next string
	// The badge of the latest deployment's state.
	StateLabel, StateClass string
	// Mine is the visitor's deployment on the node, if they hold it.
	Mine *apijson.Deployment
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
	d.Until = s.zones.format(d.Status.Until, d.Status.Zone)
	if n := d.Status.NextStart; n != nil {
		d.Next = s.zones.format(*n, d.Status.NextZone)
	}
	if d.Status.State != "" {
		d.StateLabel, d.StateClass = stateBadge(d.Status.Process, d.Status.State, d.Status.Queued)
	}
	u := currentUser(c)
	if d.Status.Held && d.Status.HolderID == u.ID && d.Status.DeploymentID != 0 {
		dep, err := s.store.Deployment(ctx, d.Status.DeploymentID)
		if err != nil {
			return err
		}
		if dep.UserID == u.ID {
			v := viewDeployment(dep, u, s.now())
			s.markQueued(ctx, &v)
			d.Mine = &v
		}
	}
	return s.render(c, http.StatusOK, "node", &page{Title: d.Status.Name, Nav: "resources", Data: d})
}
