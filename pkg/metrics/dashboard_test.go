package metrics_test

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/piseduce/piseduce/pkg/metrics"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// families gathers every metric family of one daemon's registry, by name.
func families(t *testing.T, g interface {
	Gather() ([]*dto.MetricFamily, error)
}) map[string]dto.MetricType {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]dto.MetricType{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetType()
	}
	return out
}

// exercised returns pitasks' and pifrontend's families once every one of their series has a
// sample.
func exercised(t *testing.T) (tasks, frontend map[string]dto.MetricType) {
	t.Helper()
	tm := metrics.NewTasks()
	tm.WatchLeases(func() int { return 1 })
	tm.StateEnded("deploy", "env_copy", store.OutcomeDone, time.Minute)
	tm.StateEnded("deploy", "env_copy", store.OutcomeRetry, time.Minute)
	tm.StepError("deploy", "turn_on", power.ErrNoAnswer)
	tm.StepError("deploy", "ssh_nfs", remote.ErrNoHostKey)
	tm.Tick(time.Millisecond)
	tm.Progress(1 << 20)

	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	c.Deploy(t, s, 1)
	fm := metrics.NewFrontend(s, time.Now)
	fm.Request("/", "GET", 200, time.Millisecond)
	return families(t, tm.Registry()), families(t, fm.Registry())
}

// TestEachDaemonItsOwnSeries: no PiSeduce series is exported by both daemons but the build's.
func TestEachDaemonItsOwnSeries(t *testing.T) {
	tasks, frontend := exercised(t)
	for name := range tasks {
		if _, both := frontend[name]; both && strings.HasPrefix(name, "piseduce_") && name != "piseduce_build_info" {
			t.Errorf("%s is exported by pitasks and pifrontend", name)
		}
	}
	for _, name := range []string{"piseduce_build_info", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := tasks[name]; !ok {
			t.Errorf("pitasks lacks %s", name)
		}
		if _, ok := frontend[name]; !ok {
			t.Errorf("pifrontend lacks %s", name)
		}
	}
}

var seriesRE = regexp.MustCompile(`\b(?:piseduce|go|process)_[a-z0-9_]+\b`)

// TestDashboardSeriesAreExported: every series the Grafana dashboard in admin/ queries is
// exported by one of the daemons (a histogram's _bucket, _sum and _count by its family), and
// the dashboard shows both.
func TestDashboardSeriesAreExported(t *testing.T) {
	b, err := os.ReadFile("../../admin/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("admin/grafana-dashboard.json: %v", err)
	}
	var queries []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(x, k)
			}
		case []any:
			for _, x := range v {
				walk(x, key)
			}
		case string:
			if key == "expr" || key == "query" || key == "definition" {
				queries = append(queries, v)
			}
		}
	}
	walk(dash, "")
	if len(queries) < 10 {
		t.Fatalf("only %d queries found in the dashboard", len(queries))
	}
	tasks, frontend := exercised(t)
	exported := func(name string) (string, error) {
		for _, d := range []struct {
			name string
			fams map[string]dto.MetricType
		}{{"pitasks", tasks}, {"pifrontend", frontend}} {
			if _, ok := d.fams[name]; ok {
				return d.name, nil
			}
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && d.fams[base] == dto.MetricType_HISTOGRAM {
					return d.name, nil
				}
			}
		}
		return "", errors.New("exported by neither daemon")
	}
	by := map[string]bool{}
	var names []string
	for _, q := range queries {
		for _, name := range seriesRE.FindAllString(q, -1) {
			daemon, err := exported(name)
			if err != nil {
				t.Errorf("the dashboard queries %s (%q): %v", name, q, err)
				continue
			}
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
			by[daemon] = true
		}
	}
	sort.Strings(names)
	t.Logf("the dashboard queries %d series: %s", len(names), strings.Join(names, " "))
	if !by["pitasks"] || !by["pifrontend"] {
		t.Errorf("the dashboard shows series of %v only", by)
	}
}
