package metrics_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/piseduce/piseduce/pkg/metrics"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/power/powerconf"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// scrape GETs url and returns every sample by its exposition key, e.g.
// `piseduce_state_failures_total{process="deploy",reason="retry",state="turn_on"}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// unreachable is pkg/remote's error for a node nothing answers for: a real dial to a closed
// loopback port.
func unreachable(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	signer, err := remote.LoadOrCreateKey(filepath.Join(t.TempDir(), "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	d := &remote.Dialer{Signer: signer, Keys: remote.StaticHostKey(remote.AuthorizedKey(signer.PublicKey()))}
	_, err = d.Dial(context.Background(), remote.Target{Addr: addr, User: "root", Role: remote.RoleNFS})
	if err == nil {
		t.Fatalf("dial to closed port %s succeeded", addr)
	}
	return err
}

func TestOrigin(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, metrics.OriginOther},
		{errors.New("env_copy: short write"), metrics.OriginOther},
		{fmt.Errorf("turn_on: power: set port 3: no answer: %w", power.ErrNoAnswer), metrics.OriginSNMP},
		{fmt.Errorf("hard reboot: %w", fmt.Errorf("power: %w", power.ErrAuth)), metrics.OriginSNMP},
		{fmt.Errorf("turn_on: %w", powerconf.ErrConfig), metrics.OriginOther}, // a bad configuration, not the switch
		{fmt.Errorf("ssh_nfs: %w for node-1", remote.ErrNoHostKey), metrics.OriginSSHHostKey},
		{fmt.Errorf("ssh_system: %w", remote.ErrHostKeyMismatch), metrics.OriginSSHHostKey},
		{fmt.Errorf("env_copy: %w", &remote.ExitError{Command: "dd", Target: "node-1", Status: 1}), metrics.OriginSSHCommand},
		{fmt.Errorf("ssh_nfs: %w", unreachable(t)), metrics.OriginSSH},
		// Text that looks like pkg/remote's is not taken for its kind.
		{errors.New("ssh_nfs: remote: dial node-1 (10.0.0.1:22): connection refused"), metrics.OriginOther},
	} {
		if got := metrics.Origin(c.err); got != c.want {
			t.Errorf("Origin(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestObserverCollectors(t *testing.T) {
	m := metrics.NewTasks()
	busy := 3
	m.WatchLeases(func() int { return busy })
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	m.StateEnded("deploy", "turn_on", store.OutcomeDone, 1500*time.Millisecond)
	m.StateEnded("deploy", "turn_on", store.OutcomeDone, 2500*time.Millisecond)
	m.StateEnded("deploy", "turn_on", store.OutcomeReboot, 60*time.Second)
	m.StateEnded("deploy", "env_copy", store.OutcomeRetry, time.Second)
	m.StateEnded("deploy", "env_copy", store.OutcomeLost, time.Hour)
	m.StateEnded("deploy", "env_check", store.OutcomeFailed, time.Second)
	m.StepError("deploy", "turn_on", fmt.Errorf("turn_on: %w", power.ErrNoAnswer))
	m.StepError("deploy", "ssh_nfs", fmt.Errorf("ssh_nfs: %w", unreachable(t)))
	m.StepError("deploy", "env_copy", &remote.ExitError{Command: "dd", Status: 1})
	m.StepError("deploy", "env_copy", errors.New("nothing to do with SSH"))
	m.Tick(3 * time.Millisecond)
	m.Progress(20e6)
	m.Progress(30e6)
	m.Progress(-5e6) // a copy that started again: not a negative count

	got := scrape(t, srv.URL)
	want := map[string]float64{
		`piseduce_state_duration_seconds_count{outcome="done",process="deploy",state="turn_on"}`:     2,
		`piseduce_state_duration_seconds_sum{outcome="done",process="deploy",state="turn_on"}`:       4,
		`piseduce_state_duration_seconds_count{outcome="lost",process="deploy",state="env_copy"}`:    1,
		`piseduce_state_duration_seconds_count{outcome="failed",process="deploy",state="env_check"}`: 1,
		`piseduce_state_failures_total{process="deploy",reason="reboot",state="turn_on"}`:            1,
		`piseduce_state_failures_total{process="deploy",reason="retry",state="env_copy"}`:            1,
		`piseduce_state_failures_total{process="deploy",reason="lost",state="env_copy"}`:             1,
		`piseduce_state_failures_total{process="deploy",reason="failed",state="env_check"}`:          1,
		`piseduce_snmp_errors_total{process="deploy",state="turn_on"}`:                               1,
		`piseduce_ssh_errors_total{kind="connection",process="deploy",state="ssh_nfs"}`:              1,
		`piseduce_ssh_errors_total{kind="command",process="deploy",state="env_copy"}`:                1,
		`piseduce_tick_duration_seconds_count`:                                                       1,
		`piseduce_copy_bytes_total`:                                                                  50e6,
		`piseduce_leases_held`:                                                                       3,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got[`piseduce_state_failures_total{process="deploy",reason="done",state="turn_on"}`]; ok {
		t.Error("a done state counted as a failure")
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	if since := time.Since(time.Unix(int64(got["piseduce_last_tick_timestamp_seconds"]), 0)); since < 0 || since > time.Minute {
		t.Errorf("last tick %v ago", since)
	}
	busy = 0
	if got := scrape(t, srv.URL)["piseduce_leases_held"]; got != 0 {
		t.Errorf("leases_held = %v after the work ended", got)
	}

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "piseduce_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

// TestFrontendCollectors: pifrontend's requests by route pattern and status class, and the
// database's deployments and reservations, read at each scrape.
func TestFrontendCollectors(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			ctx := context.Background()
			c := storetest.Seed(t, s, 5)
			ds := c.Deploy(t, s, 3)
			if err := s.RequestProcess(ctx, ds[2].ID, "destroy"); err != nil {
				t.Fatal(err)
			}
			// A worker took ds[0]; the others wait for one, and count as queued.
			if err := storetest.DB(s).Model(&store.Deployment{}).Where("id = ?", ds[0].ID).Update("queued", false).Error; err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			if _, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.User.ID,
				NodeIDs: []uint{c.Nodes[3].ID, c.Nodes[4].ID}, StartsAt: now, EndsAt: now.Add(time.Hour)}, now); err != nil {
				t.Fatal(err)
			}
			// One pitasks ticked 2 s ago, one stopped an hour ago.
			tick := now.Add(-2 * time.Second).Truncate(time.Second)
			for _, h := range []store.Heartbeat{{Owner: "alive", TickMS: 2000, LastTick: tick}, {Owner: "gone", TickMS: 2000, LastTick: now.Add(-time.Hour)}} {
				if err := s.Beat(ctx, &h); err != nil {
					t.Fatal(err)
				}
			}
			m := metrics.NewFrontend(s, time.Now)
			m.Request("/nodes/:id", "GET", 200, 30*time.Millisecond)
			m.Request("/nodes/:id", "GET", 204, 10*time.Millisecond)
			m.Request("/login", "POST", 303, time.Millisecond)
			m.Request("unmatched", "GET", 404, time.Millisecond)
			m.Request("/api/v1/nodes", "GET", 503, time.Second)
			srv := httptest.NewServer(m.Handler())
			defer srv.Close()
			got := scrape(t, srv.URL)
			for k, v := range map[string]float64{
				`piseduce_deployments{process="deploy",state="boot_conf"}`:                      1,
				`piseduce_deployments{process="deploy",state="queued"}`:                         1,
				`piseduce_deployments{process="destroy",state="queued"}`:                        1,
				`piseduce_reservations_held`:                                                    2, // the seed's and this one
				`piseduce_nodes_reserved`:                                                       2,
				`piseduce_last_tick_timestamp_seconds`:                                          float64(tick.Unix()),
				`piseduce_workers_alive`:                                                        1,
				`piseduce_http_requests_total{code="2xx",method="GET",route="/nodes/:id"}`:      2,
				`piseduce_http_requests_total{code="3xx",method="POST",route="/login"}`:         1,
				`piseduce_http_requests_total{code="4xx",method="GET",route="unmatched"}`:       1,
				`piseduce_http_requests_total{code="5xx",method="GET",route="/api/v1/nodes"}`:   1,
				`piseduce_http_request_duration_seconds_count{method="GET",route="/nodes/:id"}`: 2,
				`piseduce_http_request_duration_seconds_sum{method="GET",route="/nodes/:id"}`:   0.04,
			} {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}

			// The database goes away: the other metrics are still served.
			s.Close()
			got = scrape(t, srv.URL)
			for _, k := range []string{`piseduce_deployments{process="deploy",state="boot_conf"}`, `piseduce_reservations_held`} {
				if _, ok := got[k]; ok {
					t.Errorf("%s served from a closed database", k)
				}
			}
			if _, ok := got["go_goroutines"]; !ok {
				t.Error("a failing collector hid the others")
			}
		})
	}
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	m := metrics.NewTasks()
	m.Tick(time.Millisecond)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := metrics.Serve(ctx, addr, m.Handler(), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if got := scrape(t, "http://"+addr+"/metrics")["piseduce_tick_duration_seconds_count"]; got != 1 {
		t.Errorf("tick count %v", got)
	}
	if err := metrics.Serve(ctx, addr, m.Handler(), slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Error("a second server on the same address did not fail")
	}
	resp, err := http.Get("http://" + addr + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: %s", resp.Status)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still listening after ctx ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
