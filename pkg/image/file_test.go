package image_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/testenv"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

// within runs f and fails t if it has not returned by the deadline (a generous one: only a
// read that blocks or never ends misses it).
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not return within a minute", what)
	}
}

// TestLocate: an environment's image is a regular file inside img_dir.
func TestLocate(t *testing.T) {
	root := t.TempDir()
	dir, outside := filepath.Join(root, "img"), filepath.Join(root, "elsewhere")
	os.Mkdir(dir, 0o755)
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(dir, "good.img"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret.img"), []byte("x"), 0o644)
	os.Symlink("good.img", filepath.Join(dir, "alias.img"))
	os.Symlink(filepath.Join(outside, "secret.img"), filepath.Join(dir, "out.img"))
	os.Symlink("../elsewhere/secret.img", filepath.Join(dir, "relout.img"))
	os.Symlink("/dev/zero", filepath.Join(dir, "zero.img"))
	os.Symlink("gone.img", filepath.Join(dir, "dangling.img"))
	os.Mkdir(filepath.Join(dir, "folder.img"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.img"), 0o644); err != nil {
		t.Fatal(err)
	}
	linkedDir := filepath.Join(root, "img-link")
	os.Symlink(dir, linkedDir)

	real := filepath.Join(dir, "good.img")
	for _, name := range []string{"good.img", "alias.img"} {
		for _, d := range []string{dir, linkedDir} {
			if p, err := image.Locate(d, name); err != nil || p != real {
				t.Errorf("Locate(%s, %s) = %q, %v; want %s", d, name, p, err, real)
			}
		}
	}
	for _, tc := range []struct{ name, says string }{
		{"missing.img", "there is no file missing.img in img_dir"},
		{"dangling.img", "is a symbolic link to nothing"},
		{"out.img", "is a symbolic link leading out of it"},
		{"relout.img", "is a symbolic link leading out of it"},
		{"zero.img", "is a symbolic link leading out of it, to /dev/zero"},
		{"fifo.img", "is a FIFO, not a regular file"},
		{"folder.img", "is a folder, not a regular file"},
		{"../elsewhere/secret.img", "is not a plain file name"},
		{"sub/x.img", "is not a plain file name"},
		{"x\u202e.img", "is not a plain file name"},
		{"", "is not a plain file name"},
	} {
		p, err := image.Locate(dir, tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Locate(%q) = %q, %v; want an error saying %q", tc.name, p, err, tc.says)
		}
	}
	if _, err := image.Locate(dir, "dangling.img"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a dangling link is a missing file: %v", err)
	}
}

// TestLocateRefusesADeviceInside: a device node inside img_dir is no image either.
func TestLocateRefusesADeviceInside(t *testing.T) {
	testenv.NeedRoot(t)
	dir := t.TempDir()
	if err := syscall.Mknod(filepath.Join(dir, "zero.img"), syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
		t.Fatal(err)
	}
	if _, err := image.Locate(dir, "zero.img"); err == nil || !strings.Contains(err.Error(), "is a character device, not a regular file") {
		t.Errorf("Locate(device) = %v", err)
	}
}

// TestReadingRefusesDevicesAndFIFOs: /dev/zero would be read forever and a FIFO would block
// the open itself; both are refused at once, by every reader.
func TestReadingRefusesDevicesAndFIFOs(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo.img")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range []string{"/dev/zero", fifo} {
		within(t, "reading "+p, func() {
			if _, err := image.Examine(ctx, p); err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("Examine(%s) = %v", p, err)
			}
			if _, err := image.Measure(ctx, p, image.Raw); err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("Measure(%s) = %v", p, err)
			}
			if _, err := image.DetectFormat(p); err == nil {
				t.Errorf("DetectFormat(%s) accepted it", p)
			}
			if _, err := image.LayoutOf(p, image.Raw); err == nil {
				t.Errorf("LayoutOf(%s) accepted it", p)
			}
			if _, err := image.Send(context.Background(), p, image.Raw, true, image.Sum{}, func(io.Reader, []usedmap.Range) (string, error) { return "", nil }, nil); err == nil {
				t.Errorf("Send(%s) accepted it", p)
			}
		})
	}
}

// TestExamineStopsWhenCancelled: measuring a large image stops soon after its context ends
// (SIGTERM for pitasks, a cancelled request for the web).
func TestExamineStopsWhenCancelled(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.img")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 64 GiB of zeros to read, which takes minutes, and no disk space.
	if err := f.Truncate(64 << 30); err != nil {
		testenv.Need(t, false, "a file system with 64 GiB sparse files ("+err.Error()+")")
	}
	f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := image.Examine(ctx, big)
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond) // let it start reading; the test holds without it too
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Examine = %v, want context.Canceled", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Examine went on reading after its context was cancelled")
	}
}
