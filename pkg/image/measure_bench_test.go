package image

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/testenv"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

// BenchmarkFirstCopiesAtOnce sends one unmeasured version of an xz image (xz -6: an 8 MiB
// window, as Raspberry Pi OS ships) to 1 and 10 stand-in nodes at once, as the first
// deployment of a new environment does, and reports the pimaster's peak Go heap and CPU
// seconds per copy. The nodes drain their stream and answer the raw image's sha256: their own
// inflate is theirs, not the pimaster's.
//
//	go test -run '^$' -bench '^BenchmarkFirstCopiesAtOnce$' -benchtime 3x ./pkg/image/
func BenchmarkFirstCopiesAtOnce(b *testing.B) {
	testenv.NeedCommand(b, "xz")
	dir := b.TempDir()
	raw := make([]byte, 96<<20)
	rand.Read(raw[:32<<20]) // a third random, the rest zeros
	rawPath := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(rawPath, raw, 0o644); err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	want := hex.EncodeToString(sum[:])
	raw = nil
	if out, err := exec.Command("xz", "-6", "-T1", rawPath).CombinedOutput(); err != nil {
		b.Fatalf("xz: %v %s", err, out)
	}
	path := rawPath + ".xz"
	node := func(stdin io.Reader, _ []usedmap.Range) (string, error) {
		_, err := io.Copy(io.Discard, stdin)
		return want, err
	}
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("copies=%d", n), func(b *testing.B) {
			var peak int64
			var used time.Duration
			for range b.N {
				forgetDigest(path) // a version nobody measured yet
				stop := testenv.PeakHeap()
				start := testenv.CPUTime()
				errs := make(chan error, n)
				for range n {
					go func() {
						got, err := Send(context.Background(), path, XZ, false, Sum{}, node, nil)
						if err == nil && got.SHA256 != want {
							err = fmt.Errorf("measure %+v, want sha256 %s", got, want)
						}
						errs <- err
					}()
				}
				for range n {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
				used += testenv.CPUTime() - start
				peak = max(peak, stop())
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(used.Seconds()/float64(b.N*n), "cpu-s/copy")
		})
	}
}
