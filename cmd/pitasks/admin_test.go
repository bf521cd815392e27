package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab/poeswitch"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/power/powerconf"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// deadUDPAddr returns a loopback UDP port nobody listens on.
func deadUDPAddr(t *testing.T) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr)
	c.Close()
	return addr
}

// adminCluster: a SQLite store whose switch sw1 (4 nodes, master port 5, Linksys-like OID
// offset 48) is a real snmpd on loopback, and a switch "dead" that never answers.
func adminCluster(t *testing.T) (*store.Store, *poeswitch.Switch, *storetest.Cluster) {
	t.Helper()
	testenv.NeedCommand(t, "snmpd")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	psw, err := poeswitch.Start(ctx, poeswitch.Options{Dir: t.TempDir(), Ports: 5, Offset: 48, Community: "rwsecret", Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = psw.Stop() })
	st := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, st, 4)
	sw := c.Switch
	sw.IP, sw.SNMPPort, sw.Community, sw.OIDOffset = psw.Host(), psw.Port(), "rwsecret", 48
	if err := st.UpdateSwitch(ctx, &sw); err != nil {
		t.Fatal(err)
	}
	dead := deadUDPAddr(t)
	if err := st.CreateSwitch(ctx, &store.Switch{Name: "dead", IP: "127.0.0.1", SNMPPort: dead.Port, SNMPVersion: "2c",
		Community: "private", PortCount: 2, OID: poeswitch.AdminOID}); err != nil {
		t.Fatal(err)
	}
	return st, psw, c
}

func TestPortCommand(t *testing.T) {
	st, psw, _ := adminCluster(t)
	ctx := context.Background()
	port := func(args ...string) (string, error) {
		var b bytes.Buffer
		err := portCmd(ctx, st, args, &b)
		return b.String(), err
	}
	isOn := func(p int) bool {
		on, err := psw.PortOn(p)
		if err != nil {
			t.Fatal(err)
		}
		return on
	}

	out, err := port("sw1", "2", "on")
	if err != nil || !strings.Contains(out, "sw1 port 2: on") || !isOn(2) {
		t.Fatalf("on: %v %q (switch says on=%t)", err, out, isOn(2))
	}
	out, err = port("sw1", "2", "status")
	if err != nil || !strings.Contains(out, "sw1 port 2: on") {
		t.Fatalf("status: %v %q", err, out)
	}
	out, err = port("sw1", "2", "off")
	if err != nil || !strings.Contains(out, "sw1 port 2: off") || isOn(2) {
		t.Fatalf("off: %v %q", err, out)
	}
	start := time.Now()
	out, err = port("sw1", "3", "cycle")
	if err != nil || !strings.Contains(out, "off for 3s, then on") || !strings.Contains(out, "sw1 port 3: on") || !isOn(3) {
		t.Fatalf("cycle: %v %q", err, out)
	}
	if time.Since(start) < power.OffWait {
		t.Fatalf("cycle took %s, want at least %s off", time.Since(start), power.OffWait)
	}

	// The master port: status is fine, switching is refused by the driver and the port is untouched.
	if err := psw.SetPort(5, true); err != nil {
		t.Fatal(err)
	}
	if out, err := port("sw1", "5", "status"); err != nil || !strings.Contains(out, "(master port): on") {
		t.Fatalf("master status: %v %q", err, out)
	}
	for _, action := range []string{"off", "cycle"} {
		if _, err := port("sw1", "5", action); !errors.Is(err, power.ErrMasterPort) {
			t.Fatalf("master port %s: %v, want ErrMasterPort", action, err)
		}
	}
	if !isOn(5) {
		t.Fatal("the master port was switched off")
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sw1", "9", "on"}, "port out of range"},
		{[]string{"sw1", "x", "on"}, "not a port number"},
		{[]string{"sw1", "1", "reboot"}, `unknown action "reboot"`},
		{[]string{"nope", "1", "on"}, `no switch named "nope"`},
		{[]string{"sw1", "1"}, "pitasks port: missing argument"},
		{[]string{"dead", "1", "status"}, "no answer"},
	} {
		if _, err := port(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("port %q: %v, want an error containing %q", c.args, err, c.want)
		}
	}
	if _, err := port("dead", "1", "status"); err != nil && strings.Contains(err.Error(), "private") {
		t.Errorf("the community leaks into an error: %v", err)
	}
}

func TestSwitchesCommand(t *testing.T) {
	st, psw, _ := adminCluster(t)
	ctx := context.Background()
	for p, on := range map[int]bool{1: true, 2: false, 3: true, 5: true} {
		if err := psw.SetPort(p, on); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	err := switchesCmd(ctx, st, nil, &b)
	out := b.String()
	if err == nil || !strings.Contains(err.Error(), "1 of 2 switches do not answer: dead") {
		t.Fatalf("switches: err %v, want the dead switch named\n%s", err, out)
	}
	for _, want := range []string{
		"sw1  127.0.0.1:", "SNMP v2c  5 ports, master port 5",
		"answers: 3 ports on",
		" 1 on* node-1", " 2 off node-2", " 4 off node-4", " 5 on* (master)",
		"dead  127.0.0.1:", "PROBLEM: power: ", "no answer",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("switches output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "rwsecret") || strings.Contains(out, "private") {
		t.Errorf("a community is printed:\n%s", out)
	}
	t.Log("\n" + out)

	// --json: the same, for scripts; the dead switch has its error, never a community.
	b.Reset()
	err = switchesCmd(ctx, st, []string{"--json"}, &b)
	var sj struct{ Switches []switchJSON }
	if jerr := json.Unmarshal(b.Bytes(), &sj); jerr != nil || err == nil {
		t.Fatalf("switches --json: %v, %v\n%s", err, jerr, b.String())
	}
	if len(sj.Switches) != 2 || sj.Switches[0].Name != "dead" || !strings.Contains(sj.Switches[0].StatusError, "no answer") ||
		sj.Switches[1].Name != "sw1" || sj.Switches[1].StatusError != "" || len(sj.Switches[1].Ports) != 5 {
		t.Fatalf("switches --json: %+v", sj)
	}
	if p := sj.Switches[1].Ports; p[0] != (portJSON{Port: 1, Node: "node-1", Known: true, On: true, Delivering: true}) ||
		p[1] != (portJSON{Port: 2, Node: "node-2", Known: true}) || !p[4].Master || !p[4].On {
		t.Errorf("switches --json ports: %+v", p)
	}
	if strings.Contains(b.String(), "rwsecret") || strings.Contains(b.String(), "private") {
		t.Errorf("a community is printed:\n%s", b.String())
	}
	if err := st.DeleteSwitch(ctx, mustSwitch(t, st, "dead").ID); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if err := switchesCmd(ctx, st, nil, &b); err != nil {
		t.Fatalf("switches with every switch answering: %v\n%s", err, b.String())
	}
}

func mustSwitch(t *testing.T, st *store.Store, name string) *store.Switch {
	t.Helper()
	sw, err := st.SwitchByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

func TestNodesCommand(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, st, 3)
	ctx := context.Background()
	ds := c.Deploy(t, st, 2) // node-2's request still waits for a worker
	now := time.Now().UTC()
	if err := storetest.DB(st).Model(&store.Deployment{}).Where("id = ?", ds[0].ID).Updates(map[string]any{
		"state": "env_copy", "queued": false, "state_started_at": now.Add(-90 * time.Second), "bytes_done": 50 << 20, "bytes_total": 200 << 20,
		"throughput": 8 << 20, "lease_owner": "pimaster:4242", "lease_until": now.Add(time.Minute),
		"last_error": "ssh: node-1:\nconnection refused", "failures": 2, "system_password": "hunter2secret"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := storetest.DB(st).Create(&store.StateEvent{DeploymentID: ds[0].ID, NodeID: c.Nodes[0].ID, Process: "deploy", State: "turn_on",
		Outcome: store.OutcomeReboot, Message: "no answer after 60s", StartedAt: now.Add(-2 * time.Minute), DurationMS: 60000}).Error; err != nil {
		t.Fatal(err)
	}

	var b bytes.Buffer
	if err := nodesCmd(ctx, st, nil, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "NODE") {
		t.Fatalf("nodes: want a header and 3 lines:\n%s", out)
	}
	for _, want := range []string{"sw1/1", "deploy", "env_copy", "25% (50.0 MiB of 200.0 MiB) 8.0 MiB/s", "pimaster:4242", "ssh: node-1: connection refused"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("node-1 line lacks %q: %s", want, lines[1])
		}
	}
	if !strings.HasPrefix(lines[2], "node-2") || !strings.Contains(lines[2], "boot_conf (queued)") {
		t.Errorf("node-2 line: %s", lines[2])
	}
	if !strings.HasPrefix(lines[3], "node-3") || !strings.Contains(lines[3], "sw1/3") {
		t.Errorf("node-3 line: %s", lines[3])
	}

	b.Reset()
	if err := nodesCmd(ctx, st, []string{"node-1"}, &b); err != nil {
		t.Fatal(err)
	}
	out = b.String()
	for _, want := range []string{"node node-1: switch sw1 port 1, model RPI4B, serial a0000000",
		"environment tiny", "process deploy, state env_copy since", "(1m30s ago)", "lease pimaster:4242 until",
		"failures 2", "last error: ssh: node-1: connection refused", "last 1 state events:", "deploy/turn_on  reboot  1m0s  no answer after 60s"} {
		if !strings.Contains(out, want) {
			t.Errorf("nodes node-1 lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2secret") {
		t.Errorf("the OS password is printed:\n%s", out)
	}
	b.Reset()
	if err := nodesCmd(ctx, st, []string{"node-3"}, &b); err != nil || !strings.Contains(b.String(), "no deployment yet") {
		t.Fatalf("node-3: %v %q", err, b.String())
	}
	if err := nodesCmd(ctx, st, []string{"node-9"}, &b); err == nil || !strings.Contains(err.Error(), `no node named "node-9"`) {
		t.Fatalf("unknown node: %v", err)
	}

	// --json, before or after the name: sizes in bytes and the rate in MiB/s, as the web API.
	b.Reset()
	if err := nodesCmd(ctx, st, []string{"--json"}, &b); err != nil {
		t.Fatal(err)
	}
	var list struct{ Nodes []nodeJSON }
	if err := json.Unmarshal(b.Bytes(), &list); err != nil || len(list.Nodes) != 3 {
		t.Fatalf("nodes --json: %v\n%s", err, b.String())
	}
	d := list.Nodes[0].Deployment
	if list.Nodes[0].Name != "node-1" || d == nil || d.State != "env_copy" || d.BytesDone != 50<<20 || d.BytesTotal != 200<<20 ||
		d.MiBps != 8 || d.LeaseOwner != "pimaster:4242" || d.Failures != 2 || list.Nodes[0].Events != nil {
		t.Errorf("nodes --json node-1: %+v %+v", list.Nodes[0], d)
	}
	if d := list.Nodes[1].Deployment; d == nil || !d.Queued || list.Nodes[2].Deployment != nil {
		t.Errorf("nodes --json: node-2 %+v, node-3 %+v", d, list.Nodes[2].Deployment)
	}
	for _, want := range []string{`"bytes_done": 52428800`, `"mib_per_s": 8`, `"deployment": null`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("nodes --json lacks %s:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := nodesCmd(ctx, st, []string{"node-1", "--json"}, &b); err != nil {
		t.Fatal(err)
	}
	var one nodeJSON
	if err := json.Unmarshal(b.Bytes(), &one); err != nil || one.Name != "node-1" || len(one.Events) != 1 ||
		one.Events[0].Outcome != store.OutcomeReboot || one.Events[0].DurationMS != 60000 {
		t.Fatalf("nodes node-1 --json: %v %+v", err, one)
	}
	if strings.Contains(b.String(), "hunter2secret") {
		t.Errorf("the OS password is printed:\n%s", b.String())
	}
}

// TestPortCommandOnACommandSwitch: "port" and "switches" drive a switch of the command driver
// (pkg/power's fakehub, which keeps each port's state in a file) as they drive SNMP switches.
func TestPortCommandOnACommandSwitch(t *testing.T) {
	ctx := context.Background()
	prog, err := filepath.Abs("../../pkg/power/testdata/fakehub")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	argv := func(action string) []string { return []string{prog, dir, action, "{port}"} }
	st := storetest.Open(t, "sqlite")
	if err := st.CreateSwitch(ctx, &store.Switch{Name: "hub", PortCount: 3, MasterPort: 3, Driver: powerconf.DriverCommand,
		Power: powerconf.Settings{Command: powerconf.Command{On: argv("on"), Off: argv("off"), Status: argv("state-exit")}}}); err != nil {
		t.Fatal(err)
	}
	run := func(cmd func(context.Context, *store.Store, []string, io.Writer) error, args ...string) string {
		t.Helper()
		var b bytes.Buffer
		if err := cmd(ctx, st, args, &b); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, b.String())
		}
		return b.String()
	}
	if out := run(portCmd, "hub", "2", "on"); !strings.Contains(out, "hub port 2: on") {
		t.Fatalf("port hub 2 on: %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "2")); err != nil || strings.TrimSpace(string(b)) != "on" {
		t.Fatalf("port 2's file: %q %v", b, err)
	}
	if out := run(portCmd, "hub", "2", "cycle"); !strings.Contains(out, "hub port 2: on") {
		t.Fatalf("port hub 2 cycle: %q", out)
	}
	var b bytes.Buffer
	if err := portCmd(ctx, st, []string{"hub", "3", "off"}, &b); !errors.Is(err, power.ErrMasterPort) {
		t.Fatalf("port hub 3 off: %v, want the master port refused", err)
	}
	out := run(switchesCmd)
	if !strings.Contains(out, "hub  commands "+prog+"  3 ports, master port 3") || !strings.Contains(out, " 2 on ") {
		t.Fatalf("switches:\n%s", out)
	}
}
