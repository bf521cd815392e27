package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/remote"
)

// systemUpdate upgrades the deployed system's packages, when the user asked for it.
func (d *Deployer) systemUpdate(ctx context.Context, t *engine.Task) error {
	if !t.D.OSUpdate {
		return nil
	}
	return d.withShell(ctx, t, remote.RoleSystem, func(sh Shell) error {
		apt := []string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y", "-o", "Dpkg::Options::=--force-confold"}
		if err := run(ctx, sh, append(apt, "update")...); err != nil {
			return err
		}
		return run(ctx, sh, append(apt, "dist-upgrade")...)
	})
}

// bootUpdate copies the boot files of an upgraded system (maybe a new kernel) to the node's
// TFTP folder and reboots it on them.
func (d *Deployer) bootUpdate(ctx context.Context, t *engine.Task) error {
	if !t.D.OSUpdate {
		return nil
	}
	err := d.withShell(ctx, t, remote.RoleSystem, func(sh Shell) error {
		// Raspberry Pi OS mounts the boot partition on /boot/firmware since bookworm.
		dir := "/boot"
		if _, err := sh.Output(ctx, "test", "-f", "/boot/firmware/cmdline.txt"); err == nil {
			dir = "/boot/firmware"
		}
		return d.installBootFiles(ctx, t, sh, dir)
	})
	if err != nil {
		return err
	}
	d.boots.note(t.D.NodeID)
	return d.reboot(ctx, t, remote.RoleSystem)
}

func (d *Deployer) bootUpdated(ctx context.Context, t *engine.Task) (bool, error) {
	if !t.D.OSUpdate {
		return true, nil
	}
	return d.systemUp(ctx, t)
}

// account is a user of the deployed system.
type account struct{ name, uid, gid, home string }

// userConf waits until the booted system has applied what system_conf wrote for its family
// (configureFamily): the environment's account exists, and cloud-init has finished.
func (d *Deployer) userConf(ctx context.Context, t *engine.Task) error {
	user := t.D.Environment.SSHUser
	if user == "" {
		user = "root"
	}
	return d.withShell(ctx, t, remote.RoleSystem, func(sh Shell) error {
		return waitFirstBoot(ctx, sh, t, user)
	})
}

// Where the init script and its output go on the node.
const (
	initScript = "/root/piseduce-init.sh"
	initLog    = "/var/log/piseduce-init.log"
	// MaxScriptOutput is how much of the init script's output is kept.
	MaxScriptOutput = 256 << 10
)

// userScript runs the user's init script with the environment's shell; its output is kept on
// the node (initLog) and in the deployment, for its owner. On a cloud-init system the script
// already ran at first boot (runcmd, see writeSeed): its output is collected.
func (d *Deployer) userScript(ctx context.Context, t *engine.Task) error {
	if strings.TrimSpace(t.D.InitScript) == "" {
		return nil
	}
	shell := t.D.Environment.Shell
	if shell == "" {
		shell = "sh"
	}
	return d.withShell(ctx, t, remote.RoleSystem, func(sh Shell) error {
		if t.D.Environment.OSFamily == image.FamilyCloudInit {
			out := &capped{max: MaxScriptOutput}
			if err := sh.Run(ctx, []string{"cat", initLog}, remote.RunOptions{Stdout: out}); err != nil {
				return fmt.Errorf("the init script's output (cloud-init runcmd): %w", err)
			}
			t.D.ScriptOutput = out.String()
			return nil
		}
		if err := sh.Upload(ctx, initScript, strings.NewReader(t.D.InitScript), 0o700); err != nil {
			return err
		}
		out := &capped{max: MaxScriptOutput}
		err := sh.Run(ctx, []string{shell, initScript}, remote.RunOptions{Stdout: out, Stderr: out})
		var ee *remote.ExitError
		status := "exit status 0"
		switch {
		case errors.As(err, &ee):
			status = fmt.Sprintf("exit status %d", ee.Status)
		case err != nil:
			return err
		}
		text := out.String() + fmt.Sprintf("\n[piseduce: init script ended with %s]\n", status)
		t.D.ScriptOutput = text
		return sh.Upload(ctx, initLog, strings.NewReader(text), 0o644)
	})
}

// capped keeps the first max bytes written to it; stdout and stderr write from two goroutines.
type capped struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room < len(p) {
		c.truncated = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.truncated {
		return c.buf.String() + "\n[piseduce: output truncated]"
	}
	return c.buf.String()
}
