package bench

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"
)

// The compressible payload must stand for a real system's data: the same bytes on every run
// (the benchmark's images compare), and about 3:1 under the xz the benchmark ships them with.
func TestCompressiblePayload(t *testing.T) {
	gen := func() []byte {
		var b bytes.Buffer
		if _, err := io.CopyN(&b, newWords(rand.NewChaCha8([32]byte{'w', 'o', 'r', 'd', 's'}), 1024), 16<<20); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	data := gen()
	if !bytes.Equal(data, gen()) {
		t.Fatal("two streams of one seed differ")
	}
	cmd := exec.Command("xz", "-c", "-T2", "-0")
	cmd.Stdin = bytes.NewReader(data)
	packed, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz: %v", err)
	}
	if r := float64(len(data)) / float64(len(packed)); r < 2.5 || r > 3.5 {
		t.Fatalf("xz -0 packs the payload %.2f:1, want about 3:1", r)
	} else {
		t.Logf("xz -0 packs the payload %.2f:1", r)
	}
}
