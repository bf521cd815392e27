package netboot

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/nodeid"
)

func tarOf(t *testing.T, files map[string]string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return &buf
}

func newTFTP(t *testing.T) TFTP {
	root := t.TempDir()
	nfs := filepath.Join(root, "rpiboot_uboot")
	os.MkdirAll(nfs, 0o755)
	os.WriteFile(filepath.Join(nfs, "cmdline.txt"), []byte("console=tty1 root=/dev/nfs nfsroot=127.0.0.1:/nfs/raspi rw ip=dhcp"), 0o644)
	return TFTP{Root: root, NFSBootDir: nfs}
}

func mode(t *testing.T, tf TFTP, serial string) Mode {
	t.Helper()
	m, err := tf.Mode(serial)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestModesSwitch(t *testing.T) {
	tf := newTFTP(t)
	const serial = "a67c64be"
	if m := mode(t, tf, serial); m != ModeNone {
		t.Fatalf("fresh node: %s", m)
	}
	if err := tf.BootNFS(serial); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, tf, serial); m != ModeNFS {
		t.Fatalf("after BootNFS: %s", m)
	}
	files := map[string]string{"cmdline.txt": "root=/dev/mmcblk0p2 rootwait", "config.txt": "arm_64bit=1", "overlays/x.dtbo": "dt"}
	if err := tf.InstallSD(serial, tarOf(t, files)); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, tf, serial); m != ModeSD {
		t.Fatalf("after InstallSD: %s", m)
	}
	b, err := os.ReadFile(filepath.Join(tf.Root, serial, "overlays/x.dtbo"))
	if err != nil || string(b) != "dt" {
		t.Fatalf("boot file: %q %v", b, err)
	}
	// Back to NFS: the private SD copy goes, the shared NFS files stay.
	if err := tf.BootNFS(serial); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(tf.Root, sdDir, "*")); len(left) != 0 {
		t.Fatalf("SD copies left: %v", left)
	}
	if err := tf.Clear(serial); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, tf, serial); m != ModeNone {
		t.Fatalf("after Clear: %s", m)
	}
	if _, err := os.Stat(filepath.Join(tf.NFSBootDir, "cmdline.txt")); err != nil {
		t.Fatal("Clear removed the NFS boot files")
	}
	if err := tf.Clear(serial); err != nil {
		t.Fatalf("Clear twice: %v", err)
	}
}

func TestRefusesBadInput(t *testing.T) {
	tf := newTFTP(t)
	for _, serial := range []string{"../etc", "A67C64BE", "", "a67c64be/..", "1234567"} {
		if err := tf.BootNFS(serial); !errors.Is(err, nodeid.ErrBadSerial) {
			t.Errorf("serial %q: %v, want nodeid.ErrBadSerial", serial, err)
		}
	}
	for name, files := range map[string]map[string]string{
		"traversal":  {"cmdline.txt": "x", "../../evil": "x"},
		"absolute":   {"cmdline.txt": "x", "/etc/evil": "x"},
		"no cmdline": {"config.txt": "x"},
	} {
		if err := tf.InstallSD("a67c64be", tarOf(t, files)); !errors.Is(err, ErrBadBootFiles) {
			t.Errorf("%s: %v, want ErrBadBootFiles", name, err)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "cmdline.txt", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"})
	tw.Close()
	if err := tf.InstallSD("a67c64be", &buf); !errors.Is(err, ErrBadBootFiles) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("symlink in boot files: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(tf.Root, sdDir, "*")); len(left) != 0 {
		t.Fatalf("failed installs left %v", left)
	}
	if m := mode(t, tf, "a67c64be"); m != ModeNone {
		t.Fatalf("failed installs changed the mode to %s", m)
	}
}
