package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/piseduce/piseduce/pkg/power/powerconf"
)

// maxStdout and maxStderr bound the output kept of a run.
const (
	maxStdout = 64 << 10
	maxStderr = 4 << 10
	// excerpt is how much of a program's output an error quotes.
	excerpt = 300
)

// ErrCommand is returned when a power command fails (non-zero exit, killed, not found).
var ErrCommand = errors.New("power command failed")

// commandDriver runs the admin's programs; it is safe for concurrent use.
type commandDriver struct {
	c       powerconf.Config
	timeout time.Duration
	on, off *regexp.Regexp // nil: the exit code says
}

var _ Controller = (*commandDriver)(nil)

func newCommand(n powerconf.Config) *commandDriver {
	d := &commandDriver{c: n, timeout: powerconf.DefaultCommandTimeout}
	if n.Command.Timeout > 0 {
		d.timeout = time.Duration(n.Command.Timeout) * time.Second
	}
	return d
}

// run runs argv for port and returns its output and exit code. A program that cannot start
// is an error wrapping ErrCommand, one killed at the timeout an error wrapping ErrNoAnswer.
func (d *commandDriver) run(ctx context.Context, op string, argv []string, port int) (stdout, stderr []byte, code int, err error) {
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = d.c.Expand(a, port, func(s string) string { return s })
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "LC_ALL=C"}
	// The program and whatever it starts form a process group, killed together at the
	// timeout; WaitDelay stops waiting for output a killed program's orphans still hold.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, errOut := &headBuffer{max: maxStdout}, &headBuffer{max: maxStderr}
	cmd.Stdout, cmd.Stderr = out, errOut
	err = cmd.Run()
	where := fmt.Sprintf("power: %s of switch %q: %s", op, d.c.Name, args[0])
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return nil, nil, -1, fmt.Errorf("%s did not finish within %s, killed: %w: %w%s", where, d.timeout, ErrNoAnswer, ctx.Err(), quoteOutput("stderr", errOut.Bytes()))
	case errors.As(err, &ee) && ee.Exited():
		return out.Bytes(), errOut.Bytes(), ee.ExitCode(), nil
	case err != nil:
		return nil, nil, -1, fmt.Errorf("%s: %w: %v%s", where, ErrCommand, err, quoteOutput("stderr", errOut.Bytes()))
	}
	return out.Bytes(), errOut.Bytes(), 0, nil
}

// quoteOutput is an excerpt of a program's output for an error: its last lines, one line.
func quoteOutput(name string, b []byte) string {
	s := strings.TrimSpace(string(bytes.ToValidUTF8(b, []byte("?"))))
	if s == "" {
		return ""
	}
	if len(s) > excerpt {
		s = "…" + s[len(s)-excerpt:]
		s = strings.ToValidUTF8(s, "")
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return fmt.Sprintf(" (%s: %s)", name, s)
}

// runChecked is run, with a non-zero exit made an error wrapping ErrCommand that quotes the
// program's standard error.
func (d *commandDriver) runChecked(ctx context.Context, op string, argv []string, port int) ([]byte, error) {
	out, stderr, code, err := d.run(ctx, op, argv, port)
	if err == nil && code != 0 {
		err = fmt.Errorf("power: %s of switch %q: %s: %w: exit status %d%s", op, d.c.Name, argv[0], ErrCommand, code, quoteOutput("stderr", stderr))
	}
	return out, err
}

// Set runs the on or off command, then reads the state back and fails if it differs.
func (d *commandDriver) Set(ctx context.Context, port int, on bool) error {
	op := fmt.Sprintf("set port %d %s", port, onOff(on))
	if err := refusePort(d.c, op, port, true); err != nil {
		return err
	}
	argv := d.c.Command.Off
	if on {
		argv = d.c.Command.On
	}
	if _, err := d.runChecked(ctx, op, argv, port); err != nil {
		return err
	}
	return d.readBack(ctx, op, port, on)
}

func (d *commandDriver) readBack(ctx context.Context, op string, port int, on bool) error {
	st, err := d.status(ctx, port)
	if err != nil {
		return err
	}
	if st.On != on {
		return fmt.Errorf("power: %s of switch %q: %w: the status command says %s", op, d.c.Name, ErrReadBack, onOff(st.On))
	}
	return nil
}

// Status runs the status command and reads its answer by the switch's rule.
func (d *commandDriver) Status(ctx context.Context, port int) (PortStatus, error) {
	if err := refusePort(d.c, fmt.Sprintf("status port %d", port), port, false); err != nil {
		return PortStatus{}, err
	}
	return d.status(ctx, port)
}

func (d *commandDriver) status(ctx context.Context, port int) (PortStatus, error) {
	op := fmt.Sprintf("status port %d", port)
	k := d.c.Command
	if k.StatusOn == "" {
		out, _, code, err := d.run(ctx, op, k.Status, port)
		switch {
		case err != nil:
			return PortStatus{}, err
		case code == 0 || code == 1:
			return PortStatus{On: code == 0}, nil
		}
		return PortStatus{}, fmt.Errorf("power: %s of switch %q: %s: %w: exit status %d (want 0 for on, 1 for off)%s",
			op, d.c.Name, k.Status[0], ErrBadValue, code, quoteOutput("stdout", out))
	}
	out, err := d.runChecked(ctx, op, k.Status, port)
	if err != nil {
		return PortStatus{}, err
	}
	// Normalize checked that both compile.
	on := regexp.MustCompile(d.c.Expand(k.StatusOn, port, regexp.QuoteMeta)).Match(out)
	off := regexp.MustCompile(d.c.Expand(k.StatusOff, port, regexp.QuoteMeta)).Match(out)
	if on == off {
		what := "neither status_on nor status_off matches"
		if on {
			what = "both status_on and status_off match"
		}
		return PortStatus{}, fmt.Errorf("power: %s of switch %q: %s: %w: %s its output%s", op, d.c.Name, k.Status[0], ErrBadValue, what, quoteOutput("stdout", out))
	}
	return PortStatus{On: on}, nil
}

// StatusAll runs the status command for every port, one after the other.
func (d *commandDriver) StatusAll(ctx context.Context) (map[int]PortStatus, error) {
	return statusEach(ctx, d.c.Ports, d.status)
}

// Cycle runs the cycle command, if the switch has one, and reads the state back; otherwise
// it switches the port off, waits offFor and switches it on.
func (d *commandDriver) Cycle(ctx context.Context, port int, offFor time.Duration) error {
	if len(d.c.Command.Cycle) == 0 {
		return cycleBySet(ctx, d.Set, d.c.Name, port, offFor)
	}
	op := fmt.Sprintf("cycle port %d", port)
	if err := refusePort(d.c, op, port, true); err != nil {
		return err
	}
	if _, err := d.runChecked(ctx, op, d.c.Command.Cycle, port); err != nil {
		return err
	}
	return d.readBack(ctx, op, port, true)
}

// headBuffer keeps the first max bytes written to it (os/exec writes stdout and stderr
// from goroutines of their own, one writer each).
type headBuffer struct {
	buf bytes.Buffer
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	h.buf.Write(p[:min(len(p), max(h.max-h.buf.Len(), 0))])
	return len(p), nil
}

func (h *headBuffer) Bytes() []byte { return h.buf.Bytes() }
