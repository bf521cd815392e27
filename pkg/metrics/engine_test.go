package metrics_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/metrics"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

var _ engine.Observer = (*metrics.Tasks)(nil)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// steps: turn_on fails once on the switch, env_copy copies 100 MB in 4 progress writes a
// second apart, everything else is done at once.
type steps struct {
	clock      *clock
	mu         sync.Mutex
	turnOnFail bool
}

func (s *steps) Exec(ctx context.Context, t *engine.Task) error {
	switch t.D.State {
	case "turn_on":
		s.mu.Lock()
		fail := s.turnOnFail
		s.turnOnFail = false
		s.mu.Unlock()
		if fail {
			return fmt.Errorf("power: set port %d: %w", t.D.Node.Port, power.ErrNoAnswer)
		}
	case "env_copy":
		const total = 100e6
		for i := int64(0); i <= 4; i++ {
			if err := t.Progress(ctx, i*total/4, total); err != nil {
				return err
			}
			s.clock.Add(time.Second)
		}
	}
	return nil
}

func (s *steps) Post(context.Context, *engine.Task) (bool, error) { return true, nil }

func (s *steps) HardReboot(context.Context, *store.Deployment) error { return nil }

// TestEngineMovesTheCounters runs two deployments through a real engine with fake steps and
// scrapes /metrics over HTTP before and after: the counters move.
func TestEngineMovesTheCounters(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 2)
	ds := c.Deploy(t, s, 2)
	clk := &clock{now: time.Now().UTC()}
	st := &steps{clock: clk, turnOnFail: true}
	all := map[process.StateName]engine.Step{}
	for _, p := range process.All() {
		for _, state := range p.States {
			all[state.Name] = st
		}
	}
	m := metrics.NewTasks()
	e, err := engine.New(engine.Options{Store: s, Steps: all, Rebooter: st, Clock: clk, Workers: 1,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Observer: m, StepDeadline: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e.Stop(ctx)
	}()
	m.WatchLeases(e.Busy)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	before := scrape(t, srv.URL)
	const (
		copyDone = `piseduce_state_duration_seconds_count{outcome="done",process="deploy",state="env_copy"}`
		copySum  = `piseduce_state_duration_seconds_sum{outcome="done",process="deploy",state="env_copy"}`
		retries  = `piseduce_state_failures_total{process="deploy",reason="retry",state="turn_on"}`
		snmp     = `piseduce_snmp_errors_total{process="deploy",state="turn_on"}`
		ticks    = `piseduce_tick_duration_seconds_count`
		copied   = `piseduce_copy_bytes_total`
		lastTick = `piseduce_last_tick_timestamp_seconds`
	)
	if before[copyDone] != 0 || before[retries] != 0 || before[snmp] != 0 || before[ticks] != 0 ||
		before[copied] != 0 || before[lastTick] != 0 {
		t.Fatalf("before: %v", before)
	}
	start := float64(time.Now().UnixNano()) / 1e9

	for i := 0; i < 20; i++ {
		if err := e.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.Wait()
		d0, err := s.Deployment(context.Background(), ds[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		d1, err := s.Deployment(context.Background(), ds[1].ID)
		if err != nil {
			t.Fatal(err)
		}
		if d0.State == "deployed" && d1.State == "deployed" {
			break
		}
		clk.Add(time.Minute) // past the backoff of the failed turn_on
	}
	after := scrape(t, srv.URL)
	t.Logf("before → after: env_copy done %v → %v, turn_on retries %v → %v, snmp errors %v → %v, ticks %v → %v, bytes copied %v → %v",
		before[copyDone], after[copyDone], before[retries], after[retries],
		before[snmp], after[snmp], before[ticks], after[ticks], before[copied], after[copied])
	// Both images of 100 MB, counted at each of their 4 progress writes.
	for k, v := range map[string]float64{copyDone: 2, retries: 1, snmp: 1, copied: 200e6} {
		if after[k] != v {
			t.Errorf("after: %s = %v, want %v", k, after[k], v)
		}
	}
	if after[ticks] < 2 {
		t.Errorf("after: %s = %v, want at least 2", ticks, after[ticks])
	}
	// Each env_copy took 5 s on the fake clock, at 25 MB/s.
	if after[copySum] != 10 {
		t.Errorf("after: %s = %v, want 10", copySum, after[copySum])
	}
	if after[lastTick] < start || after[lastTick] > float64(time.Now().UnixNano())/1e9 {
		t.Errorf("after: %s = %v, not within the test (started at %v)", lastTick, after[lastTick], start)
	}
	if after[`piseduce_leases_held`] != 0 {
		t.Errorf("leases held after the work: %v", after[`piseduce_leases_held`])
	}
}
