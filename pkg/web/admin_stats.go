package web

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

// Statistics for admins, like Kadeploy's kastat: per node and per environment, how many
// deployments ran, how many finished, how long each state takes and the last failures with
// their reason, so that a flaky node or a worn SD card is spotted.

// failuresShown is the number of last failures listed on a statistics page.
const failuresShown = 30

// statsTable is a list of nodes or environments; Kind is the path element of their pages.
type statsTable struct {
	Kind string
	Rows []store.DeployStats
}

type statsOverview struct {
	Nodes        statsTable
	Environments statsTable
	States       []store.StateTime
	Failures     []store.Failure
}

func (s *Server) showAdminStats(c echo.Context) error {
	ctx := c.Request().Context()
	d := statsOverview{Nodes: statsTable{Kind: "nodes"}, Environments: statsTable{Kind: "environments"}}
	var err error
	if d.Nodes.Rows, err = s.store.NodeStats(ctx); err != nil {
		return err
	}
	if d.Environments.Rows, err = s.store.EnvironmentStats(ctx); err != nil {
		return err
	}
	if d.States, err = s.store.StateTimes(ctx, store.StatsFilter{}); err != nil {
		return err
	}
	if d.Failures, err = s.store.Failures(ctx, store.StatsFilter{}, failuresShown); err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_stats", &page{Title: "Statistics", Nav: "admin", Data: d})
}

type statsDetail struct {
	// Kind is "node" or "environment".
	Kind     string
	Summary  store.DeployStats
	States   []store.StateTime
	Failures []store.Failure
}

func (s *Server) showNodeStats(c echo.Context) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	all, err := s.store.NodeStats(c.Request().Context())
	if err != nil {
		return err
	}
	return s.statsDetail(c, "node", id, all, store.StatsFilter{NodeID: id})
}

func (s *Server) showEnvironmentStats(c echo.Context) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	all, err := s.store.EnvironmentStats(c.Request().Context())
	if err != nil {
		return err
	}
	return s.statsDetail(c, "environment", id, all, store.StatsFilter{EnvironmentID: id})
}

func (s *Server) statsDetail(c echo.Context, kind string, id uint, all []store.DeployStats, f store.StatsFilter) error {
	ctx := c.Request().Context()
	d := statsDetail{Kind: kind}
	found := false
	for _, r := range all {
		if r.ID == id {
			d.Summary, found = r, true
		}
	}
	if !found {
		return echo.ErrNotFound
	}
	var err error
	if d.States, err = s.store.StateTimes(ctx, f); err != nil {
		return err
	}
	if d.Failures, err = s.store.Failures(ctx, f, failuresShown); err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_stats_detail", &page{
		Title: fmt.Sprintf("Statistics of %s %s", kind, d.Summary.Name), Nav: "admin", Data: d})
}

// showMetrics serves /metrics to admins. When [frontend] metrics_listen is set, metrics are
// served there instead (where a Prometheus server can scrape them without a session).
func (s *Server) showMetrics(c echo.Context) error {
	if s.cfg.Frontend.MetricsListen != "" {
		return echo.NewHTTPError(http.StatusNotFound, "Metrics are served on [frontend] metrics_listen.")
	}
	s.metrics.Handler().ServeHTTP(c.Response(), c.Request())
	return nil
}
