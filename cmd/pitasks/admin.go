package main

// The admin's subcommands, for admin/port.sh, admin/node-state.sh and admin/check.sh:
//
//	pitasks port SWITCH PORT status|on|off|cycle   one PoE port (the master port is refused)
//	pitasks switches [--json]                      does each switch answer; its port grid
//	pitasks nodes [--json] [NAME]                  node state: deployment, progress, lease, events
//
// With --json, a listing is one JSON document with the field names of the web API's, sizes in
// bytes and rates in MiB/s (mib_per_s) as on the web.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/piseduce/piseduce/pkg/cli"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/requests"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/units"
)

const (
	// adminPowerTimeout and adminPowerRetries: an admin waits at most a few seconds for a dead switch.
	adminPowerTimeout = 2 * time.Second
	adminPowerRetries = 1
	// nodeEvents is how many state events "nodes NAME" shows.
	nodeEvents = 10
)

// switchDriver is pitasks' one way from a switch record to its power driver (the admin's
// commands, discovery and the web's port requests).
func switchDriver(sw *store.Switch) (power.Controller, error) {
	return power.Open(sw.PowerConfig(adminPowerTimeout, adminPowerRetries))
}

// openSwitch is switchDriver for the web's port requests (requests.Ports).
func openSwitch(sw *store.Switch) (requests.Switch, error) {
	d, err := switchDriver(sw)
	if err != nil {
		return nil, err // not a nil Controller in a non-nil interface
	}
	return d, nil
}

func portState(st power.PortStatus) string {
	s := "off"
	if st.On {
		s = "on"
	}
	if st.Delivering {
		s += ", delivering power"
	}
	return s
}

func portCommand() *cli.Command {
	return cli.New("pitasks port", "SWITCH PORT status|on|off|cycle",
		"Show one PoE port of SWITCH, or switch it on, off, or off then on (cycle).", 3, 3)
}

// portCmd runs "port SWITCH PORT status|on|off|cycle".
func portCmd(ctx context.Context, st *store.Store, args []string, w io.Writer) error {
	c := portCommand()
	args, err := c.Parse(args)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(args[1])
	if err != nil || port < 1 {
		return c.Errorf("port %q is not a port number (1, 2, …)", args[1])
	}
	action := args[2]
	switch action {
	case "status", "on", "off", "cycle":
	default:
		return c.Errorf("unknown action %q", action)
	}
	sw, err := st.SwitchByName(ctx, args[0])
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no switch named %q (pitasks switches lists them)", args[0])
	}
	if err != nil {
		return err
	}
	drv, err := switchDriver(sw)
	if err != nil {
		return err
	}
	switch action {
	case "on", "off":
		err = drv.Set(ctx, port, action == "on")
	case "cycle":
		fmt.Fprintf(w, "%s port %d: off for %s, then on\n", sw.Name, port, power.OffWait)
		err = drv.Cycle(ctx, port, power.OffWait)
	}
	if err != nil {
		return err
	}
	ps, err := drv.Status(ctx, port)
	if err != nil {
		return err
	}
	master := ""
	if port == sw.MasterPort {
		master = " (master port)"
	}
	fmt.Fprintf(w, "%s port %d%s: %s\n", sw.Name, port, master, portState(ps))
	return nil
}

func switchesCommand() (*cli.Command, *bool) {
	c := cli.New("pitasks switches", "", "Every switch: whether it answers SNMP, and the state of each PoE port.\n"+
		"Fails when a switch does not answer.", 0, 0)
	return c, c.Flags.Bool("json", false, "print JSON: {\"switches\": [...]}")
}

// switchJSON is a switch in "switches --json", with the web API's field names.
type switchJSON struct {
	Name        string     `json:"name"`
	Driver      string     `json:"driver"`
	IP          string     `json:"ip"`
	SNMPPort    int        `json:"snmp_port"`
	SNMPVersion string     `json:"snmp_version"`
	PortCount   int        `json:"port_count"`
	MasterPort  int        `json:"master_port"`
	Ports       []portJSON `json:"ports,omitempty"`
	StatusError string     `json:"status_error,omitempty"`
}

type portJSON struct {
	Port       int    `json:"port"`
	Node       string `json:"node,omitempty"`
	Master     bool   `json:"master"`
	Known      bool   `json:"known"`
	On         bool   `json:"on"`
	Delivering bool   `json:"delivering"`
}

// switchesCmd runs "switches": every switch, whether it answers, and its port grid. It fails
// when a switch does not answer.
func switchesCmd(ctx context.Context, st *store.Store, args []string, w io.Writer) error {
	c, asJSON := switchesCommand()
	if _, err := c.Parse(args); err != nil {
		return err
	}
	sws, err := st.Switches(ctx)
	if err != nil {
		return err
	}
	if len(sws) == 0 && !*asJSON {
		fmt.Fprintln(w, "no switches in the database (pitasks import-cluster DIR, or the admin pages)")
		return nil
	}
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return err
	}
	onPort := map[uint]map[int]string{}
	for _, n := range nodes {
		if onPort[n.SwitchID] == nil {
			onPort[n.SwitchID] = map[int]string{}
		}
		onPort[n.SwitchID][n.Port] = n.Name
	}
	var dead []string
	out := make([]switchJSON, 0, len(sws))
	for i := range sws {
		sw := &sws[i]
		sj := switchJSON{Name: sw.Name, Driver: sw.Driver, IP: sw.IP, SNMPPort: sw.SNMPPort, SNMPVersion: sw.SNMPVersion,
			PortCount: sw.PortCount, MasterPort: sw.MasterPort}
		cfg, err := sw.PowerConfig(adminPowerTimeout, adminPowerRetries).Normalize()
		var drv power.Controller
		if err == nil {
			drv, err = power.Open(cfg)
		}
		if err == nil {
			sj.Driver, sj.PortCount = cfg.Driver, cfg.Ports
			if !*asJSON {
				fmt.Fprintf(w, "%s  %s  %d ports, master port %s\n", sw.Name, cfg.Summary(), cfg.Ports, orNone(sw.MasterPort))
			}
			var m map[int]power.PortStatus
			if m, err = drv.StatusAll(ctx); err == nil {
				if *asJSON {
					sj.Ports = portsJSON(sw, m, onPort[sw.ID])
					out = append(out, sj)
				} else {
					printGrid(w, sw, m, onPort[sw.ID])
				}
				continue
			}
		} else if !*asJSON {
			fmt.Fprintf(w, "%s\n", sw.Name)
		}
		if *asJSON {
			sj.StatusError = err.Error()
			out = append(out, sj)
		} else {
			fmt.Fprintf(w, "  PROBLEM: %v\n", err)
		}
		dead = append(dead, sw.Name)
	}
	if *asJSON {
		if err := writeJSON(w, map[string]any{"switches": out}); err != nil {
			return err
		}
	}
	if len(dead) > 0 {
		return fmt.Errorf("%d of %d switches do not answer: %s", len(dead), len(sws), strings.Join(dead, ", "))
	}
	return nil
}

// portsJSON lists the ports of sw as StatusAll read them (m) with their nodes.
func portsJSON(sw *store.Switch, m map[int]power.PortStatus, nodes map[int]string) []portJSON {
	out := make([]portJSON, 0, sw.PortCount)
	for p := 1; p <= sw.PortCount; p++ {
		ps, known := m[p]
		out = append(out, portJSON{Port: p, Node: nodes[p], Master: p == sw.MasterPort, Known: known, On: ps.On,
			Delivering: ps.Delivering})
	}
	return out
}

// writeJSON writes v indented, for people who read it and for jq.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orNone(port int) string {
	if port == 0 {
		return "none"
	}
	return strconv.Itoa(port)
}

// printGrid prints the ports four to a line: number, state, node.
func printGrid(w io.Writer, sw *store.Switch, m map[int]power.PortStatus, nodes map[int]string) {
	on, delivering := 0, 0
	for _, ps := range m {
		if ps.On {
			on++
		}
		if ps.Delivering {
			delivering++
		}
	}
	fmt.Fprintf(w, "  answers: %d ports on (%d delivering power), %d off\n", on, delivering, len(m)-on)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for p := 1; p <= sw.PortCount; p++ {
		ps, ok := m[p]
		state := "?"
		if ok {
			state = "off"
			if ps.On {
				state = "on"
			}
			if ps.Delivering {
				state += "*"
			}
		}
		who := nodes[p]
		if p == sw.MasterPort {
			who = "(master)"
		}
		if who == "" {
			who = "-"
		}
		sep := "\t"
		if p%4 == 0 || p == sw.PortCount {
			sep = "\n"
		}
		fmt.Fprintf(tw, "  %2d %s %s%s", p, state, who, sep)
	}
	tw.Flush()
	fmt.Fprintln(w, "  (* delivering power)")
}

func nodesCommand() (*cli.Command, *bool) {
	c := cli.New("pitasks nodes", "[NAME]", "Every node on one line: its deployment, state, copy progress and lease;\n"+
		"or one node in detail, with its last state events.", 0, 1)
	return c, c.Flags.Bool("json", false, "print JSON: {\"nodes\": [...]}, or the node NAME")
}

// nodeJSON is a node in "nodes --json", with the web API's field names; Deployment is null
// when the node has had none, Events are given for one node only.
type nodeJSON struct {
	Name       string          `json:"name"`
	Switch     string          `json:"switch"`
	Port       int             `json:"port"`
	Model      string          `json:"model"`
	Serial     string          `json:"serial"`
	IP         string          `json:"ip"`
	MAC        string          `json:"mac"`
	Deployment *deploymentJSON `json:"deployment"`
	Events     []eventJSON     `json:"events,omitempty"`
}

type deploymentJSON struct {
	ID            uint              `json:"id"`
	Name          string            `json:"name"`
	ReservationID uint              `json:"reservation_id"`
	UserID        uint              `json:"user_id"`
	Environment   string            `json:"environment"`
	Process       string            `json:"process"`
	State         process.StateName `json:"state"`
	StateSince    *time.Time        `json:"state_since"`
	Queued        bool              `json:"queued"`
	Hold          string            `json:"hold,omitempty"`
	BytesDone     int64             `json:"bytes_done"`
	BytesTotal    int64             `json:"bytes_total"`
	MiBps         float64           `json:"mib_per_s"`
	LeaseOwner    string            `json:"lease_owner,omitempty"`
	LeaseUntil    *time.Time        `json:"lease_until,omitempty"`
	Failures      int               `json:"failures"`
	LastError     string            `json:"last_error,omitempty"`
}

type eventJSON struct {
	StartedAt  time.Time         `json:"started_at"`
	Process    string            `json:"process"`
	State      process.StateName `json:"state"`
	Outcome    string            `json:"outcome"`
	DurationMS int64             `json:"duration_ms"`
	Message    string            `json:"message,omitempty"`
}

func viewNode(in *store.NodeInspection) nodeJSON {
	n := in.Node
	out := nodeJSON{Name: n.Name, Switch: n.Switch.Name, Port: n.Port, Model: n.Model, Serial: n.Serial, IP: n.IP, MAC: n.MAC}
	if d := in.Deployment; d != nil {
		dj := &deploymentJSON{ID: d.ID, Name: d.Name, ReservationID: d.ReservationID, UserID: d.UserID,
			Environment: d.Environment.Name, Process: d.Process, State: d.State, Queued: d.Queued && d.Active(), Hold: d.Hold,
			BytesDone: d.BytesDone, BytesTotal: d.BytesTotal, MiBps: units.MiBs(d.Throughput), LeaseOwner: d.LeaseOwner,
			Failures: d.Failures, LastError: d.LastError}
		if !d.StateStartedAt.IsZero() {
			t := d.StateStartedAt.UTC()
			dj.StateSince = &t
		}
		if d.LeaseOwner != "" {
			t := d.LeaseUntil.UTC()
			dj.LeaseUntil = &t
		}
		out.Deployment = dj
	}
	for _, e := range in.Events {
		out.Events = append(out.Events, eventJSON{StartedAt: e.StartedAt.UTC(), Process: e.Process, State: e.State,
			Outcome: e.Outcome, DurationMS: e.DurationMS, Message: e.Message})
	}
	return out
}

// nodesCmd runs "nodes [NAME]": every node on one line, or one node in detail with its last
// state events.
func nodesCmd(ctx context.Context, st *store.Store, args []string, w io.Writer) error {
	c, asJSON := nodesCommand()
	args, err := c.Parse(args)
	if err != nil {
		return err
	}
	name := ""
	if len(args) == 1 {
		name = args[0]
	}
	ins, err := st.InspectNodes(ctx, name, nodeEvents)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no node named %q (pitasks nodes lists them)", name)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if name != "" {
			return writeJSON(w, viewNode(&ins[0]))
		}
		out := make([]nodeJSON, len(ins))
		for i := range ins {
			out[i] = viewNode(&ins[i])
			out[i].Events = nil
		}
		return writeJSON(w, map[string]any{"nodes": out})
	}
	if name != "" {
		printNode(w, &ins[0], time.Now())
		return nil
	}
	if len(ins) == 0 {
		fmt.Fprintln(w, "no nodes in the database")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSWITCH/PORT\tMODEL\tDEPLOYMENT\tPROCESS\tSTATE\tPROGRESS\tLEASE\tLAST ERROR")
	for _, in := range ins {
		n := in.Node
		dep, proc, state, prog, lease, lastErr := "-", "-", "-", "-", "-", ""
		if d := in.Deployment; d != nil {
			dep, proc, state, prog = strconv.FormatUint(uint64(d.ID), 10), d.Process, stateOf(d), progress(d)
			if d.LeaseOwner != "" {
				lease = d.LeaseOwner
			}
			lastErr = oneLine(d.LastError, 60)
		}
		fmt.Fprintf(tw, "%s\t%s/%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Switch.Name, n.Port, orDash(n.Model),
			dep, proc, state, prog, lease, lastErr)
	}
	return tw.Flush()
}

func printNode(w io.Writer, in *store.NodeInspection, now time.Time) {
	n := in.Node
	fmt.Fprintf(w, "node %s: switch %s port %d, model %s, serial %s, ip %s, mac %s\n", n.Name, n.Switch.Name, n.Port,
		orDash(n.Model), orDash(n.Serial), orDash(n.IP), orDash(n.MAC))
	d := in.Deployment
	if d == nil {
		fmt.Fprintln(w, "no deployment yet")
		return
	}
	fmt.Fprintf(w, "deployment %d %q: reservation %d, user %d, environment %s\n", d.ID, d.Name, d.ReservationID, d.UserID,
		orDash(d.Environment.Name))
	since := ""
	if !d.StateStartedAt.IsZero() {
		since = fmt.Sprintf(" since %s (%s ago)", stamp(d.StateStartedAt), now.Sub(d.StateStartedAt).Round(time.Second))
	}
	fmt.Fprintf(w, "  process %s, state %s%s\n", d.Process, stateOf(d), since)
	if d.ResumeState != "" {
		fmt.Fprintf(w, "  resumes %s/%s\n", d.ResumeProcess, d.ResumeState)
	}
	if d.Hold != "" {
		fmt.Fprintf(w, "  held: %s\n", d.Hold)
	}
	fmt.Fprintf(w, "  progress %s\n", progress(d))
	lease := "none"
	if d.LeaseOwner != "" {
		lease = fmt.Sprintf("%s until %s", d.LeaseOwner, stamp(d.LeaseUntil))
	}
	fmt.Fprintf(w, "  lease %s\n", lease)
	fmt.Fprintf(w, "  failures %d, hard-rebooted in this state: %t\n", d.Failures, d.Rebooted)
	if d.LastError != "" {
		fmt.Fprintf(w, "  last error: %s\n", oneLine(d.LastError, 500))
	}
	if len(in.Events) == 0 {
		fmt.Fprintln(w, "no state events")
		return
	}
	fmt.Fprintf(w, "last %d state events:\n", len(in.Events))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range in.Events {
		fmt.Fprintf(tw, "  %s\t%s/%s\t%s\t%s\t%s\n", stamp(e.StartedAt), e.Process, e.State, e.Outcome,
			(time.Duration(e.DurationMS) * time.Millisecond).String(), oneLine(e.Message, 120))
	}
	tw.Flush()
}

// stateOf is d's state, and whether it still waits for a worker to start it.
func stateOf(d *store.Deployment) string {
	if d.Queued && d.Active() {
		return string(d.State) + " (queued)"
	}
	return string(d.State)
}

func progress(d *store.Deployment) string {
	if d.BytesTotal <= 0 {
		if d.BytesDone > 0 {
			return units.Bytes(d.BytesDone)
		}
		return "-"
	}
	s := fmt.Sprintf("%d%% (%s of %s)", d.BytesDone*100/d.BytesTotal, units.Bytes(d.BytesDone), units.Bytes(d.BytesTotal))
	if d.Throughput > 0 {
		s += " " + units.Rate(d.Throughput)
	}
	return s
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine flattens s to one line of at most n runes, so a multi-line error keeps a table readable.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
