package power_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/power/powerconf"
)

// hub is a switch driven by testdata/fakehub, which keeps each port's state in a file of dir,
// as uhubctl would drive a USB hub.
type hub struct {
	dir string
	cfg powerconf.Config
}

func newHub(t *testing.T) *hub {
	t.Helper()
	prog, err := filepath.Abs("testdata/fakehub")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	argv := func(action string) []string { return []string{prog, dir, action, "{port}"} }
	return &hub{dir: dir, cfg: powerconf.Config{Name: "usbhub", Driver: "command", Ports: 4, MasterPort: 4,
		Settings: powerconf.Settings{Command: powerconf.Command{On: argv("on"), Off: argv("off"), Status: argv("status"),
			StatusOn: `Port {port}: \S+ power`, StatusOff: `Port {port}: \S+ off`}}}}
}

func (h *hub) open(t *testing.T) power.Controller {
	t.Helper()
	ctl, err := power.Open(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ctl
}

// argv returns the command of fakehub action.
func (h *hub) argv(action string) []string {
	return []string{h.cfg.Command.On[0], h.dir, action, "{port}"}
}

func (h *hub) state(t *testing.T, port int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, strconv.Itoa(port)))
	if errors.Is(err, os.ErrNotExist) {
		return "off"
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// log is what fakehub was asked, in order.
func (h *hub) log(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, "log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestCommandSetStatus(t *testing.T) {
	for _, rule := range []string{"regexp", "exit code"} {
		t.Run(rule, func(t *testing.T) {
			h := newHub(t)
			if rule == "exit code" {
				h.cfg.Command.Status, h.cfg.Command.StatusOn, h.cfg.Command.StatusOff = h.argv("state-exit"), "", ""
			}
			ctl := h.open(t)
			ctx := ctxT(t, time.Minute)
			if err := ctl.Set(ctx, 2, true); err != nil {
				t.Fatal(err)
			}
			if got := h.state(t, 2); got != "on" {
				t.Fatalf("port 2 file says %q after Set on", got)
			}
			if st, err := ctl.Status(ctx, 2); err != nil || !st.On {
				t.Fatalf("Status(2) = %+v, %v; want on", st, err)
			}
			if err := ctl.Set(ctx, 2, false); err != nil {
				t.Fatal(err)
			}
			if st, err := ctl.Status(ctx, 2); err != nil || st.On || h.state(t, 2) != "off" {
				t.Fatalf("Status(2) = %+v, %v, file %q; want off", st, err, h.state(t, 2))
			}
			if err := ctl.Set(ctx, 3, true); err != nil {
				t.Fatal(err)
			}
			m, err := ctl.StatusAll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(m) != 4 || m[1].On || m[2].On || !m[3].On || m[4].On {
				t.Fatalf("StatusAll = %+v; want 1..4 with only 3 on", m)
			}
		})
	}
}

func TestCommandCycle(t *testing.T) {
	h := newHub(t)
	ctl := h.open(t)
	start := time.Now()
	if err := ctl.Cycle(ctxT(t, time.Minute), 1, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("cycle took %s, want the port off at least 300ms", took)
	}
	if want := []string{"off 1", "status 1", "on 1", "status 1"}; strings.Join(h.log(t), ",") != strings.Join(want, ",") {
		t.Fatalf("fakehub was asked %q, want %q (off, read back, on, read back)", h.log(t), want)
	}

	// A switch's own cycle command is used when it has one.
	h = newHub(t)
	h.cfg.Command.Cycle = h.argv("cycle")
	if err := h.open(t).Cycle(ctxT(t, time.Minute), 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	if want := []string{"cycle 1", "status 1"}; strings.Join(h.log(t), ",") != strings.Join(want, ",") || h.state(t, 1) != "on" {
		t.Fatalf("fakehub was asked %q (port %s), want %q", h.log(t), h.state(t, 1), want)
	}
}

func TestCommandRefusesPortsWithoutRunning(t *testing.T) {
	h := newHub(t)
	ctl := h.open(t)
	ctx := ctxT(t, time.Minute)
	if err := ctl.Set(ctx, 4, false); !errors.Is(err, power.ErrMasterPort) {
		t.Fatalf("Set(master) = %v, want ErrMasterPort", err)
	}
	if err := ctl.Cycle(ctx, 4, time.Millisecond); !errors.Is(err, power.ErrMasterPort) {
		t.Fatalf("Cycle(master) = %v, want ErrMasterPort", err)
	}
	for _, p := range []int{0, 5} {
		if err := ctl.Set(ctx, p, true); !errors.Is(err, power.ErrPortRange) {
			t.Fatalf("Set(%d) = %v, want ErrPortRange", p, err)
		}
		if _, err := ctl.Status(ctx, p); !errors.Is(err, power.ErrPortRange) {
			t.Fatalf("Status(%d) = %v, want ErrPortRange", p, err)
		}
	}
	if l := h.log(t); len(l) != 0 {
		t.Fatalf("refused calls ran fakehub: %q", l)
	}
	// The master port's state may be read.
	if _, err := ctl.Status(ctx, 4); err != nil {
		t.Fatal(err)
	}
}

func TestCommandFailures(t *testing.T) {
	ctx := ctxT(t, time.Minute)

	t.Run("exit status", func(t *testing.T) {
		h := newHub(t)
		// The password argument must never show in an error.
		h.cfg.Command.On = append(h.argv("fail"), "--password=hunter2")
		err := h.open(t).Set(ctx, 1, true)
		if !errors.Is(err, power.ErrCommand) || !strings.Contains(err.Error(), "exit status 3") ||
			!strings.Contains(err.Error(), "cannot open hub 1-1: Permission denied") || !strings.Contains(err.Error(), "fakehub") {
			t.Fatalf("Set = %v; want ErrCommand with the exit status and the program's complaint", err)
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), h.dir) {
			t.Fatalf("the error shows the program's arguments: %v", err)
		}
	})

	t.Run("missing program", func(t *testing.T) {
		h := newHub(t)
		h.cfg.Command.Status = []string{"/nonexistent/uhubctl", "-p", "{port}"}
		if _, err := h.open(t).Status(ctx, 1); !errors.Is(err, power.ErrCommand) || !strings.Contains(err.Error(), "/nonexistent/uhubctl") {
			t.Fatalf("Status = %v; want ErrCommand naming the program", err)
		}
	})

	t.Run("unreadable status", func(t *testing.T) {
		h := newHub(t)
		h.cfg.Command.Status = h.argv("garble")
		_, err := h.open(t).Status(ctx, 1)
		if !errors.Is(err, power.ErrBadValue) || !strings.Contains(err.Error(), "neither status_on nor status_off matches") ||
			!strings.Contains(err.Error(), "who knows") {
			t.Fatalf("Status = %v; want ErrBadValue quoting the output", err)
		}
	})

	t.Run("exit code out of the rule", func(t *testing.T) {
		h := newHub(t)
		h.cfg.Command.Status, h.cfg.Command.StatusOn, h.cfg.Command.StatusOff = h.argv("fail"), "", ""
		if _, err := h.open(t).Status(ctx, 1); !errors.Is(err, power.ErrBadValue) || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("Status = %v; want ErrBadValue for exit status 3", err)
		}
	})

	t.Run("read back", func(t *testing.T) {
		h := newHub(t)
		h.cfg.Command.On = h.argv("noop")
		if err := h.open(t).Set(ctx, 1, true); !errors.Is(err, power.ErrReadBack) {
			t.Fatalf("Set = %v; want ErrReadBack when the port stays off", err)
		}
	})
}

func TestCommandHangIsKilled(t *testing.T) {
	h := newHub(t)
	h.cfg.Command.Timeout = 1
	h.cfg.Command.Off = h.argv("hang")
	start := time.Now()
	err := h.open(t).Set(ctxT(t, 5*time.Minute), 1, false)
	if !errors.Is(err, power.ErrNoAnswer) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not finish within 1s") {
		t.Fatalf("Set = %v; want ErrNoAnswer after the 1s timeout", err)
	}
	// Generous: the program is killed at 1s, then os/exec waits at most 1s for its output.
	if took := time.Since(start); took > time.Minute {
		t.Fatalf("a hanging command took %s to give up", took)
	}
	// The program's child (sleep 600) was killed with it.
	b, err := os.ReadFile(filepath.Join(h.dir, "hang.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for syscall.Kill(pid, 0) == nil {
		if time.Since(start) > time.Minute {
			t.Fatalf("the hanging command's child %d is still alive", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCommandCancel(t *testing.T) {
	h := newHub(t)
	h.cfg.Command.Status = h.argv("hang")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	if _, err := h.open(t).Status(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Status = %v; want the context's cancellation", err)
	}
}

func TestCommandValidation(t *testing.T) {
	h := newHub(t)
	cases := []struct {
		name   string
		change func(*powerconf.Config)
		field  string // "" = valid
		say    string
	}{
		{"valid", func(c *powerconf.Config) {}, "", ""},
		{"exit code rule", func(c *powerconf.Config) { c.Command.StatusOn, c.Command.StatusOff = "", "" }, "", ""},
		{"host may be given", func(c *powerconf.Config) { c.Host = "pdu-1.lab.example" }, "", ""},
		{"bad host", func(c *powerconf.Config) { c.Host = "pdu 1" }, "Host", "not an IP address or a host name"},
		{"unknown driver", func(c *powerconf.Config) { c.Driver = "ipmi" }, "Driver", `unknown driver "ipmi" (want snmp or command)`},
		{"no on command", func(c *powerconf.Config) { c.Command.On = nil }, "command.on", "needs this command"},
		{"no status command", func(c *powerconf.Config) { c.Command.Status = nil }, "command.status", "needs this command"},
		{"relative program", func(c *powerconf.Config) { c.Command.Off = []string{"uhubctl", "-a", "off"} }, "command.off", `program "uhubctl" must be an absolute`},
		{"placeholder in program", func(c *powerconf.Config) { c.Command.Off = []string{"/usr/bin/{switch}"} }, "command.off", "without placeholders"},
		{"unknown placeholder", func(c *powerconf.Config) { c.Command.On = []string{"/usr/sbin/uhubctl", "-p", "{prot}"} }, "command.on", "unknown placeholder {prot}"},
		{"newline in an argument", func(c *powerconf.Config) { c.Command.On = []string{"/usr/sbin/uhubctl", "a\nb"} }, "command.on", "argument 1 must be one line"},
		{"bad cycle", func(c *powerconf.Config) { c.Command.Cycle = []string{""} }, "command.cycle", "absolute"},
		{"one regexp only", func(c *powerconf.Config) { c.Command.StatusOff = "" }, "command.status_on", "give both status_on and status_off"},
		{"bad regexp", func(c *powerconf.Config) { c.Command.StatusOff = "Port (" }, "command.status_off", "is not a regular expression"},
		{"negative timeout", func(c *powerconf.Config) { c.Command.Timeout = -1 }, "command.timeout", "from 0"},
		{"no ports", func(c *powerconf.Config) { c.Ports, c.MasterPort = 0, 0 }, "Ports", "ports must be from 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := h.cfg
			c.Command.On = append([]string(nil), c.Command.On...)
			tc.change(&c)
			ctl, err := power.Open(c)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *powerconf.ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, powerconf.ErrConfig) || ce.Problems[0].Field != tc.field || !strings.Contains(err.Error(), tc.say) {
				t.Fatalf("Open = %v, %v; want a ConfigError on %s saying %q", ctl, err, tc.field, tc.say)
			}
		})
	}
}

func TestCommandConfigStringHidesArguments(t *testing.T) {
	h := newHub(t)
	h.cfg.Command.On = append(h.argv("on"), "--password=hunter2")
	if s := h.cfg.String(); strings.Contains(s, "hunter2") || !strings.Contains(s, "fakehub(4 args)") {
		t.Fatalf("String() = %s; want the programs without their arguments", s)
	}
}
