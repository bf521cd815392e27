package web

import (
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/svgchart"
)

// Statistics for admins, like Kadeploy's kastat: per node and per environment, how many
// deployments ran, how many finished, how long each state takes and the last failures with
// their reason, so that a flaky node or a worn SD card is spotted.

// failuresShown is the number of last failures listed on a statistics page.
const failuresShown = 30

// weeksShown is how many weeks the success rate over time covers, this one included.
const weeksShown = 12

// statsTable is a list of nodes or environments; Kind is the path element of their pages;
// Chart their success rates.
type statsTable struct {
	Kind  string
	Rows  []store.DeployStats
	Chart template.HTML
}

// statsCommon is what every statistics page shows: the success rate week by week (a chart
// and its numbers), the time per state (a chart and the table) and the last failures.
type statsCommon struct {
	Weeks       []weekStats
	WeeksChart  template.HTML
	States      []store.StateTime
	StatesChart template.HTML
	Failures    []store.Failure
}

type statsOverview struct {
	Nodes        statsTable
	Environments statsTable
	// Workers are the pitasks processes, alive or not (workers.go).
	Workers []workerRow
	statsCommon
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
	if d.Workers, err = s.workerRows(ctx); err != nil {
		return err
	}
	d.Nodes.Chart = ratesChart("Success rate per node", d.Nodes.Rows)
	d.Environments.Chart = ratesChart("Success rate per environment", d.Environments.Rows)
	if d.statsCommon, err = s.statsCommon(c, "all nodes", store.StatsFilter{}); err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_stats", &page{Title: "Statistics", Nav: "admin", Data: d})
}

// statsCommon reads the statistics every page shows for f, whose charts say they are of what.
func (s *Server) statsCommon(c echo.Context, of string, f store.StatsFilter) (statsCommon, error) {
	ctx := c.Request().Context()
	var d statsCommon
	var err error
	if d.States, err = s.store.StateTimes(ctx, f); err != nil {
		return d, err
	}
	if d.Failures, err = s.store.Failures(ctx, f, failuresShown); err != nil {
		return d, err
	}
	first := weekStart(s.now()).AddDate(0, 0, -7*(weeksShown-1))
	outcomes, err := s.store.DeployOutcomes(ctx, f, first)
	if err != nil {
		return d, err
	}
	d.Weeks = byWeek(outcomes, first, weeksShown)
	d.WeeksChart = weeksChart("Success rate by week, "+of, d.Weeks)
	d.StatesChart = statesChart("Mean time per state, "+of, d.States)
	return d, nil
}

// rateClass is the colour of a success rate in percent: the badge's class and the bar's.
func rateClass(rate float64) string {
	switch {
	case rate < 80:
		return "bad"
	case rate < 95:
		return "warn"
	}
	return "good"
}

func ratesChart(title string, rows []store.DeployStats) template.HTML {
	c := svgchart.Chart{Title: title, Max: 100, Unit: " %"}
	for _, r := range rows {
		b := svgchart.Bar{Label: r.Name, Missing: true, Text: "nothing ended yet"}
		if rate := r.SuccessRate(); rate >= 0 {
			b = svgchart.Bar{Label: r.Name, Value: rate, Class: rateClass(rate),
				Text: fmt.Sprintf("%.0f %% of %d", rate, r.Succeeded+r.Failed)}
		}
		c.Bars = append(c.Bars, b)
	}
	return c.HBars()
}

func statesChart(title string, states []store.StateTime) template.HTML {
	c := svgchart.Chart{Title: title}
	for _, st := range states {
		b := svgchart.Bar{Label: st.Process + "/" + string(st.State), Missing: true, Text: "never done"}
		if st.Count > 0 {
			b = svgchart.Bar{Label: b.Label, Value: st.MeanMS, Class: "busy",
				Text: humanDuration(time.Duration(st.MeanMillis()) * time.Millisecond)}
		}
		c.Bars = append(c.Bars, b)
	}
	return c.HBars()
}

// weekStats counts the deploy outcomes of the week that starts on Start (a Monday, UTC).
type weekStats struct {
	Start     time.Time
	Succeeded int
	Failed    int
}

// SuccessRate is the success rate of the week in percent, -1 when nothing ended in it.
func (w weekStats) SuccessRate() float64 {
	return store.DeployStats{Succeeded: int64(w.Succeeded), Failed: int64(w.Failed)}.SuccessRate()
}

// weekStart is the Monday 00:00 UTC that starts t's week.
func weekStart(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return day.AddDate(0, 0, -(int(day.Weekday())+6)%7)
}

// byWeek counts outcomes in n weeks from first (a week start), oldest first.
func byWeek(outcomes []store.DeployOutcome, first time.Time, n int) []weekStats {
	weeks := make([]weekStats, n)
	for i := range weeks {
		weeks[i].Start = first.AddDate(0, 0, 7*i)
	}
	for _, o := range outcomes {
		i := int(o.EndedAt.Sub(first) / (7 * 24 * time.Hour))
		if o.EndedAt.Before(first) || i >= n {
			continue
		}
		if o.Succeeded {
			weeks[i].Succeeded++
		} else {
			weeks[i].Failed++
		}
	}
	return weeks
}

func weeksChart(title string, weeks []weekStats) template.HTML {
	c := svgchart.Chart{Title: title, Max: 100, Unit: " %"}
	for _, w := range weeks {
		b := svgchart.Bar{Label: w.Start.Format("Jan 2"), Missing: true, Text: "week of " + w.Start.Format("Jan 2") + ": nothing ended"}
		if rate := w.SuccessRate(); rate >= 0 {
			b = svgchart.Bar{Label: b.Label, Value: rate, Class: rateClass(rate),
				Text: fmt.Sprintf("week of %s: %.0f %% of %d", w.Start.Format("Jan 2"), rate, w.Succeeded+w.Failed)}
		}
		c.Bars = append(c.Bars, b)
	}
	return c.Columns()
}

type statsDetail struct {
	// Kind is "node" or "environment".
	Kind    string
	Summary store.DeployStats
	statsCommon
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
	if d.statsCommon, err = s.statsCommon(c, kind+" "+d.Summary.Name, f); err != nil {
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
