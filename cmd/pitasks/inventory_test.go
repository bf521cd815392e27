package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab/labtest"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// tinyImage writes a raw disk image of two sectors: a partition table and a one-sector Linux
// root partition.
func tinyImage(t *testing.T, path string) {
	t.Helper()
	b := make([]byte, 1024)
	b[446+4] = 0x83
	binary.LittleEndian.PutUint32(b[446+8:], 1)
	binary.LittleEndian.PutUint32(b[446+12:], 1)
	b[510], b[511] = 0x55, 0xaa
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEnvRegisterOnlyRegularFilesInImgDir: what env-register records is a regular file inside
// img_dir; a device or a FIFO is refused before any reading.
func TestEnvRegisterOnlyRegularFilesInImgDir(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, "sqlite")
	root := t.TempDir()
	imgDir, other := filepath.Join(root, "img"), filepath.Join(root, "other")
	os.Mkdir(imgDir, 0o755)
	os.Mkdir(other, 0o755)
	tinyImage(t, filepath.Join(other, "real.img"))
	tinyImage(t, filepath.Join(imgDir, "inside.img"))
	os.Symlink("../other/real.img", filepath.Join(other, "rel-link.img"))
	os.Symlink(filepath.Join(other, "real.img"), filepath.Join(imgDir, "out-link.img"))
	os.Symlink("gone.img", filepath.Join(imgDir, "dangling.img"))
	os.Symlink("inside.img", filepath.Join(imgDir, "alias.img"))
	for _, p := range []string{filepath.Join(other, "pipe.img"), filepath.Join(imgDir, "pipe-in.img")} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	register := func(name string, extra ...string) (string, error) {
		var out bytes.Buffer
		args := append([]string{"-name", name, "-ssh-user", "pi"}, extra...)
		errc := make(chan error, 1)
		go func() { errc <- envRegisterCmd(ctx, st, imgDir, args, &out) }()
		select {
		case err := <-errc:
			return out.String(), err
		case <-time.After(60 * time.Second):
			t.Fatalf("env-register %q did not return within a minute", args)
			return "", nil
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		// -move of a link once moved a link into img_dir, dangling there: refused.
		{"moved-link", []string{"-move", filepath.Join(other, "rel-link.img")}, "is a symbolic link; give the file itself"},
		{"out-link", []string{filepath.Join(imgDir, "out-link.img")}, "is a symbolic link leading out of it"},
		{"dangling", []string{filepath.Join(imgDir, "dangling.img")}, "is a symbolic link to nothing"},
		{"zero", []string{"/dev/zero"}, "/dev/zero is a character device, not a regular file"},
		{"pipe", []string{filepath.Join(other, "pipe.img")}, "is a FIFO, not a regular file"},
		{"pipe-in", []string{filepath.Join(imgDir, "pipe-in.img")}, "pipe-in.img in img_dir " + imgDir + " is a FIFO"},
		{"bad\u202ename", []string{filepath.Join(other, "real.img")}, "-name: holds a bidirectional control character (U+202E)"},
	} {
		if out, err := register(tc.name, tc.args...); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v (%s), want an error saying %q", tc.name, err, out, tc.says)
		}
	}
	if es, _ := st.Environments(ctx); len(es) != 0 {
		t.Fatalf("registered %d environments", len(es))
	}
	if _, err := os.Lstat(filepath.Join(other, "rel-link.img")); err != nil {
		t.Errorf("the refused -move lost its source: %v", err)
	}
	for _, name := range []string{"real.img", "rel-link.img"} {
		if _, err := os.Lstat(filepath.Join(imgDir, name)); err == nil {
			t.Errorf("%s was put into img_dir by a refused command", name)
		}
	}

	// Accepted: a link inside img_dir, a copy, a move.
	if out, err := register("alias", filepath.Join(imgDir, "alias.img")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := register("copied", filepath.Join(other, "rel-link.img")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if fi, err := os.Lstat(filepath.Join(imgDir, "rel-link.img")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the copy in img_dir: %v, %v", fi, err)
	}
	if out, err := register("moved", "-move", filepath.Join(other, "real.img")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if fi, err := os.Lstat(filepath.Join(imgDir, "real.img")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the moved file in img_dir: %v, %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(other, "real.img")); err == nil {
		t.Error("-move left the source")
	}
	e, err := st.EnvironmentByName(ctx, "moved")
	if err != nil || e.ImageName != "real.img" || e.ImageSize != 1024 || e.SectorStart != 1 || e.ImageFormat != "raw" {
		t.Errorf("moved = %+v, %v", e, err)
	}
}

// runPitasks starts this test binary as pitasks with args.
func runPitasks(t *testing.T, args ...string) (*exec.Cmd, *labtest.Log) {
	t.Helper()
	out := &labtest.Log{}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PITASKS_AS_MAIN=1")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, out
}

// testConfig writes a seducepp.conf with a SQLite database and img_dir in dir.
func testConfig(t *testing.T, dir string) (cfg, imgDir string) {
	t.Helper()
	imgDir = filepath.Join(dir, "img")
	os.Mkdir(imgDir, 0o755)
	cfg = filepath.Join(dir, "seducepp.conf")
	conf := fmt.Sprintf("[db]\nconnection_url = sqlite://%s/piseduce.db\n[cluster]\nimg_dir = %s\nssh_key = %s/id_ed25519\n", dir, imgDir, dir)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, imgDir
}

// TestEnvRegisterStopsOnSIGTERM: measuring a huge image ends when pitasks is told to stop.
func TestEnvRegisterStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	cfg, imgDir := testConfig(t, dir)
	big := filepath.Join(dir, "huge.img")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 30); err != nil { // sparse: minutes of reading, no disk space
		testenv.Need(t, false, "a file system with 64 GiB sparse files ("+err.Error()+")")
	}
	f.Close()
	cmd, out := runPitasks(t, "-config", cfg, "env-register", "-name", "huge", "-ssh-user", "pi", big)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "measuring") {
		if time.Now().After(deadline) {
			t.Fatalf("pitasks did not start measuring: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), "reading given up: context canceled") {
			t.Errorf("pitasks ended with %v: %s", err, out)
		}
	case <-time.After(time.Minute):
		t.Fatalf("pitasks went on reading a minute after SIGTERM: %s", out)
	}
	if ents, _ := os.ReadDir(imgDir); len(ents) != 0 {
		t.Errorf("img_dir holds %d files", len(ents))
	}
	st, err := store.Open(context.Background(), "sqlite://"+dir+"/piseduce.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if es, _ := st.Environments(context.Background()); len(es) != 0 {
		t.Errorf("registered %d environments", len(es))
	}
}

// TestImportClusterCommand: pitasks import-cluster on the original's files says what it did
// and what to know; a second run changes nothing.
func TestImportClusterCommand(t *testing.T) {
	dir := t.TempDir()
	cfg, imgDir := testConfig(t, dir)
	os.WriteFile(filepath.Join(imgDir, "2020-02-13-raspbian-buster-lite.img.tar.gz"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(imgDir, "my buster.img.gz"), []byte("x"), 0o644)
	src := "../../pkg/clusterdesc/testdata/original"
	var outs []string
	for i := 0; i < 2; i++ {
		cmd, out := runPitasks(t, "-config", cfg, "import-cluster", src)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("import-cluster: %v\n%s", err, out)
		}
		outs = append(outs, out.String())
	}
	for _, want := range []string{
		"imported " + src + ": 2 switches, 11 nodes, 3 environments (16 created, 0 updated, 0 unchanged)",
		"not imported:\n  environments/tiny_core.json: environment tiny_core not imported: there is no file piCore-10.0beta12b.img.gz",
		"ignored keys (the original does not read them either):\n  main.json: comments, switches\n",
		"  nodes/node-11.json: node node-11 has no serial (id) yet",
	} {
		if !strings.Contains(outs[0], want) {
			t.Errorf("first run lacks %q:\n%s", want, outs[0])
		}
	}
	if !strings.Contains(outs[1], "(0 created, 0 updated, 16 unchanged)") {
		t.Errorf("second run:\n%s", outs[1])
	}
}
