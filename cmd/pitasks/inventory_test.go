package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/lab/labtest"
)

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
