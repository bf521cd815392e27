package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
)

// partTable is the part of `sfdisk --json` we read.
type partTable struct {
	PartitionTable struct {
		Partitions []struct {
			Node  string `json:"node"`
			Start int64  `json:"start"`
			Size  int64  `json:"size"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// partition grows the root partition (2) to the size the user asked for, or to the whole
// card, with an sfdisk script, then grows its file system while it is not mounted.
func (d *Deployer) partition(ctx context.Context, t *engine.Task) error {
	card := cardOf(t)
	return d.withShell(ctx, t, remote.RoleNFS, func(sh Shell) error {
		run(ctx, sh, "umount", rootMount) // a previous attempt may have left it mounted
		out, err := sh.Output(ctx, "sfdisk", "--json", string(card))
		if err != nil {
			return err
		}
		var pt partTable
		if err := json.Unmarshal([]byte(out), &pt); err != nil {
			return fmt.Errorf("reading the card's partition table: %w", err)
		}
		parts := pt.PartitionTable.Partitions
		if len(parts) < 2 {
			return engine.Permanent(errorf(t, "the image has %d partitions, want a boot and a root partition", len(parts)))
		}
		start, cur := parts[1].Start, parts[1].Size
		if want := t.D.Environment.SectorStart; want > 0 && want != start {
			t.Log.Warn("root partition starts elsewhere than the environment says", "sfdisk", start, "environment", want)
		}
		out, err = sh.Output(ctx, "blockdev", "--getsz", string(card))
		if err != nil {
			return err
		}
		total, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			return fmt.Errorf("card size %q: %w", out, err)
		}
		size := total - start // the whole card
		if mib := t.D.SystemSize; mib > 0 {
			size = mib * 2048
		}
		switch {
		case size < cur:
			return engine.Permanent(errorf(t, "a root partition of %d MiB is smaller than the image's (%d MiB)", size/2048, cur/2048))
		case start+size > total:
			return engine.Permanent(errorf(t, "a root partition of %d MiB does not fit on the %d MiB card", size/2048, total/2048))
		}
		script := fmt.Sprintf("%d,%d\n", start, size)
		if err := sh.Run(ctx, []string{"sfdisk", "--no-reread", "--no-tell-kernel", "-q", "-N", "2", string(card)},
			remote.RunOptions{Stdin: strings.NewReader(script)}); err != nil {
			return err
		}
		// Tell the kernel: partx uses BLKPG, which works where a re-read of the table does not.
		run(ctx, sh, "partx", "-u", string(card))
		run(ctx, sh, "partx", "-a", string(card))
		if err := waitPartition(ctx, sh, card.root(), size); err != nil {
			return err
		}
		// e2fsck: 0 = clean, 1 = errors fixed; anything else is a damaged file system.
		if err := run(ctx, sh, "e2fsck", "-f", "-y", card.root()); err != nil {
			var ee *remote.ExitError
			if !errors.As(err, &ee) || ee.Status != 1 {
				return err
			}
		}
		return run(ctx, sh, "resize2fs", card.root())
	})
}

// waitPartition waits until dev exists with the given size in sectors, up to 30 s: udev makes
// the device after the kernel learns of the partition, later on a busy node.
func waitPartition(ctx context.Context, sh Shell, dev string, sectors int64) error {
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		out, err := sh.Output(ctx, "blockdev", "--getsz", dev)
		if err == nil && strings.TrimSpace(out) == strconv.FormatInt(sectors, 10) {
			return nil
		}
		last = strings.TrimSpace(out)
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not appear with %d sectors (last: %s)", dev, sectors, last)
}

// mtools edits the card's FAT boot partition without mounting it (some kernels cannot mount FAT).
func (c cardDev) mtools(tool string, args ...string) []string {
	return append([]string{"env", "MTOOLS_SKIP_CHECK=1", tool, "-i", c.boot()}, args...)
}

// systemConf configures the system on the card: hostname, SSH enabled with a host key made
// here and pinned before the card ever boots (so the system is never trusted on first
// contact), the pimaster's key for root, the account the way its OS family reads it
// (configureFamily), and no bootcode.bin so that a Pi 3B+ keeps booting from the network,
// where its TFTP folder decides.
func (d *Deployer) systemConf(ctx context.Context, t *engine.Task) error {
	name, card := t.D.Node.Name, cardOf(t)
	hostKey, hostPub, err := remote.NewHostKey("root@" + name)
	if err != nil {
		return err
	}
	err = d.withShell(ctx, t, remote.RoleNFS, func(sh Shell) error {
		run(ctx, sh, "umount", rootMount)
		if err := run(ctx, sh, "mkdir", "-p", rootMount); err != nil {
			return err
		}
		if err := run(ctx, sh, "mount", card.root(), rootMount); err != nil {
			return err
		}
		err := d.configureRoot(ctx, sh, name, hostKey, hostPub)
		if err == nil {
			err = d.configureFamily(ctx, sh, t, hostKey, hostPub)
		}
		if uerr := run(ctx, sh, "umount", rootMount); err == nil {
			err = uerr
		}
		if err != nil {
			return err
		}
		return configureBoot(ctx, sh, card)
	})
	if err != nil {
		return err
	}
	return d.Keys.PinHostKey(ctx, remote.RoleSystem, t.D.NodeID, remote.AuthorizedKey(hostPub))
}

// hostKeyPath is the card system's one SSH host key, written by system_conf.
const hostKeyPath = "/etc/ssh/ssh_host_ed25519_key"

// regenerateKeys is Raspberry Pi OS's first-boot service that deletes the host keys and makes
// new ones: masked, or the card's system would answer with keys nobody pinned.
const regenerateKeys = "/etc/systemd/system/regenerate_ssh_host_keys.service"

func (d *Deployer) configureRoot(ctx context.Context, sh Shell, name string, hostKey []byte, hostPub ssh.PublicKey) error {
	if err := sh.Upload(ctx, rootMount+"/etc/hostname", strings.NewReader(name+"\n"), 0o644); err != nil {
		return err
	}
	hosts, _ := sh.Output(ctx, "cat", rootMount+"/etc/hosts")
	if err := sh.Upload(ctx, rootMount+"/etc/hosts", strings.NewReader(withHostname(hosts, name)), 0o644); err != nil {
		return err
	}
	// The pimaster's host key only: an image captured from another node must not give this one
	// its keys.
	if err := run(ctx, sh, "install", "-d", "-m", "755", rootMount+"/etc/ssh", rootMount+"/etc/systemd/system"); err != nil {
		return err
	}
	if err := run(ctx, sh, "find", rootMount+"/etc/ssh", "-maxdepth", "1", "-name", "ssh_host_*", "-delete"); err != nil {
		return err
	}
	if err := sh.Upload(ctx, rootMount+hostKeyPath, bytes.NewReader(hostKey), 0o600); err != nil {
		return err
	}
	pub := remote.AuthorizedKey(hostPub) + " root@" + name + "\n"
	if err := sh.Upload(ctx, rootMount+hostKeyPath+".pub", strings.NewReader(pub), 0o644); err != nil {
		return err
	}
	if err := run(ctx, sh, "ln", "-sfn", "/dev/null", rootMount+regenerateKeys); err != nil {
		return err
	}
	if err := run(ctx, sh, "install", "-d", "-m", "700", rootMount+"/root/.ssh"); err != nil {
		return err
	}
	return sh.Upload(ctx, rootMount+"/root/.ssh/authorized_keys", strings.NewReader(d.PimasterKey+"\n"), 0o600)
}

// withHostname points 127.0.1.1 at name in an /etc/hosts file.
func withHostname(hosts, name string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(hosts, "\n"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "127.0.1.1" || l == "" && len(out) == 0 {
			continue
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		out = append(out, "127.0.0.1\tlocalhost")
	}
	return strings.Join(append(out, "127.0.1.1\t"+name), "\n") + "\n"
}

// configureBoot edits the boot partition. It takes init= out of cmdline.txt: a first-boot
// program there (Raspberry Pi OS's firstboot) would regenerate the host keys and give the disk
// a new PARTUUID, which the copy of cmdline.txt in the node's TFTP folder would not follow. It
// points the root at this node's card (an image for SD cards says root=/dev/mmcblk0p2; on an
// NVMe Pi 5 that is /dev/nvme0n1p2), enables SSH (Raspberry Pi OS's "ssh" file) and removes
// bootcode.bin.
func configureBoot(ctx context.Context, sh Shell, card cardDev) error {
	mtools := card.mtools
	cmdline, err := sh.Output(ctx, mtools("mtype", "::cmdline.txt")...)
	if err != nil {
		return fmt.Errorf("reading the card's cmdline.txt: %w", err)
	}
	var words []string
	for _, w := range strings.Fields(cmdline) {
		if strings.HasPrefix(w, "init=") {
			continue
		}
		if p, ok := strings.CutPrefix(w, "root="+store.DefaultCardDevice+"p"); ok {
			if n, err := strconv.Atoi(p); err == nil {
				w = "root=" + store.CardPartition(string(card), n)
			}
		}
		words = append(words, w)
	}
	if err := card.bootFile(ctx, sh, "cmdline.txt", strings.Join(words, " ")+"\n"); err != nil {
		return err
	}
	if err := card.bootFile(ctx, sh, "ssh", ""); err != nil {
		return err
	}
	list, err := sh.Output(ctx, mtools("mdir", "-b", "::")...)
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(list) {
		if strings.EqualFold(strings.TrimPrefix(f, "::/"), "bootcode.bin") {
			return run(ctx, sh, mtools("mdel", "::bootcode.bin")...)
		}
	}
	return nil
}

// bootFiles copies the card's boot partition into the node's TFTP folder: its next network
// boot starts the system on its card.
func (d *Deployer) bootFiles(ctx context.Context, t *engine.Task) error {
	const dir = "/tmp/piseduce-boot"
	mtools := cardOf(t).mtools
	err := d.withShell(ctx, t, remote.RoleNFS, func(sh Shell) error {
		if err := run(ctx, sh, "rm", "-rf", dir); err != nil {
			return err
		}
		if err := run(ctx, sh, "mkdir", "-p", dir); err != nil {
			return err
		}
		if err := run(ctx, sh, mtools("mcopy", "-s", "-n", "::*", dir+"/")...); err != nil {
			return err
		}
		return d.installBootFiles(ctx, t, sh, dir)
	})
	if onItsCard(t, err, "its boot files were installed") {
		return nil
	}
	return err
}

// onItsCard reports whether err, from boot_files' work on the NFS system, says the node runs
// the system this deployment wrote on its card (its key pinned by system_conf) instead. Only
// the boot files boot_files installs in its TFTP folder boot that system: they were installed
// and the node rebooted, and the record of it was lost (the database down, or pitasks killed,
// before the state's save), so that work is done.
func onItsCard(t *engine.Task, err error, done string) bool {
	if !errors.Is(err, errOtherSystem) {
		return false
	}
	t.Log.Info("the node already runs its deployed system: " + done)
	return true
}

// bootSecrets are boot partition files that hold secrets (a password hash, a cloud-init seed
// with the host key) and that the firmware never reads: they stay on the card, out of the
// TFTP folder, which every node can read.
var bootSecrets = []string{"user-data", "meta-data", "network-config", "vendor-data", "userconf.txt", "userconf"}

// installBootFiles streams dir on the node as a tar archive into the node's TFTP folder.
func (d *Deployer) installBootFiles(ctx context.Context, t *engine.Task, sh Shell, dir string) error {
	pr, pw := io.Pipe()
	installed := make(chan error, 1)
	go func() {
		err := d.Boot.InstallSD(t.D.Node.Serial, pr)
		if err == nil {
			io.Copy(io.Discard, pr) // tar pads its archive past the end marker
		}
		pr.CloseWithError(err)
		installed <- err
	}()
	argv := []string{"tar", "-C", dir}
	for _, f := range bootSecrets {
		argv = append(argv, "--exclude=./"+f)
	}
	err := sh.Run(ctx, append(argv, "-cf", "-", "."), remote.RunOptions{Stdout: pw})
	pw.CloseWithError(err)
	// The installer's error says why the stream was cut, if it was.
	if ierr := <-installed; ierr != nil {
		return bootError(ierr)
	}
	return err
}

// rebootNode reboots the node into the system its TFTP folder now boots.
func (d *Deployer) rebootNode(ctx context.Context, t *engine.Task) (bool, error) {
	if !d.boots.acquire(t.D.NodeID) {
		return false, d.boots.wait
	}
	err := d.reboot(ctx, t, remote.RoleNFS)
	if onItsCard(t, err, "its reboot was done") {
		return true, nil
	}
	return true, err
}

// reboot asks the system in role to reboot. The connection drops as it goes down, so only a
// failure to connect is an error.
func (d *Deployer) reboot(ctx context.Context, t *engine.Task, role string) error {
	sh, err := d.dial(ctx, t, role)
	if err != nil {
		return err
	}
	defer sh.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	run(ctx, sh, "sync")
	run(rctx, sh, "reboot")
	return nil
}
