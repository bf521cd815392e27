package requests_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab/poeswitch"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/requests"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

const community = "rw-Community-SECRET"

// startSwitch runs a real snmpd with 4 PoE ports and registers it in s (port 4: the pimaster's).
func startSwitch(t *testing.T, s *store.Store, name string) (*poeswitch.Switch, *store.Switch) {
	t.Helper()
	testenv.NeedCommand(t, "snmpd")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	psw, err := poeswitch.Start(ctx, poeswitch.Options{Dir: t.TempDir(), Ports: 4, Community: community})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = psw.Stop() })
	sw := &store.Switch{Name: name, IP: "127.0.0.1", SNMPPort: psw.Port(), SNMPVersion: "2c", Community: community,
		PortCount: 4, MasterPort: 4, OID: psw.OIDBase(), OIDOffset: psw.Offset()}
	check(t, s.CreateSwitch(ctx, sw))
	return psw, sw
}

// openSNMP is the SNMP driver of a switch record, as pitasks opens it.
func openSNMP(sw *store.Switch) (requests.Switch, error) {
	d, err := power.NewSNMP(sw.PowerConfig(2*time.Second, 1))
	if err != nil {
		return nil, err
	}
	return d, nil
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantPort(t *testing.T, psw *poeswitch.Switch, port int, on bool) {
	t.Helper()
	if got, err := psw.PortOn(port); err != nil || got != on {
		t.Fatalf("switch port %d: on=%v (%v), want %v", port, got, err, on)
	}
}

// request writes a port request as the web does and has p carry it out.
func request(t *testing.T, p *requests.Ports, sw *store.Switch, port int, action string) *store.PortRequest {
	t.Helper()
	ctx := context.Background()
	r, err := p.Store.RequestPort(ctx, sw.ID, port, action, 1)
	check(t, err)
	did, err := p.Next(ctx)
	if err != nil || !did {
		t.Fatalf("%s port %d: carried out %v, %v", action, port, did, err)
	}
	r, err = p.Store.PortRequest(ctx, r.ID)
	check(t, err)
	return r
}

// TestPortsSNMP: port requests carried out end to end on a real snmpd, and a switch that does
// not answer gives a failed request with the reason (and not its community).
func TestPortsSNMP(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			psw, sw := startSwitch(t, s, "poe-1")
			check(t, psw.SetPort(2, true))
			p := &requests.Ports{Store: s, Owner: "pitasks-test", Open: openSNMP, CycleOff: 200 * time.Millisecond}

			r := request(t, p, sw, 2, store.PortOff)
			states, err := r.PortStates()
			check(t, err)
			if r.State != store.RequestDone || r.Error != "" || len(states) != 1 || states[2].On || r.EndedAt == nil {
				t.Fatalf("off: %+v %v", r, states)
			}
			wantPort(t, psw, 2, false)

			r = request(t, p, sw, 3, store.PortOn)
			if states, _ := r.PortStates(); r.State != store.RequestDone || !states[3].On {
				t.Fatalf("on: %+v", r)
			}
			wantPort(t, psw, 3, true)

			r = request(t, p, sw, 2, store.PortCycle)
			if states, _ := r.PortStates(); r.State != store.RequestDone || !states[2].On {
				t.Fatalf("cycle: %+v", r)
			}
			wantPort(t, psw, 2, true)

			r = request(t, p, sw, 0, store.PortStatus)
			states, err = r.PortStates()
			check(t, err)
			if r.State != store.RequestDone || len(states) != 4 || !states[2].On || !states[3].On || states[1].On {
				t.Fatalf("status: %+v %v", r, states)
			}

			// The switch stops answering: the request fails with the driver's reason.
			check(t, psw.Stop())
			r = request(t, p, sw, 1, store.PortOn)
			if r.State != store.RequestFailed || !strings.Contains(r.Error, "no answer") || strings.Contains(r.Error, community) {
				t.Fatalf("dead switch: %+v", r)
			}
			if did, err := p.Next(context.Background()); did || err != nil {
				t.Fatalf("nothing left: %v %v", did, err)
			}
		})
	}
}

// TestKilledPitasks: a pitasks process holding a port request and a discovery run is killed;
// another pitasks takes the port request over and carries it out on the real switch, and ends
// the discovery run with the reason.
func TestKilledPitasks(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			url := storetest.URL(t, dialect)
			s, err := store.Open(ctx, url)
			check(t, err)
			t.Cleanup(func() { s.Close() })
			psw, sw := startSwitch(t, s, "poe-1")
			check(t, psw.SetPort(1, true))
			pr, err := s.RequestPort(ctx, sw.ID, 1, store.PortOff, 1)
			check(t, err)
			dr, err := s.RequestDiscovery(ctx, sw.ID, []int{2}, 1)
			check(t, err)

			held := filepath.Join(t.TempDir(), "held")
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPitasks$")
			cmd.Env = append(os.Environ(), "PISEDUCE_HELPER_DB="+url, "PISEDUCE_HELPER_HELD="+held)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			check(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			waitFor(t, "the helper pitasks to hold both requests", func() bool { _, err := os.Stat(held); return err == nil })
			check(t, cmd.Process.Signal(syscall.SIGKILL))
			if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("helper: %v", err)
			}
			if r, _ := s.PortRequest(ctx, pr.ID); r.State != store.RequestRunning || r.Owner != "pitasks-killed" {
				t.Fatalf("port request after the kill: %+v", r)
			}
			wantPort(t, psw, 1, true)

			p := &requests.Ports{Store: s, Owner: "pitasks-2", Open: openSNMP, Lease: 5 * time.Second}
			d := &requests.Discoveries{Store: s, Owner: "pitasks-2", Lease: 5 * time.Second,
				Discover: func(context.Context, *store.DiscoveryRun, func(string)) error {
					return errors.New("no discovery was requested after the kill")
				}}
			waitFor(t, "pitasks-2 to take the port request over", func() bool {
				did, err := p.Next(ctx)
				check(t, err)
				return did
			})
			r, err := s.PortRequest(ctx, pr.ID)
			check(t, err)
			if r.State != store.RequestDone || r.Owner != "pitasks-2" || r.Attempts != 2 {
				t.Fatalf("taken over: %+v", r)
			}
			wantPort(t, psw, 1, false)
			waitFor(t, "the stopped discovery run to be ended", func() bool {
				did, err := d.Next(ctx)
				check(t, err)
				if did {
					t.Fatal("claimed a run")
				}
				run, err := s.DiscoveryRun(ctx, dr.ID)
				check(t, err)
				return run.State != store.DiscoveryRunning
			})
			run, err := s.DiscoveryRun(ctx, dr.ID)
			check(t, err)
			if run.State != store.DiscoveryFailed || run.Error != store.StoppedDuringRun || !strings.Contains(run.Output, "port 2: powering on") {
				t.Fatalf("stopped run: %+v", run)
			}
		})
	}
}

// TestHelperPitasks is the pitasks that TestKilledPitasks kills: it claims the port request
// and the discovery run, holds their leases (5 s) and never ends them.
func TestHelperPitasks(t *testing.T) {
	url, held := os.Getenv("PISEDUCE_HELPER_DB"), os.Getenv("PISEDUCE_HELPER_HELD")
	if url == "" {
		t.Skip("run by TestKilledPitasks")
	}
	ctx := context.Background()
	s, err := store.Open(ctx, url)
	check(t, err)
	holding := make(chan string, 2)
	p := &requests.Ports{Store: s, Owner: "pitasks-killed", Lease: 5 * time.Second,
		Open: func(*store.Switch) (requests.Switch, error) { return stuckSwitch{holding}, nil }}
	d := &requests.Discoveries{Store: s, Owner: "pitasks-killed", Lease: 5 * time.Second,
		Discover: func(ctx context.Context, _ *store.DiscoveryRun, progress func(string)) error {
			progress("port 2: powering on")
			holding <- "discovery"
			<-ctx.Done()
			return ctx.Err()
		}}
	go p.Run(ctx)
	go d.Run(ctx)
	<-holding
	<-holding
	check(t, os.WriteFile(held, nil, 0o644))
	select {} // until killed
}

// stuckSwitch never answers.
type stuckSwitch struct{ holding chan<- string }

func (s stuckSwitch) stuck(ctx context.Context) error {
	s.holding <- "port"
	<-ctx.Done()
	return ctx.Err()
}
func (s stuckSwitch) Set(ctx context.Context, _ int, _ bool) error { return s.stuck(ctx) }
func (s stuckSwitch) Cycle(ctx context.Context, _ int, _ time.Duration) error {
	return s.stuck(ctx)
}
func (s stuckSwitch) Status(ctx context.Context, _ int) (power.PortStatus, error) {
	return power.PortStatus{}, s.stuck(ctx)
}
func (s stuckSwitch) StatusAll(ctx context.Context) (map[int]power.PortStatus, error) {
	return nil, s.stuck(ctx)
}

// waitFor polls cond until it holds, for at most two minutes (the machine may be busy).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(fmt.Sprintf("timed out waiting for %s", what))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
