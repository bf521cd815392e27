package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pollInterval is how often a node reads its port state. A power cut shorter than about two
// intervals may go unnoticed, like a real Pi riding through a very short cut.
const pollInterval = 25 * time.Millisecond

// node supervises one virtual Pi: its switch port is its power.
type node struct {
	lab *Lab
	d   NodeDesc
}

func (n *node) event(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	ts := strconv.FormatFloat(float64(time.Now().UnixNano())/1e9, 'f', 3, 64)
	if f, err := os.OpenFile(n.d.EventsLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		fmt.Fprintf(f, "%s %s\n", ts, msg)
		f.Close()
	}
	n.lab.logf("%s: %s", n.d.Name, msg)
}

func (n *node) setState(s string) {
	os.WriteFile(filepath.Join(n.d.Dir, "state"), []byte(s+"\n"), 0o644)
}

// portOn reads the switch's port state file (1 = on, 2 or absent = off).
func (n *node) portOn() bool {
	b, err := os.ReadFile(filepath.Join(n.lab.Desc.Switch.PortDir, strconv.Itoa(n.d.Port)))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func (n *node) supervise(ctx context.Context) {
	var (
		cmd     *exec.Cmd
		done    chan error
		powered bool
		halted  bool
		bootAt  time.Time
	)
	delay := time.Duration(n.d.BootDelayMS) * time.Millisecond
	n.setState("off")
	stop := func() {
		if cmd != nil {
			cmd.Process.Kill() // SIGKILL of unshare: --kill-child takes the node's PID 1, and so every process, with it
			<-done
			cmd, done = nil, nil
		}
		n.cutPower()
	}
	for {
		on := n.portOn()
		now := time.Now()
		if !on && powered {
			stop()
			powered, halted = false, false
			n.event("power off")
			n.setState("off")
		}
		if on && !powered {
			powered, halted = true, false
			bootAt = now.Add(delay)
			n.event("power on")
			n.setState("booting")
		}
		if on && cmd == nil && !halted && !now.Before(bootAt) {
			c, ch, err := n.start()
			if err != nil {
				n.event("start failed: %v", err)
				bootAt = now.Add(n.lab.opts.RetryDelay)
			} else {
				cmd, done = c, ch
			}
		}
		select {
		case <-ctx.Done():
			if cmd != nil || powered {
				stop()
			}
			return
		case err := <-done:
			cmd, done = nil, nil
			code := exitCode(err)
			n.cutPower()
			switch code {
			case 0:
				halted = true
				n.event("halted (power it off and on to boot again)")
			case 20:
				bootAt = time.Now().Add(n.lab.opts.RetryDelay)
				n.event("retrying boot in %v", n.lab.opts.RetryDelay)
				n.setState("failed")
			default:
				bootAt = time.Now().Add(delay)
				if code != 10 {
					n.event("node ended (%v): rebooting", err)
				}
				n.setState("booting")
			}
		case <-time.After(pollInterval):
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func (n *node) start() (*exec.Cmd, chan error, error) {
	sc := filepath.Join(n.lab.Desc.Dir, "scripts", "boot.sh")
	cmd := exec.Command("ip", "netns", "exec", n.d.Netns, "unshare", "--mount", "--uts", "--pid", "--fork",
		"--kill-child", "--mount-proc", "--propagation", "private", "/bin/sh", sc, n.d.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := os.OpenFile(filepath.Join(n.d.Dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C"}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, nil, err
	}
	pidFile := filepath.Join(n.d.Dir, "unshare.pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		out.Close()
		os.Remove(pidFile)
		done <- err
	}()
	return cmd, done, nil
}

// cutPower makes the node's link dead (no address, link down) and waits until the kernel has
// let go of the card's file systems mounted by the (now dead) node.
func (n *node) cutPower() {
	run("ip", "-n", n.d.Netns, "addr", "flush", "dev", "eth0")
	run("ip", "-n", n.d.Netns, "link", "set", "eth0", "down")
	waitCardReleased(n.d.LoopDev, 5*time.Second)
}

// WaitCardReleased waits up to max until no ext4 file system of the node's card is mounted
// anywhere: a node powered off has its card's file systems unmounted by the kernel once its
// namespaces are gone, which the lab waits for only 5 s. It tells whether they were.
func (n NodeDesc) WaitCardReleased(max time.Duration) bool { return waitCardReleased(n.LoopDev, max) }

// waitCardReleased waits until no ext4 file system of loop (or its partitions) is mounted anywhere.
func waitCardReleased(loop string, max time.Duration) bool {
	base := filepath.Base(loop)
	if base == "" || base == "." {
		return true
	}
	deadline := time.Now().Add(max)
	for {
		busy := false
		ents, _ := os.ReadDir("/sys/fs/ext4")
		for _, e := range ents {
			if e.Name() == base || strings.HasPrefix(e.Name(), base+"p") {
				busy = true
			}
		}
		if !busy {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Faults a test can inject into a node with Lab.InjectFault.
const (
	FaultNone     = ""
	FaultHangOnce = "hang-once" // the next boot hangs before the firmware: no DHCP, no SSH
	FaultHang     = "hang"      // every boot hangs until the fault is cleared
	// FaultSlow: every boot takes 10 s more once the node's processes run (before its DHCP
	// request), long enough for a test to catch the node booting.
	FaultSlow = "slow"
	// FaultNewHostKey: at its next boot the node answers SSH with a host key nobody pinned, as
	// another machine at its address would. Booting its card, it makes the card a new key
	// (kept); booting the NFS system, its sshd has a key of its own for that boot.
	FaultNewHostKey = "new-host-key-once"
)

// InjectFault sets the fault of the named node's next boots (FaultNone clears it).
func (l *Lab) InjectFault(name, fault string) error {
	n := l.Desc.Node(name)
	if n == nil {
		return fmt.Errorf("lab: no node %q", name)
	}
	p := filepath.Join(n.Dir, "fault")
	if fault == FaultNone {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	if fault != FaultHangOnce && fault != FaultHang && fault != FaultSlow && fault != FaultNewHostKey {
		return fmt.Errorf("lab: unknown fault %q", fault)
	}
	return writeAtomic(p, []byte(fault+"\n"), 0o644)
}
