package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// A fake-capacity card, as cheap counterfeit cards are: it tells the size of a big card but
// stores only its first keepMiB MiB, and a write beyond lands at its offset modulo that
// (the controller ignores the address's high bits), over what was there. Nothing fails: only
// reading back tells. This kernel has no device-mapper and no nbd, so the card's loop device is
// over a file served by a FUSE file system in the lab's process, which keeps the stored part in
// a file of its own. The card's speed limit is on the loop device as for any card.

// fakeCardMount is where a node's fake card file is served, in its directory.
const fakeCardMount = "fakecard"

// fakeCard is the card file of the FUSE file system.
type fakeCard struct {
	fs.Inode
	size int64    // the size the card claims
	keep int64    // the bytes it stores
	f    *os.File // what it stores
}

var (
	_ fs.NodeOpener    = (*fakeCard)(nil)
	_ fs.NodeReader    = (*fakeCard)(nil)
	_ fs.NodeWriter    = (*fakeCard)(nil)
	_ fs.NodeGetattrer = (*fakeCard)(nil)
	_ fs.NodeFsyncer   = (*fakeCard)(nil)
)

// Open asks the kernel for direct I/O: a page cache in front would hide the lost writes.
func (c *fakeCard) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (c *fakeCard) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o644
	out.Size = uint64(c.size)
	out.Blksize = 4096
	return 0
}

// pieces calls do on each stretch of [off, off+n) as stored: at its offset modulo keep.
func (c *fakeCard) pieces(off int64, n int, do func(stored int64, from, to int) error) syscall.Errno {
	for i := 0; i < n; {
		at := (off + int64(i)) % c.keep
		step := min(n-i, int(c.keep-at))
		if err := do(at, i, i+step); err != nil {
			return fs.ToErrno(err)
		}
		i += step
	}
	return 0
}

func (c *fakeCard) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= c.size {
		return fuse.ReadResultData(nil), 0
	}
	dest = dest[:min(int64(len(dest)), c.size-off)]
	errno := c.pieces(off, len(dest), func(at int64, from, to int) error {
		_, err := c.f.ReadAt(dest[from:to], at)
		return err
	})
	return fuse.ReadResultData(dest), errno
}

func (c *fakeCard) Write(_ context.Context, _ fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if off >= c.size {
		return 0, syscall.ENOSPC
	}
	data = data[:min(int64(len(data)), c.size-off)]
	errno := c.pieces(off, len(data), func(at int64, from, to int) error {
		_, err := c.f.WriteAt(data[from:to], at)
		return err
	})
	if errno != 0 {
		return 0, errno
	}
	return uint32(len(data)), 0
}

func (c *fakeCard) Fsync(context.Context, fs.FileHandle, uint32) syscall.Errno {
	return fs.ToErrno(c.f.Sync())
}

// serveFakeCard serves the fake card of node n (n.CardSize bytes, storing keepMiB MiB) and
// returns its file's path. The server ends when its file system is unmounted, once the card's
// loop device is released (unmountFakeCards, by the lab's clean-up).
func serveFakeCard(n *NodeDesc, keepMiB int) (string, error) {
	keep := int64(keepMiB) << 20
	if keep <= 0 || keep >= n.CardSize {
		return "", fmt.Errorf("lab: %s: a fake card stores less than its size (%d MiB of %d bytes)", n.Name, keepMiB, n.CardSize)
	}
	stored := filepath.Join(n.Dir, "fakecard-stored.img")
	os.Remove(stored)
	f, err := os.OpenFile(stored, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	if err := f.Truncate(keep); err != nil {
		f.Close()
		return "", err
	}
	dir := filepath.Join(n.Dir, fakeCardMount)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Close()
		return "", err
	}
	root := &fs.Inode{}
	card := &fakeCard{size: n.CardSize, keep: keep, f: f}
	srv, err := fs.Mount(dir, root, &fs.Options{
		// 1 MiB requests: each costs the server (a test binary, maybe with -race) CPU time.
		// Splicing them would need pipes larger than the default.
		MountOptions: fuse.MountOptions{FsName: "pilab-fakecard", Name: "pilab", DirectMountStrict: true,
			MaxWrite: 1 << 20, DisableSplice: true},
		OnAdd: func(ctx context.Context) {
			root.AddChild("sdcard.img", root.NewPersistentInode(ctx, card, fs.StableAttr{Mode: syscall.S_IFREG}), true)
		},
	})
	if err != nil {
		f.Close()
		return "", fmt.Errorf("lab: %s: fake card: %w", n.Name, err)
	}
	go func() { srv.Wait(); f.Close() }()
	return filepath.Join(dir, "sdcard.img"), nil
}

// unmountFakeCards unmounts the fake cards' file systems under the lab dir, which ends their
// servers; those of a lab whose process died, which nobody serves, are detached lazily.
func unmountFakeCards(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var errs []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") && filepath.Base(f[4]) == fakeCardMount {
			if err := syscall.Unmount(f[4], 0); err == nil {
				continue
			}
			if err := syscall.Unmount(f[4], syscall.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Sprintf("unmount %s: %v", f[4], err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
