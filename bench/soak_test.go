package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/power/powerconf"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// The soak's shape: the load test's fleet (pkg/web/load_test.go), 100 viewers, API clients and
// users who reserve, deploy, destroy and end, against both daemons as real processes.
const (
	soakSwitches     = 20
	soakNodesPerSw   = 50
	soakHolders      = 40 // users holding 5 deployed or deploying nodes each: 200 active
	soakChurners     = 10 // users who reserve, deploy, destroy and end in a loop
	soakViewers      = 100
	soakAPIClients   = 10
	soakNodesPerUser = 5
)

// The soak's verdict: after the warm-up (the first quarter of the run), a daemon's resident size
// in the last quarter (median) may exceed the second quarter's by at most this ratio plus this
// slack (a Go heap breathes: the GC lets it grow to twice what is live between collections).
const (
	soakGrowthRatio = 1.20
	soakGrowthSlack = 4 << 20
)

// TestSoak runs pifrontend and pitasks, built as the programs users run, on a database seeded
// with 1,000 nodes and 200 active deployments, for PISEDUCE_SOAK_DURATION (default 4m; an hour:
// 1h) of churn: reservations made and ended, deployments created and destroyed through the API,
// 100 viewers of the deployments pages' event streams coming and going, API clients polling. It
// samples both daemons' VmRSS/VmHWM (/proc) and their goroutines and heap (their /metrics), and
// fails when a daemon's memory grows after the warm-up (see soakGrowthRatio).
//
//	PISEDUCE_SOAK=1 go test -run '^TestSoak$' -v -timeout 2h ./bench/   # or make bench-soak
//
// PISEDUCE_SOAK_DB: sqlite,mysql (default: both, one after the other); PISEDUCE_SOAK_BIN: the
// folder of the built daemons (default: built here); PISEDUCE_SOAK_REPORT: also write the report
// there. Network: every switch and node is on 127.76.0.0/16 or 127.77.0.0/16 where nothing
// listens (checked before pitasks starts); the switches are driven by the command driver
// (touch, rm and test of a file per port), so power is switched without any network.
func TestSoak(t *testing.T) {
	if os.Getenv("PISEDUCE_SOAK") != "1" {
		t.Skip("set PISEDUCE_SOAK=1 to run the soak (make bench-soak)")
	}
	testenv.Need(t, runtime.GOOS == "linux", "Linux (the soak reads /proc)")
	duration := 4 * time.Minute
	if v := os.Getenv("PISEDUCE_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 40*time.Second {
			t.Fatalf("PISEDUCE_SOAK_DURATION=%q: want a duration of 40s or more", v)
		}
		duration = d
	}
	dialects := []string{"sqlite", "mysql"}
	if v := os.Getenv("PISEDUCE_SOAK_DB"); v != "" {
		dialects = strings.Split(v, ",")
	}
	bin := os.Getenv("PISEDUCE_SOAK_BIN")
	if bin == "" {
		bin = t.TempDir()
		build := exec.Command("go", "build", "-trimpath", "-o", bin+"/", "../cmd/pifrontend", "../cmd/pitasks")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	var report strings.Builder
	fmt.Fprintf(&report, "soak: %d nodes, %d active deployments, %d viewers (event streams, coming and going), %d API clients, "+
		"%d users reserving/deploying/destroying/ending; %s per database; load average at start %s\n",
		soakSwitches*soakNodesPerSw, soakHolders*soakNodesPerUser, soakViewers, soakAPIClients, soakChurners, duration, loadAverage())
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) { soak(t, dialect, bin, duration, &report) })
	}
	fmt.Fprintf(&report, "load average at the end: %s\n", loadAverage())
	t.Log("\n" + report.String())
	if p := os.Getenv("PISEDUCE_SOAK_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// soakFleet is what the seed wrote that the clients need.
type soakFleet struct {
	env      uint
	holders  []soakUser // with their deployments' IDs
	churners []soakUser // with the nodes they take turns reserving
}

type soakUser struct {
	cookie, token string
	deployments   []uint
	pool          []uint
}

func soak(t *testing.T, dialect, bin string, duration time.Duration, report *strings.Builder) {
	url := storetest.URL(t, dialect)
	ctx := context.Background()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fleet := seedSoak(t, st, filepath.Join(dir, "power"), duration)
	// What pitasks will read is checked, not what the seed meant to write.
	if err := onlyLoopback(ctx, st); err != nil {
		st.Close()
		t.Fatalf("refusing to start pitasks: %v", err)
	}
	st.Close()
	if err := nothingListens(); err != nil {
		t.Fatalf("refusing to start pitasks: %v", err)
	}

	webPort, webMetrics, tasksMetrics := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	for _, d := range []string{"tftp/rpiboot_uboot", "img", "power"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// boot_conf, the deploy's first step, links a node's TFTP folder to the NFS boot files: with
	// them there, deployments go on to turn_off, which asks the switch.
	if err := os.WriteFile(filepath.Join(dir, "tftp/rpiboot_uboot/cmdline.txt"), []byte("root=/dev/nfs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Every path pitasks writes or signals is in dir: the dnsmasq pid file does not exist, so
	// no dnsmasq is ever sent a signal.
	conf := fmt.Sprintf(`[frontend]
listen = 127.0.0.1
port = %d
public_address = http://127.0.0.1:%[1]d
metrics_listen = 127.0.0.1:%d
[db]
connection_url = %s
[tasks]
tick = @every 2s
metrics_listen = 127.0.0.1:%d
[cluster]
tftp_root = %[5]s/tftp
nfs_boot_dir = %[5]s/tftp/rpiboot_uboot
img_dir = %[5]s/img
ssh_key = %[5]s/id_ed25519
dhcp_hosts_file = %[5]s/dhcp-hosts
dnsmasq_pid_file = %[5]s/no-dnsmasq.pid
dnsmasq_log = %[5]s/dnsmasq.log
`, webPort, webMetrics, url, tasksMetrics, dir)
	cfgPath := filepath.Join(dir, "seducepp.conf")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// The daemons' logs (warnings and errors) are kept beside the report, if any.
	logs := filepath.Join(dir, "soak")
	if p := os.Getenv("PISEDUCE_SOAK_REPORT"); p != "" {
		logs = strings.TrimSuffix(p, filepath.Ext(p)) + "-" + dialect
	}
	daemons := []*daemon{
		startDaemon(t, bin, "pifrontend", cfgPath, logs+"-pifrontend.log", webMetrics),
		startDaemon(t, bin, "pitasks", cfgPath, logs+"-pitasks.log", tasksMetrics),
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", webPort)
	waitUp(t, base+"/login", daemons)
	time.Sleep(5 * time.Second) // pitasks' first ticks, pifrontend's first cache fill
	for _, d := range daemons {
		d.sample(time.Now())
		d.start = d.samples[len(d.samples)-1]
	}

	// The load, until the end of the run; the samplers meanwhile.
	lctx, stop := context.WithTimeout(ctx, duration)
	defer stop()
	var c soakCounters
	var wg sync.WaitGroup
	every := max(2*time.Second, duration/600)
	for _, d := range daemons {
		wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-lctx.Done():
					return
				case now := <-tick.C:
					d.sample(now)
				}
			}
		})
	}
	t0 := time.Now()
	for v := range soakViewers {
		wg.Go(func() { soakViewer(lctx, base, fleet, v, &c) })
	}
	for a := range soakAPIClients {
		wg.Go(func() { soakAPIClient(lctx, base, fleet.holders[a%len(fleet.holders)].token, &c) })
	}
	for _, u := range fleet.churners {
		wg.Go(func() { soakChurner(lctx, base, fleet.env, u, &c) })
	}
	wg.Wait()
	end := time.Now()
	time.Sleep(10 * time.Second) // the viewers are gone: what stays is held
	for _, d := range daemons {
		d.sample(time.Now())
	}
	for _, d := range daemons {
		d.stop(t)
	}

	fmt.Fprintf(report, "\n%s: %s of load (samples every %s); viewer streams %d, events %d; API answers %d (304: %d); "+
		"reservations %d, deployments %d, destroys %d, ends %d; client errors %d\n",
		dialect, end.Sub(t0).Round(time.Second), every, c.streams.Load(), c.events.Load(), c.api.Load(), c.notModified.Load(),
		c.reserved.Load(), c.deployed.Load(), c.destroyed.Load(), c.ended.Load(), c.errors.Load())
	fmt.Fprintf(report, "%-10s %9s %9s %9s %9s %9s %9s %13s %9s  %s\n", "daemon", "RSS start", "Q2 med", "Q4 med", "idle end", "VmHWM",
		"growth", "goroutines", "heap Q4", "verdict")
	for _, d := range daemons {
		q2, q4 := d.quarter(t0, end, 1), d.quarter(t0, end, 3)
		if len(q2) == 0 || len(q4) == 0 {
			t.Fatalf("%s: no samples in the second or last quarter", d.name)
		}
		rss2, rss4 := median(q2, func(s memSample) int64 { return s.rss }), median(q4, func(s memSample) int64 { return s.rss })
		last := d.samples[len(d.samples)-1]
		verdict := "flat"
		if bound := int64(float64(rss2)*soakGrowthRatio) + soakGrowthSlack; rss4 > bound {
			verdict = fmt.Sprintf("GROWS (bound %s)", mib(bound))
			t.Errorf("%s on %s: resident size grows after the warm-up: median %s in the last quarter, %s in the second (bound %s)",
				d.name, dialect, mib(rss4), mib(rss2), mib(bound))
		}
		fmt.Fprintf(report, "%-10s %9s %9s %9s %9s %9s %8.2fx %6d->%-6d %9s  %s\n", d.name, mib(d.start.rss), mib(rss2), mib(rss4),
			mib(last.rss), mib(last.hwm), float64(rss4)/float64(rss2),
			median(q2, func(s memSample) int64 { return s.goroutines }), median(q4, func(s memSample) int64 { return s.goroutines }),
			mib(median(q4, func(s memSample) int64 { return s.heap })), verdict)
	}
	for msg, n := range c.errs {
		fmt.Fprintf(report, "  client error (%d times): %s\n", n, msg)
	}
	// A soak whose clients did nothing proves nothing.
	if c.events.Load() == 0 || c.deployed.Load() == 0 || c.ended.Load() == 0 || c.api.Load() == 0 {
		t.Errorf("the load did not run: %d events, %d deployments made, %d reservations ended, %d API answers",
			c.events.Load(), c.deployed.Load(), c.ended.Load(), c.api.Load())
	}
	if n := c.errors.Load(); n*20 > c.api.Load()+c.streams.Load() {
		t.Errorf("%d client errors (see the log): more than 5%% of the requests", n)
	}
}

// seedSoak writes the fleet: 20 switches of 50 nodes (power switched by the command driver: a
// file per port in powerDir, no network), 40 users holding 5 active deployments
// each, 10 users with nothing yet, a session and an API token for each user.
func seedSoak(t *testing.T, st *store.Store, powerDir string, duration time.Duration) soakFleet {
	ctx := context.Background()
	now := time.Now().UTC()
	db := storetest.DB(st)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	env := store.Environment{Name: "raspios", Type: store.EnvDefault, ImageName: "r.img.gz", ImageFormat: "gz", SSHUser: "pi", Shell: "bash"}
	must(st.CreateEnvironment(ctx, &env))
	var nodes []store.Node
	for s := range soakSwitches {
		port := powerDir + "/{switch}-{port}"
		sw := store.Switch{Name: fmt.Sprintf("sw%02d", s), IP: fmt.Sprintf("127.76.0.%d", s+1), Driver: powerconf.DriverCommand,
			Power: powerconf.Settings{Command: powerconf.Command{On: []string{"/usr/bin/touch", port}, Off: []string{"/usr/bin/rm", "-f", port},
				Status: []string{"/usr/bin/test", "-e", port}}},
			PortCount: soakNodesPerSw + 2, MasterPort: soakNodesPerSw + 2, OID: ".1.3.6.1.2.1.105.1.1.1.3.1"}
		must(st.CreateSwitch(ctx, &sw))
		for p := 1; p <= soakNodesPerSw; p++ {
			nodes = append(nodes, store.Node{Name: fmt.Sprintf("node-%d", s*soakNodesPerSw+p), SwitchID: sw.ID, Port: p,
				IP: fmt.Sprintf("127.77.%d.%d", s, p), Serial: fmt.Sprintf("%08x", 0x5a000000+s*soakNodesPerSw+p),
				Model: []string{"RPI4B", "RPI3Bplus"}[p%2]})
		}
	}
	must(db.CreateInBatches(&nodes, 500).Error)
	hash, err := auth.HashPassword("soak-password-1")
	must(err)
	users := make([]store.User, soakHolders+soakChurners)
	for i := range users {
		users[i] = store.User{Email: fmt.Sprintf("soak%d@example.org", i), PasswordHash: hash, FirstName: "Soak", LastName: fmt.Sprint(i),
			EmailConfirmed: true, Authorized: true}
	}
	must(db.Create(&users).Error)
	fleet := soakFleet{env: env.ID}
	expires := now.Add(duration + 2*time.Hour)
	for i, u := range users {
		su := soakUser{cookie: auth.NewToken(""), token: auth.NewToken("psd_")}
		must(st.CreateSession(ctx, &store.Session{Hash: auth.HashToken(su.cookie), UserID: u.ID, ExpiresAt: expires}))
		must(st.CreateAPIToken(ctx, &store.APIToken{UserID: u.ID, Hash: auth.HashToken(su.token), ExpiresAt: expires}))
		if i < soakHolders {
			fleet.holders = append(fleet.holders, su)
		} else {
			fleet.churners = append(fleet.churners, su)
		}
	}
	// Holder i has nodes i*25 … i*25+4 (spread over the switches), in deploy states whose next
	// check is an hour away; the other 800 nodes are shared out among the churners.
	deployStates := process.All()[process.Deploy].States
	for i := range soakHolders {
		u := users[i]
		r := store.Reservation{UserID: u.ID, StartsAt: now.Add(-time.Hour), EndsAt: now.Add(duration + 2*time.Hour)}
		must(db.Omit("Nodes", "User").Create(&r).Error)
		var links []map[string]any
		var deps []store.Deployment
		for k := range soakNodesPerUser {
			n := nodes[i*25+k]
			links = append(links, map[string]any{"reservation_id": r.ID, "node_id": n.ID})
			deps = append(deps, store.Deployment{ReservationID: r.ID, NodeID: n.ID, UserID: u.ID, Name: "soak", EnvironmentID: env.ID,
				Process: process.Deploy, State: deployStates[(i+k)%len(deployStates)].Name, StateStartedAt: now, NextCheckAt: now.Add(time.Hour),
				BytesDone: 500_000_000, BytesTotal: 1_800_000_000, Throughput: 9_000_000, SystemPassword: "x"})
		}
		must(db.Table("reservation_nodes").Create(links).Error)
		must(db.Omit("Node", "Reservation", "Environment").Create(&deps).Error)
		for _, d := range deps {
			fleet.holders[i].deployments = append(fleet.holders[i].deployments, d.ID)
		}
	}
	c := 0
	for i, n := range nodes {
		if i%25 >= soakNodesPerUser || i/25 >= soakHolders {
			fleet.churners[c%soakChurners].pool = append(fleet.churners[c%soakChurners].pool, n.ID)
			c++
		}
	}
	return fleet
}

// onlyLoopback checks every switch's and node's address in the database: pitasks must reach
// nothing but loopback.
func onlyLoopback(ctx context.Context, st *store.Store) error {
	loop := netip.MustParsePrefix("127.0.0.0/8")
	var addrs []string
	sws, err := st.Switches(ctx)
	if err != nil {
		return err
	}
	for _, s := range sws {
		addrs = append(addrs, "switch "+s.Name+" "+s.IP)
	}
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		addrs = append(addrs, "node "+n.Name+" "+n.IP)
	}
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a[strings.LastIndexByte(a, ' ')+1:])
		if err != nil || !loop.Contains(ip) {
			return fmt.Errorf("%s is not a loopback address (127.0.0.0/8)", a)
		}
	}
	if len(addrs) == 0 {
		return errors.New("no switch or node seeded")
	}
	return nil
}

// nothingListens checks that no socket of this network namespace listens on SSH's port 22 on
// an address the soak's nodes have (127.77/16, or any address): pitasks' SSH reaches nobody.
func nothingListens() error {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		fs := strings.Fields(line)
		if len(fs) < 4 || fs[3] != "0A" { // LISTEN
			continue
		}
		// The address is little-endian hex: 127.77.x.y is "yx4D7F"; port 22 is "0016".
		if addr, port, _ := strings.Cut(fs[1], ":"); port == "0016" && (addr == "00000000" || strings.HasSuffix(addr, "4D7F")) {
			return fmt.Errorf("/proc/net/tcp: a socket listens on %s:22", addr)
		}
	}
	return nil
}

// daemon is one of the two programs, running, and its memory samples.
type daemon struct {
	name     string
	cmd      *exec.Cmd
	metrics  string
	done     chan struct{}
	mu       sync.Mutex
	samples  []memSample
	start    memSample
	waitErr  error
	metricsC *http.Client
}

type memSample struct {
	at                     time.Time
	rss, hwm, heap         int64 // bytes
	goroutines             int64
	procErr, metricsFailed bool
}

func startDaemon(t *testing.T, bin, name, cfgPath, logPath string, metricsPort int) *daemon {
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, name), "-config", cfgPath, "-log-level", "warn")
	cmd.Stdout, cmd.Stderr, cmd.Dir = log, log, filepath.Dir(cfgPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{}), metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		metricsC: &http.Client{Timeout: 10 * time.Second}}
	go func() {
		d.waitErr = cmd.Wait()
		log.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("%s's log (last 4 KiB):\n%s", name, b[max(0, len(b)-4096):])
		}
	})
	return d
}

// sample records the process's VmRSS and VmHWM and, from its /metrics, its goroutines and heap.
func (d *daemon) sample(now time.Time) {
	s := memSample{at: now}
	var err error
	s.rss, s.hwm, err = residentSize(strconv.Itoa(d.cmd.Process.Pid))
	s.procErr = err != nil
	s.metricsFailed = true
	if res, err := d.metricsC.Get(d.metrics); err == nil {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			name, v, _ := strings.Cut(sc.Text(), " ")
			f, _ := strconv.ParseFloat(v, 64)
			switch name {
			case "go_goroutines":
				s.goroutines, s.metricsFailed = int64(f), false
			case "go_memstats_heap_inuse_bytes":
				s.heap = int64(f)
			}
		}
		res.Body.Close()
	}
	d.mu.Lock()
	d.samples = append(d.samples, s)
	d.mu.Unlock()
}

// residentSize returns VmRSS and VmHWM of process pid ("self": this one), in bytes.
func residentSize(pid string) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm, err
}

// quarter returns the samples of the q-th quarter (0…3) of [from, to).
func (d *daemon) quarter(from, to time.Time, q int) []memSample {
	d.mu.Lock()
	defer d.mu.Unlock()
	span := to.Sub(from) / 4
	lo, hi := from.Add(time.Duration(q)*span), from.Add(time.Duration(q+1)*span)
	var out []memSample
	for _, s := range d.samples {
		if !s.at.Before(lo) && s.at.Before(hi) && !s.procErr {
			out = append(out, s)
		}
	}
	return out
}

// stop ends the daemon as systemd does (SIGTERM) and wants it gone cleanly within 30 s.
func (d *daemon) stop(t *testing.T) {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if d.waitErr != nil {
			t.Errorf("%s stopped with %v", d.name, d.waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop within 30 s of SIGTERM", d.name)
	}
}

// waitUp waits for url to answer, or a daemon to die.
func waitUp(t *testing.T, url string, ds []*daemon) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		for _, d := range ds {
			select {
			case <-d.done:
				t.Fatalf("%s exited: %v", d.name, d.waitErr)
			default:
			}
		}
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not answer within 2 minutes", url)
}

type soakCounters struct {
	streams, events, api, notModified    atomic.Int64
	reserved, deployed, destroyed, ended atomic.Int64
	errors                               atomic.Int64
	errMu                                sync.Mutex
	errs                                 map[string]int // by message, the first 20 kinds
}

func (c *soakCounters) fail(ctx context.Context, what string, err error) {
	if ctx.Err() != nil { // the end of the run cut it short
		return
	}
	c.errors.Add(1)
	c.errMu.Lock()
	if c.errs == nil {
		c.errs = map[string]int{}
	}
	if msg := what + ": " + err.Error(); c.errs[msg] > 0 || len(c.errs) < 20 {
		c.errs[msg]++
	}
	c.errMu.Unlock()
}

// soakViewer is a person with a deployments page open, who leaves and comes back: the page,
// then its event stream for 5 to 40 s, then a pause of up to 3 s. Even viewers watch a holder's
// five deployments, odd ones a churner's current deployments.
func soakViewer(ctx context.Context, base string, f soakFleet, v int, c *soakCounters) {
	client := &http.Client{}
	cookie, ids := f.churners[v%len(f.churners)].cookie, ""
	if v%2 == 0 {
		h := f.holders[v/2%len(f.holders)]
		cookie = h.cookie
		var s []string
		for _, id := range h.deployments {
			s = append(s, fmt.Sprint(id))
		}
		ids = "?ids=" + strings.Join(s, ",")
	}
	get := func(ctx context.Context, path string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.AddCookie(&http.Cookie{Name: "piseduce_session", Value: cookie})
		res, err := client.Do(req)
		if err == nil && res.StatusCode != http.StatusOK {
			res.Body.Close()
			return nil, fmt.Errorf("GET %s: %s", path, res.Status)
		}
		return res, err
	}
	buf := make([]byte, 32<<10)
	for ctx.Err() == nil {
		if res, err := get(ctx, "/deployments"); err != nil {
			c.fail(ctx, "viewer page", err)
		} else {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		sctx, cancel := context.WithTimeout(ctx, time.Duration(5+rand.IntN(36))*time.Second)
		res, err := get(sctx, "/deployments/events"+ids)
		if err != nil {
			c.fail(sctx, "viewer stream", err)
		} else {
			c.streams.Add(1)
			for {
				n, err := res.Body.Read(buf)
				c.events.Add(int64(bytes.Count(buf[:n], []byte("event: deployment"))))
				if err != nil {
					break
				}
			}
			res.Body.Close()
		}
		cancel()
		sleep(ctx, time.Duration(rand.IntN(3000))*time.Millisecond)
	}
}

// soakAPIClient is a script polling the API every 2 s with ETags, as the user CLI does.
func soakAPIClient(ctx context.Context, base, token string, c *soakCounters) {
	client := &http.Client{Timeout: time.Minute}
	etags := map[string]string{}
	for ctx.Err() == nil {
		for _, path := range []string{"/api/v1/deployments", "/api/v1/nodes", "/api/v1/reservations"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			if e := etags[path]; e != "" {
				req.Header.Set("If-None-Match", e)
			}
			res, err := client.Do(req)
			if err != nil {
				c.fail(ctx, "API client", err)
				continue
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			switch res.StatusCode {
			case http.StatusOK:
				c.api.Add(1)
				etags[path] = res.Header.Get("ETag")
			case http.StatusNotModified:
				c.api.Add(1)
				c.notModified.Add(1)
			default:
				c.fail(ctx, "API client", fmt.Errorf("GET %s: %s", path, res.Status))
			}
		}
		sleep(ctx, 2*time.Second)
	}
}

// soakChurner is a user who, over and over, reserves 5 of their nodes for an hour, deploys on
// them, destroys the deployments after 5 to 20 s and ends the reservation; the next turn takes
// the next 5 nodes of the pool, while pitasks works on the last turn's.
func soakChurner(ctx context.Context, base string, env uint, u soakUser, c *soakCounters) {
	client := &http.Client{Timeout: time.Minute}
	call := func(method, path string, body any, want int, out any) bool {
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequestWithContext(ctx, method, base+"/api/v1"+path, r)
		req.Header.Set("Authorization", "Bearer "+u.token)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			c.fail(ctx, "churn", err)
			return false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != want {
			c.fail(ctx, "churn", fmt.Errorf("%s %s: %s: %.300s", method, path, res.Status, b))
			return false
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				c.fail(ctx, "churn", fmt.Errorf("%s %s: %v", method, path, err))
				return false
			}
		}
		return true
	}
	for turn := 0; ctx.Err() == nil; turn++ {
		var nodes []uint
		for k := range soakNodesPerUser {
			nodes = append(nodes, u.pool[(turn*soakNodesPerUser+k)%len(u.pool)])
		}
		var r struct{ ID uint }
		if !call(http.MethodPost, "/reservations", map[string]any{"node_ids": nodes, "hours": 1}, http.StatusCreated, &r) {
			sleep(ctx, 5*time.Second)
			continue
		}
		c.reserved.Add(1)
		var ds struct{ Deployments []struct{ ID uint } }
		if call(http.MethodPost, "/deployments", map[string]any{"reservation_id": r.ID, "environment_id": env, "name": "churn"}, http.StatusCreated, &ds) {
			c.deployed.Add(int64(len(ds.Deployments)))
			sleep(ctx, time.Duration(5+rand.IntN(16))*time.Second)
			for _, d := range ds.Deployments {
				if call(http.MethodPost, fmt.Sprintf("/deployments/%d/destroy", d.ID), nil, http.StatusAccepted, nil) {
					c.destroyed.Add(1)
				}
			}
		}
		sleep(ctx, 2*time.Second)
		if call(http.MethodPost, fmt.Sprintf("/reservations/%d/end", r.ID), nil, http.StatusOK, nil) {
			c.ended.Add(1)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func median(ss []memSample, f func(memSample) int64) int64 {
	vs := make([]int64, len(ss))
	for i, s := range ss {
		vs[i] = f(s)
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:min(3, len(strings.Fields(string(b))))], " ")
}
