package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteIfChanged(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "nodes.conf")
	for i, tc := range []struct {
		data  string
		wrote bool
	}{{"a\n", true}, {"a\n", false}, {"b\n", true}, {"", true}, {"", false}} {
		wrote, err := WriteIfChanged(p, []byte(tc.data), 0o644)
		if err != nil || wrote != tc.wrote {
			t.Fatalf("step %d: wrote %v, %v; want %v", i, wrote, err, tc.wrote)
		}
		if b, _ := os.ReadFile(p); string(b) != tc.data {
			t.Fatalf("step %d: file holds %q", i, b)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("temporary files left: %v", es)
	}
	if _, err := WriteIfChanged(filepath.Join(dir, "no", "such"), []byte("x"), 0o644); err == nil {
		t.Error("a write into a missing folder succeeded")
	}
}
