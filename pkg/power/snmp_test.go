package power_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab/poeswitch"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/power/powerconf"
	"github.com/piseduce/piseduce/pkg/testenv"
)

const (
	community = "rw-Community-42"
	v3user    = "poeadmin"
	authPass  = "auth-Pass-4242"
	privPass  = "priv-Pass-4242"
)

func startSwitch(t *testing.T, ports, offset int) *poeswitch.Switch {
	t.Helper()
	testenv.NeedCommand(t, "snmpd")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sw, err := poeswitch.Start(ctx, poeswitch.Options{Dir: t.TempDir(), Ports: ports, Offset: offset,
		Community: community, V3User: v3user, V3AuthPass: authPass, V3PrivPass: privPass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sw.Stop() })
	return sw
}

func v2config(sw *poeswitch.Switch) powerconf.Config {
	return powerconf.Config{Name: "poe-test", Host: "127.0.0.1", Port: sw.Port(), Version: "2c", Community: community,
		OID: sw.OIDBase(), OIDOffset: sw.Offset(), Ports: sw.Ports(), MasterPort: 1, Timeout: time.Second, Retries: 1}
}

func v3config(sw *poeswitch.Switch) powerconf.Config {
	c := v2config(sw)
	c.Version, c.Community = "3", ""
	c.V3User, c.V3AuthProto, c.V3AuthPass, c.V3PrivProto, c.V3PrivPass = v3user, "SHA", authPass, "AES", privPass
	return c
}

func newSNMP(t *testing.T, c powerconf.Config) *power.SNMP {
	t.Helper()
	p, err := power.NewSNMP(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func wantFile(t *testing.T, sw *poeswitch.Switch, port int, on bool) {
	t.Helper()
	got, err := sw.PortOn(port)
	if err != nil || got != on {
		t.Fatalf("switch state of port %d: on=%v err=%v, want on=%v", port, got, err, on)
	}
}

func TestSetStatus(t *testing.T) {
	sw0 := startSwitch(t, 4, 0)
	sw48 := startSwitch(t, 8, 48) // like a Linksys LGS308P
	for _, tc := range []struct {
		name string
		sw   *poeswitch.Switch
		conf func(*poeswitch.Switch) powerconf.Config
	}{
		{"v2c", sw0, v2config},
		{"v2c offset 48", sw48, v2config},
		{"v3 authPriv offset 48", sw48, v3config},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newSNMP(t, tc.conf(tc.sw))
			ctx := ctxT(t, 20*time.Second)
			for _, step := range []struct {
				port int
				on   bool
			}{{2, true}, {3, true}, {2, false}, {4, true}, {4, false}, {3, false}} {
				if err := p.Set(ctx, step.port, step.on); err != nil {
					t.Fatal(err)
				}
				wantFile(t, tc.sw, step.port, step.on)
				st, err := p.Status(ctx, step.port)
				if err != nil {
					t.Fatal(err)
				}
				if want := (power.PortStatus{On: step.on, Delivering: step.on}); st != want {
					t.Fatalf("Status(%d) = %+v, want %+v", step.port, st, want)
				}
			}
		})
	}
}

func TestStatusAll(t *testing.T) {
	for _, tc := range []struct {
		ports, offset int
	}{{4, 0}, {8, 48}, {40, 48}} { // 40 ports = 80 OIDs: more than one request
		t.Run(fmt.Sprintf("%d ports offset %d", tc.ports, tc.offset), func(t *testing.T) {
			sw := startSwitch(t, tc.ports, tc.offset)
			want := map[int]power.PortStatus{}
			for p := 1; p <= tc.ports; p++ {
				on := p%3 == 0
				if err := sw.SetPort(p, on); err != nil {
					t.Fatal(err)
				}
				want[p] = power.PortStatus{On: on, Delivering: on}
			}
			got, err := newSNMP(t, v2config(sw)).StatusAll(ctxT(t, 20*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("StatusAll = %v\nwant %v", got, want)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	sw := startSwitch(t, 4, 0)
	if err := sw.SetPort(1, true); err != nil {
		t.Fatal(err)
	}
	p := newSNMP(t, v2config(sw)) // master port 1
	ctx := ctxT(t, 10*time.Second)
	for _, tc := range []struct {
		name string
		port int
		on   bool
		want error
	}{
		{"master off", 1, false, power.ErrMasterPort},
		{"master on", 1, true, power.ErrMasterPort},
		{"port 0", 0, true, power.ErrPortRange},
		{"port beyond", 5, true, power.ErrPortRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Set(ctx, tc.port, tc.on)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "poe-test") {
				t.Fatalf("Set(%d) = %v, want %v naming the switch", tc.port, err, tc.want)
			}
			wantFile(t, sw, 1, true)
		})
	}
	// Status of the master port is fine.
	if st, err := p.Status(ctx, 1); err != nil || !st.On {
		t.Fatalf("Status(master) = %+v, %v", st, err)
	}
}

// silentUDP returns the address of a loopback UDP socket that never answers.
func silentUDP(t *testing.T) (string, int) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return "127.0.0.1", c.LocalAddr().(*net.UDPAddr).Port
}

// closedUDP returns a loopback UDP port where nothing listens.
func closedUDP(t *testing.T) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

func TestErrors(t *testing.T) {
	sw := startSwitch(t, 4, 0)
	_, silentPort := silentUDP(t)
	closedPort := closedUDP(t)
	type tc struct {
		name    string
		conf    powerconf.Config
		ctx     time.Duration // overall deadline
		maxTime time.Duration
		want    []error
		say     []string
	}
	fast := func(c powerconf.Config) powerconf.Config { c.Timeout, c.Retries = 300*time.Millisecond, 1; return c }
	cases := []tc{
		{"wrong community", func() powerconf.Config { c := fast(v2config(sw)); c.Community = "nope-nope"; return c }(),
			10 * time.Second, 2 * time.Second, []error{power.ErrNoAnswer},
			[]string{`no answer from switch "poe-test" at ` + sw.Addr() + " after ", "s (unreachable, or wrong community)", "port 2"}},
		{"v3 wrong auth password", func() powerconf.Config { c := fast(v3config(sw)); c.V3AuthPass = "wrong-auth-pass"; return c }(),
			10 * time.Second, 2 * time.Second, []error{power.ErrAuth},
			[]string{`switch "poe-test" at ` + sw.Addr(), "wrong authentication password", `v3 user "poeadmin"`, "port 2"}},
		{"v3 wrong priv password", func() powerconf.Config { c := fast(v3config(sw)); c.V3PrivPass = "wrong-priv-pass"; return c }(),
			10 * time.Second, 2 * time.Second, []error{power.ErrNoAnswer}, // the agent drops what it cannot decrypt
			[]string{`no answer from switch "poe-test" at ` + sw.Addr(), "wrong privacy password", "port 2"}},
		{"v3 unknown user", func() powerconf.Config { c := fast(v3config(sw)); c.V3User = "nobody"; return c }(),
			10 * time.Second, 2 * time.Second, []error{power.ErrAuth},
			[]string{`does not know v3 user "nobody"`}},
		{"silent host", func() powerconf.Config { c := fast(v2config(sw)); c.Port = silentPort; return c }(),
			10 * time.Second, 2 * time.Second, []error{power.ErrNoAnswer},
			[]string{"no answer from switch", "127.0.0.1:" + strconv.Itoa(silentPort), "(unreachable, or wrong community)"}},
		{"nothing listening", func() powerconf.Config { c := fast(v2config(sw)); c.Port = closedPort; return c }(),
			10 * time.Second, 2 * time.Second, []error{power.ErrNoAnswer},
			[]string{"127.0.0.1:" + strconv.Itoa(closedPort)}},
		{"ctx deadline before Timeout", func() powerconf.Config { c := v2config(sw); c.Port, c.Timeout = silentPort, 30*time.Second; return c }(),
			300 * time.Millisecond, 2 * time.Second, []error{context.DeadlineExceeded, power.ErrNoAnswer},
			[]string{"port 2", "127.0.0.1:" + strconv.Itoa(silentPort)}},
		{"wrong offset", func() powerconf.Config { c := fast(v2config(sw)); c.OIDOffset = 48; return c }(),
			10 * time.Second, 2 * time.Second, nil, // set: notWritable; status: noSuchInstance
			[]string{".1.3.6.1.2.1.105.1.1.1.3.1.50", "check oid, oid offset and ports"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, op := range []string{"set", "status"} {
				// A driver of its own: after one unanswered request a driver waits longer
				// for the next (TestSlowSwitchIsPaced); this is how fast the first fails.
				p := newSNMP(t, c.conf)
				start := time.Now()
				var err error
				if op == "set" {
					err = p.Set(ctxT(t, c.ctx), 2, true)
				} else {
					_, err = p.Status(ctxT(t, c.ctx), 2)
				}
				took := time.Since(start)
				if err == nil {
					t.Fatalf("%s: no error", op)
				}
				t.Logf("%s: %v", op, err)
				if took > c.maxTime {
					t.Errorf("%s took %s, want at most %s", op, took, c.maxTime)
				}
				for _, w := range c.want {
					if !errors.Is(err, w) {
						t.Errorf("%s: error does not wrap %v", op, w)
					}
				}
				for _, s := range c.say {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("%s: error %q does not say %q", op, err, s)
					}
				}
				if !strings.Contains(err.Error(), " after ") {
					t.Errorf("%s: error %q has no elapsed time", op, err)
				}
				for _, secret := range []string{community, authPass, privPass, "nope-nope", "wrong-auth-pass", "wrong-priv-pass"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("%s: error leaks a secret: %q", op, err)
					}
				}
			}
			wantFile(t, sw, 2, false)
		})
	}
}

func TestCancel(t *testing.T) {
	testenv.NeedCommand(t, "snmpd") // keep the suite's requirements uniform
	host, port := silentUDP(t)
	p := newSNMP(t, powerconf.Config{Name: "silent", Host: host, Port: port, Community: "x", Ports: 4, Timeout: 30 * time.Second, Retries: 3})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	start := time.Now()
	err := p.Set(ctx, 2, true)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("Set after cancel: %v after %s, want context.Canceled quickly", err, time.Since(start))
	}
	// Already cancelled: nothing sent.
	if _, err := p.Status(ctx, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("Status with cancelled ctx: %v", err)
	}
	if _, err := p.StatusAll(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("StatusAll with cancelled ctx: %v", err)
	}
}

func TestParallel(t *testing.T) {
	const n = 20
	sw := startSwitch(t, n+1, 48)
	for _, conf := range []func(*poeswitch.Switch) powerconf.Config{v2config, v3config} {
		c := conf(sw)
		t.Run("v"+c.Version, func(t *testing.T) {
			p := newSNMP(t, c) // one driver shared by all goroutines
			ctx := ctxT(t, 60*time.Second)
			for _, on := range []bool{true, false, true} {
				var wg sync.WaitGroup
				errs := make([]error, n+2)
				for port := 2; port <= n+1; port++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs[port] = p.Set(ctx, port, on)
					}()
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					t.Fatal(err)
				}
				all, err := p.StatusAll(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for port := 2; port <= n+1; port++ {
					wantFile(t, sw, port, on)
					if all[port].On != on || all[port].Delivering != on {
						t.Fatalf("port %d: %+v, want on=%v", port, all[port], on)
					}
				}
			}
		})
	}
}

func TestCycle(t *testing.T) {
	sw := startSwitch(t, 4, 0)
	p := newSNMP(t, v2config(sw))
	if err := sw.SetPort(3, true); err != nil {
		t.Fatal(err)
	}
	// Watch the state file to see the port go off during the cycle.
	sawOff := make(chan bool, 1)
	stop := make(chan struct{})
	go func() {
		off := false
		for {
			select {
			case <-stop:
				sawOff <- off
				return
			default:
			}
			if on, err := sw.PortOn(3); err == nil && !on {
				off = true
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	err := p.Cycle(ctxT(t, 10*time.Second), 3, 300*time.Millisecond)
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if !<-sawOff {
		t.Error("port never seen off during the cycle")
	}
	wantFile(t, sw, 3, true)

	// Cancelled during the off time: the port stays off and the error says so.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	err = p.Cycle(ctx, 3, 10*time.Second)
	if !errors.Is(err, power.ErrCycleAborted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Cycle cancelled: %v", err)
	}
	wantFile(t, sw, 3, false)
}

// TestSessionsInFlight: a driver has at most 4 sessions in flight to its switch; a caller
// behind them gives up on its own deadline without sending anything.
func TestSessionsInFlight(t *testing.T) {
	testenv.NeedCommand(t, "snmpd") // keep the suite's requirements uniform
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	received := make(chan struct{}, 100)
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := silent.ReadFrom(buf); err != nil {
				return
			}
			received <- struct{}{}
		}
	}()
	p := newSNMP(t, powerconf.Config{Name: "slow", Host: "127.0.0.1", Port: silent.LocalAddr().(*net.UDPAddr).Port,
		Community: "x", Ports: 8, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for port := 2; port <= 5; port++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.Set(ctx, port, true) }()
	}
	defer func() { cancel(); wg.Wait() }()
	for range 4 {
		select {
		case <-received:
		case <-time.After(30 * time.Second):
			t.Fatal("the first 4 requests never reached the switch")
		}
	}
	err = p.Set(ctxT(t, 300*time.Millisecond), 6, true)
	if !errors.Is(err, power.ErrNoAnswer) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "not sent to switch \"slow\"") || !strings.Contains(err.Error(), "waiting behind 4 requests") {
		t.Fatalf("fifth Set: %v", err)
	}
	select {
	case <-received:
		t.Fatal("a fifth request reached the switch")
	default:
	}
}

// slowAgent is a switch that answers one request at a time, each after service: a proxy that
// queues every datagram for the real snmpd, answered or long given up on, as a slow agent does.
// It returns its port and the count of requests it served.
func slowAgent(t *testing.T, snmpdPort int, service time.Duration) (int, *atomic.Int64) {
	t.Helper()
	front, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	type datagram struct {
		from net.Addr
		b    []byte
	}
	queue := make(chan datagram, 10000)
	var served atomic.Int64
	go func() {
		defer close(queue)
		for {
			b := make([]byte, 65536)
			n, from, err := front.ReadFrom(b)
			if err != nil {
				return
			}
			queue <- datagram{from, b[:n]}
		}
	}()
	go func() {
		for d := range queue {
			time.Sleep(service)
			back, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(snmpdPort)))
			if err != nil {
				continue
			}
			b := make([]byte, 65536)
			_ = back.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := back.Write(d.b); err == nil {
				if n, err := back.Read(b); err == nil {
					served.Add(1)
					_, _ = front.WriteTo(b[:n], d.from)
				}
			}
			back.Close()
		}
	}()
	return front.LocalAddr().(*net.UDPAddr).Port, &served
}

// TestSlowSwitchIsPaced: a switch whose every answer takes longer than the configured timeout,
// powered on six ports at once by callers that try again on no answer, as the engine does. A
// driver that resends on its configured timeout, four sessions at once, fills the agent's
// queue with requests no one waits for and never sets the ports; the paced driver waits
// longer and sends one at a time once the switch is late, and sets them all.
func TestSlowSwitchIsPaced(t *testing.T) {
	sw := startSwitch(t, 8, 0)
	port, served := slowAgent(t, sw.Port(), 300*time.Millisecond)
	c := v2config(sw)
	c.Port, c.Timeout, c.Retries = port, 200*time.Millisecond, 1
	p := newSNMP(t, c)
	deadline := time.Now().Add(2 * time.Minute)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for port := 2; port <= 7; port++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ctx, cancel := context.WithDeadline(context.Background(), deadline)
				errs[port] = p.Set(ctx, port, true)
				cancel()
				if errs[port] == nil || !errors.Is(errs[port], power.ErrNoAnswer) || time.Now().After(deadline) {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for port := 2; port <= 7; port++ {
		if errs[port] != nil {
			t.Errorf("port %d: %v", port, errs[port])
			continue
		}
		wantFile(t, sw, port, true)
	}
	// Each Set is a set and a get: 12 requests, and a few resent before the driver saw the
	// switch was late.
	if n := served.Load(); n > 40 {
		t.Errorf("the switch served %d requests for 12 needed", n)
	}
	t.Logf("the switch served %d requests", served.Load())
}
