// Package netboot manages what each node finds in its TFTP folder, <tftp_root>/<serial>/,
// which decides what it boots: the NFS system or the system on its own SD card.
//
// <serial> is always a symlink, switched atomically (a new link renamed over the old one), so a
// node that asks TFTP in the middle of a change sees the old folder or the new one, never a
// half-written one: to the shared NFS boot files for an NFS boot, to a private copy of the
// card's boot partition under <tftp_root>/.sd/ for an SD boot.
package netboot

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/piseduce/piseduce/pkg/nodeid"
)

// Mode is what a node's TFTP folder makes it boot.
type Mode string

const (
	ModeNone Mode = "none" // no folder: the node's network boot fails
	ModeNFS  Mode = "nfs"
	ModeSD   Mode = "sd"
)

// sdDir holds the per-node copies of card boot files.
const sdDir = ".sd"

// ErrBadBootFiles: boot files that cannot be installed as they are (unsafe paths, links or
// devices, too big, no cmdline.txt); trying again cannot fix them (errors.Is). A serial that
// names no TFTP folder is nodeid.ErrBadSerial.
var ErrBadBootFiles = errors.New("unusable boot files")

// MaxBootFiles bounds what InstallSD accepts: a Pi boot partition is a few tens of MiB.
const MaxBootFiles = 512 << 20

// TFTP manages the folders under Root; NFSBootDir holds the boot files of the NFS system.
type TFTP struct {
	Root       string
	NFSBootDir string
}

func (t TFTP) link(serial string) (string, error) {
	if err := nodeid.CheckSerial(serial); err != nil {
		return "", fmt.Errorf("netboot: %w", err)
	}
	return filepath.Join(t.Root, serial), nil
}

// BootNFS points the node's folder at the NFS boot files.
func (t TFTP) BootNFS(serial string) error {
	if _, err := os.Stat(filepath.Join(t.NFSBootDir, "cmdline.txt")); err != nil {
		return fmt.Errorf("netboot: NFS boot files: %w", err)
	}
	return t.switchTo(serial, t.NFSBootDir)
}

// InstallSD unpacks a tar stream of the card's boot partition (regular files and folders
// only) into a private folder and points the node at it.
func (t TFTP) InstallSD(serial string, tarStream io.Reader) error {
	if _, err := t.link(serial); err != nil {
		return err
	}
	base := filepath.Join(t.Root, sdDir)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return fmt.Errorf("netboot: %w", err)
	}
	dir, err := os.MkdirTemp(base, serial+".")
	if err != nil {
		return fmt.Errorf("netboot: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("netboot: %w", err)
	}
	if err := untar(dir, tarStream); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("netboot: boot files of %s: %w", serial, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cmdline.txt")); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("netboot: boot files of %s have no cmdline.txt: %w", serial, ErrBadBootFiles)
	}
	return t.switchTo(serial, dir)
}

// Clear removes the node's folder: its next network boot fails, as for a node nobody uses.
func (t TFTP) Clear(serial string) error {
	link, err := t.link(serial)
	if err != nil {
		return err
	}
	old, _ := os.Readlink(link)
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netboot: %w", err)
	}
	t.removeSD(old)
	return nil
}

// Mode reports what the node's folder makes it boot.
func (t TFTP) Mode(serial string) (Mode, error) {
	link, err := t.link(serial)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(link, "cmdline.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return ModeNone, nil
	}
	if err != nil {
		return "", fmt.Errorf("netboot: %w", err)
	}
	if bytes.Contains(b, []byte("root=/dev/nfs")) {
		return ModeNFS, nil
	}
	return ModeSD, nil
}

// switchTo atomically points the node's link at target and removes the SD copy it replaced.
func (t TFTP) switchTo(serial, target string) error {
	link, err := t.link(serial)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(t.Root, 0o755); err != nil {
		return fmt.Errorf("netboot: %w", err)
	}
	old, _ := os.Readlink(link)
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		// A real folder left by the original PiSeduce or by hand: replace it.
		if err := os.RemoveAll(link); err != nil {
			return fmt.Errorf("netboot: %w", err)
		}
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	tmp := link + ".new-" + hex.EncodeToString(b)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("netboot: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("netboot: %w", err)
	}
	if old != target {
		t.removeSD(old)
	}
	return nil
}

// removeSD deletes a private SD copy (and nothing else: the NFS boot files stay).
func (t TFTP) removeSD(target string) {
	if target != "" && filepath.Dir(target) == filepath.Join(t.Root, sdDir) {
		os.RemoveAll(target)
	}
}

// untar extracts regular files and folders under dir, refusing any path that leaves it.
func untar(dir string, r io.Reader) error {
	tr := tar.NewReader(r)
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == "." {
			continue
		}
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("unsafe path %q in boot files: %w", h.Name, ErrBadBootFiles)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			total += h.Size
			if total > MaxBootFiles {
				return fmt.Errorf("boot files larger than %d MiB: %w", MaxBootFiles>>20, ErrBadBootFiles)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, io.LimitReader(tr, h.Size))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%q in boot files is not a regular file or folder: %w", h.Name, ErrBadBootFiles)
		}
	}
}
