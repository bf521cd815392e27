package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/testenv"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

// images writes a random raw image and its compressed forms, made by the real tools.
func images(t *testing.T) (dir string, raw []byte) {
	t.Helper()
	testenv.NeedCommand(t, "gzip", "xz", "zstd")
	dir = t.TempDir()
	raw = make([]byte, 3<<20+123)
	rand.Read(raw[:1<<20]) // part random, part zeros: like a disk
	p := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"gzip", "-k", p}, {"xz", "-k", "-T1", p}, {"zstd", "-q", "-k", p}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "disk.img", Mode: 0o644, Size: int64(len(raw)), Typeflag: tar.TypeReg})
	tw.Write(raw)
	tw.Close()
	zw.Close()
	os.WriteFile(filepath.Join(dir, "disk.tar.gz"), buf.Bytes(), 0o644)
	return dir, raw
}

var files = map[string]string{Raw: "disk.img", Gzip: "disk.img.gz", XZ: "disk.img.xz", Zstd: "disk.img.zst", TarGz: "disk.tar.gz"}

// nodeRun runs what a node would: the format's inflater when the node inflates, then dd onto
// a "card" file, and returns the sha256 of what it received, as deploy's writeCard does.
func nodeRun(format string, nodeInflates bool, card string) func(io.Reader, []usedmap.Range) (string, error) {
	return func(stdin io.Reader, _ []usedmap.Range) (string, error) {
		args := []string{"-c", `set -o pipefail; { if [ $# -gt 0 ]; then "$@"; else cat; fi | tee /dev/fd/3 | dd of="$0" bs=4M status=none; } 3>&1 | sha256sum`, card}
		if nodeInflates {
			args = append(args, NodeInflater(format)...)
		}
		cmd := exec.Command("bash", args...)
		cmd.Stdin = stdin
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("%v: %s", err, stderr.Bytes())
		}
		sum, _, _ := strings.Cut(string(out), " ")
		return sum, nil
	}
}

func TestSendEveryFormatBothWays(t *testing.T) {
	dir, raw := images(t)
	want := sha256.Sum256(raw)
	for format, name := range files {
		for _, here := range []bool{false, true} {
			card := filepath.Join(t.TempDir(), "card")
			var last, total int64
			sum, err := Send(context.Background(), filepath.Join(dir, name), format, here, Sum{}, nodeRun(format, !here, card),
				func(d, tt int64) { last, total = d, tt })
			if err != nil {
				t.Fatalf("%s (inflate here %v): %v", format, here, err)
			}
			if sum.Size != int64(len(raw)) || sum.SHA256 != hex.EncodeToString(want[:]) {
				t.Errorf("%s: sum %+v", format, sum)
			}
			got, _ := os.ReadFile(card)
			if !bytes.Equal(got, raw) {
				t.Errorf("%s (inflate here %v): the card differs from the image", format, here)
			}
			fi, _ := os.Stat(filepath.Join(dir, name))
			if last != fi.Size() || total != fi.Size() {
				t.Errorf("%s: progress ended at %d/%d, file is %d bytes", format, last, total, fi.Size())
			}
		}
	}
}

// When the pimaster inflates an image of known raw size, progress counts the raw bytes that go
// on the wire.
func TestProgressCountsWireBytes(t *testing.T) {
	dir, raw := images(t)
	var last, total int64
	_, err := Send(context.Background(), filepath.Join(dir, files[Zstd]), Zstd, true, Sum{Size: int64(len(raw))}, nodeRun(Zstd, false, filepath.Join(t.TempDir(), "card")),
		func(d, tt int64) { last, total = d, tt })
	if err != nil {
		t.Fatal(err)
	}
	if last != int64(len(raw)) || total != int64(len(raw)) {
		t.Fatalf("progress ended at %d/%d, want the raw %d bytes", last, total, len(raw))
	}
}

func TestTruncatedImagesFail(t *testing.T) {
	dir, _ := images(t)
	for format, name := range files {
		if format == Raw {
			continue // a short raw image is indistinguishable from a small one: caught by the size check
		}
		b, _ := os.ReadFile(filepath.Join(dir, name))
		short := filepath.Join(t.TempDir(), name)
		os.WriteFile(short, b[:len(b)*2/3], 0o644)
		for _, here := range []bool{false, true} {
			card := filepath.Join(t.TempDir(), "card")
			_, err := Send(context.Background(), short, format, here, Sum{}, nodeRun(format, !here, card), nil)
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrBadImage) {
				t.Errorf("%s truncated (inflate here %v): err = %v, want ErrCorrupt, an ErrBadImage", format, here, err)
			}
		}
		if _, err := Measure(context.Background(), short, format); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Measure %s truncated: %v", format, err)
		}
	}
}

func TestMeasure(t *testing.T) {
	dir, raw := images(t)
	want := sha256.Sum256(raw)
	for format, name := range files {
		sum, err := Measure(context.Background(), filepath.Join(dir, name), format)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Size != int64(len(raw)) || sum.SHA256 != hex.EncodeToString(want[:]) {
			t.Errorf("%s: %+v", format, sum)
		}
		if FormatOf(name) != format {
			t.Errorf("FormatOf(%s) = %s", name, FormatOf(name))
		}
	}
}

// A node that stops reading (power cut, network) is not a corrupt image: the error is the
// node's, and the deployment will try again.
func TestNodeFailureIsNotCorruption(t *testing.T) {
	dir, _ := images(t)
	cut := errors.New("connection lost")
	for format, name := range files {
		for _, here := range []bool{false, true} {
			_, err := Send(context.Background(), filepath.Join(dir, name), format, here, Sum{}, func(stdin io.Reader, _ []usedmap.Range) (string, error) {
				io.CopyN(io.Discard, stdin, 100<<10)
				return "", cut
			}, nil)
			if !errors.Is(err, cut) || errors.Is(err, ErrBadImage) {
				t.Errorf("%s (inflate here %v): err = %v, want the node's error", format, here, err)
			}
		}
	}
}

// A node command that ends while its stdin is still being read (SSH keeps copying in a
// goroutine of its own) must not have progress reported once Send has returned: Send waits
// for a read in flight.
func TestNoProgressAfterSendReturns(t *testing.T) {
	dir, _ := images(t)
	for _, c := range []struct {
		format string
		here   bool
	}{{Raw, true}, {Gzip, false}} {
		var busy, after bool // no lock: the race detector checks Send's promise too
		started := make(chan struct{}, 1)
		_, err := Send(context.Background(), filepath.Join(dir, files[c.format]), c.format, c.here, Sum{}, func(stdin io.Reader, _ []usedmap.Range) (string, error) {
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := stdin.Read(buf); err != nil {
						return
					}
				}
			}()
			<-started // a progress report is under way: the command ends now
			return "", errors.New("command ended")
		}, func(int64, int64) {
			busy = true
			select {
			case started <- struct{}{}:
				time.Sleep(100 * time.Millisecond) // a slow database write
			default:
			}
			busy = false
		})
		after = busy
		if err == nil {
			t.Fatal("want the command's error")
		}
		if after {
			t.Errorf("%s (inflate here %v): Send returned during a progress report", c.format, c.here)
		}
	}
}

// A compressed image the node inflates is measured by the pimaster on its first copy only:
// later copies of the same file version trust the measure kept beside it, which the node's
// sha256 must match; a node that received something else, or a changed file, makes the
// pimaster measure it again.
func TestSendMeasuresEachFileVersionOnce(t *testing.T) {
	dir, raw := images(t)
	want := sha256.Sum256(raw)
	for _, format := range []string{Raw, Gzip, XZ, Zstd, TarGz} {
		path := filepath.Join(dir, files[format])
		card := filepath.Join(t.TempDir(), "card")
		if _, err := Send(context.Background(), path, format, false, Sum{}, nodeRun(format, true, card), nil); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if _, err := os.Stat(digestPath(path)); err != nil {
			t.Fatalf("%s: no measure kept beside the image: %v", format, err)
		}
		// Forge the kept measure: a copy that still inflated the file would notice.
		fi, _ := os.Stat(path)
		id, _ := idOf(fi, format)
		forged := Sum{Size: 42, SHA256: strings.Repeat("ab", 32)}
		rememberDigest(path, digest{ID: id, Raw: forged, Blocks: Blocks{strings.Repeat("cd", 32)}, Used: []usedmap.Range{{Start: 0, End: forged.Size}}})
		digests.Delete(path) // read from the file, as a restarted pitasks would
		agrees := func(stdin io.Reader, _ []usedmap.Range) (string, error) {
			io.Copy(io.Discard, stdin)
			return forged.SHA256, nil
		}
		if sum, err := Send(context.Background(), path, format, false, Sum{}, agrees, nil); err != nil || sum != forged {
			t.Fatalf("%s: second copy = %+v, %v; want the kept measure, with nothing inflated", format, sum, err)
		}
		// The node received the real image: the kept measure goes, the next copy measures.
		if _, err := Send(context.Background(), path, format, false, Sum{}, nodeRun(format, true, card), nil); err == nil || errors.Is(err, ErrBadImage) {
			t.Fatalf("%s: a node disagreeing with the kept measure: err = %v, want an error to try again", format, err)
		}
		if _, err := os.Stat(digestPath(path)); err == nil {
			t.Errorf("%s: the measure a node disagreed with is still kept", format)
		}
		sum, err := Send(context.Background(), path, format, false, Sum{}, nodeRun(format, true, card), nil)
		if err != nil || sum.SHA256 != hex.EncodeToString(want[:]) || sum.Size != int64(len(raw)) {
			t.Fatalf("%s: the copy after = %+v, %v", format, sum, err)
		}
		// A file touched since it was measured is measured again.
		rememberDigest(path, digest{ID: id, Raw: forged, Blocks: Blocks{strings.Repeat("cd", 32)}, Used: []usedmap.Range{{Start: 0, End: forged.Size}}})
		later := fi.ModTime().Add(time.Second)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
		if sum, err := Send(context.Background(), path, format, false, Sum{}, nodeRun(format, true, card), nil); err != nil || sum.SHA256 != hex.EncodeToString(want[:]) {
			t.Errorf("%s: a touched file: %+v, %v; want it measured again", format, sum, err)
		}
	}
}

// A file rewritten with another image, in place, is measured again.
func TestSendMeasuresARewrittenFile(t *testing.T) {
	dir, _ := images(t)
	path := filepath.Join(dir, files[Gzip])
	card := filepath.Join(t.TempDir(), "card")
	if _, err := Send(context.Background(), path, Gzip, false, Sum{}, nodeRun(Gzip, true, card), nil); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte("another image "), 100000)
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(other)
	zw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(other)
	sum, err := Send(context.Background(), path, Gzip, false, Sum{}, nodeRun(Gzip, true, card), nil)
	if err != nil || sum.SHA256 != hex.EncodeToString(want[:]) || sum.Size != int64(len(other)) {
		t.Fatalf("rewritten file: %+v, %v; want the new image's measure", sum, err)
	}
}

// The measure registered with an environment must be the file's: a node receiving another
// image, or a file measured differently, is ErrChanged, which trying again cannot fix. The
// first copy of a registered file still measures it, for its block hashes. A truncated file
// still fails as corrupt.
func TestSendWithTheRegisteredMeasure(t *testing.T) {
	dir, raw := images(t)
	h := sha256.Sum256(raw)
	known := Sum{Size: int64(len(raw)), SHA256: hex.EncodeToString(h[:])}
	for _, format := range []string{Raw, XZ, Zstd} {
		path := filepath.Join(dir, files[format])
		for _, here := range []bool{false, true} {
			card := filepath.Join(t.TempDir(), "card")
			if sum, err := Send(context.Background(), path, format, here, known, nodeRun(format, !here, card), nil); err != nil || sum != known {
				t.Errorf("%s (inflate here %v): %+v, %v", format, here, sum, err)
			}
			other := Sum{Size: known.Size, SHA256: strings.Repeat("0", 64)}
			_, err := Send(context.Background(), path, format, here, other, nodeRun(format, !here, card), nil)
			if !errors.Is(err, ErrChanged) || !errors.Is(err, ErrBadImage) {
				t.Errorf("%s (inflate here %v) registered with another sha256: err = %v, want ErrChanged", format, here, err)
			}
		}
		if d, ok := cachedDigest(path, fileIDOf(t, path, format)); !ok || d.Raw != known {
			t.Errorf("%s: the registered file's measure was not kept: %+v", format, d)
		}
		if format == Raw {
			continue
		}
		b, _ := os.ReadFile(path)
		short := filepath.Join(t.TempDir(), files[format])
		os.WriteFile(short, b[:len(b)/2], 0o644)
		if _, err := Send(context.Background(), short, format, false, known, nodeRun(format, true, filepath.Join(t.TempDir(), "card")), nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s truncated, registered measure: err = %v, want ErrCorrupt", format, err)
		}
	}
}

// A node lost at the start of a copy of an image not measured yet: Send reads the whole file to
// tell whether the image is to blame, within ctx: once the step's time is up, the node's error.
func TestNodeLostBeforeTheImageWasRead(t *testing.T) {
	dir, _ := images(t)
	b, _ := os.ReadFile(filepath.Join(dir, files[Gzip]))
	short := filepath.Join(t.TempDir(), files[Gzip])
	os.WriteFile(short, b[:len(b)*2/3], 0o644)
	lost := errors.New("node lost")
	run := func(io.Reader, []usedmap.Range) (string, error) { return "", lost }
	if _, err := Send(context.Background(), short, Gzip, false, Sum{}, run, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated image, node lost: %v, want ErrCorrupt", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Send(ctx, short, Gzip, false, Sum{}, run, nil); !errors.Is(err, lost) {
		t.Errorf("truncated image, node lost, time up: %v, want the node's error", err)
	}
}

// Copies of one version of a file that run at once share one measure, whatever their number:
// the pimaster inflates the file once, not once per node. A later version is measured again.
func TestCopiesAtOnceShareOneMeasure(t *testing.T) {
	dir, raw := images(t)
	want := sha256.Sum256(raw)
	for _, format := range []string{Raw, XZ, Zstd} {
		path := filepath.Join(dir, files[format])
		const copies = 6
		before := measuresTaken.Load()
		var started sync.WaitGroup
		started.Add(copies)
		errs := make(chan error, copies)
		for i := range copies {
			card := filepath.Join(t.TempDir(), "card")
			node := nodeRun(format, true, card)
			go func() {
				sum, err := Send(context.Background(), path, format, false, Sum{}, func(stdin io.Reader, used []usedmap.Range) (string, error) {
					started.Done()
					started.Wait() // every copy is under way before any ends
					return node(stdin, used)
				}, nil)
				if err == nil && (sum.SHA256 != hex.EncodeToString(want[:]) || sum.Size != int64(len(raw))) {
					err = fmt.Errorf("copy %d: measure %+v", i, sum)
				}
				errs <- err
			}()
		}
		for range copies {
			if err := <-errs; err != nil {
				t.Fatalf("%s: %v", format, err)
			}
		}
		if n := measuresTaken.Load() - before; n != 1 {
			t.Errorf("%s: %d copies at once took %d measures, want 1", format, copies, n)
		}
		if _, err := os.Stat(digestPath(path)); err != nil {
			t.Errorf("%s: the shared measure was not kept: %v", format, err)
		}
		// A new version: the kept measure is not its own, and copies measure it again.
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
		before = measuresTaken.Load()
		if _, err := Send(context.Background(), path, format, false, Sum{}, nodeRun(format, true, filepath.Join(t.TempDir(), "card")), nil); err != nil {
			t.Fatalf("%s, touched: %v", format, err)
		}
		if n := measuresTaken.Load() - before; n != 1 {
			t.Errorf("%s: a new version of the file took %d measures, want 1", format, n)
		}
	}
}
