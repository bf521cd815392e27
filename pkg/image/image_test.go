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
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/testenv"
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
// a "card" file.
func nodeRun(format string, nodeInflates bool, card string) func(io.Reader) error {
	return func(stdin io.Reader) error {
		args := []string{"-c", `if [ $# -gt 0 ]; then "$@" | dd of="$0" bs=4M status=none; else dd of="$0" bs=4M status=none; fi`, card}
		if nodeInflates {
			args = append(args, NodeInflater(format)...)
		}
		cmd := exec.Command("sh", args...)
		cmd.Stdin = stdin
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
}

func TestSendEveryFormatBothWays(t *testing.T) {
	dir, raw := images(t)
	want := sha256.Sum256(raw)
	for format, name := range files {
		for _, here := range []bool{false, true} {
			card := filepath.Join(t.TempDir(), "card")
			var last, total int64
			sum, err := Send(filepath.Join(dir, name), format, here, 0, nodeRun(format, !here, card),
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
	_, err := Send(filepath.Join(dir, files[Zstd]), Zstd, true, int64(len(raw)), nodeRun(Zstd, false, filepath.Join(t.TempDir(), "card")),
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
			_, err := Send(short, format, here, 0, nodeRun(format, !here, card), nil)
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
			_, err := Send(filepath.Join(dir, name), format, here, 0, func(stdin io.Reader) error {
				io.CopyN(io.Discard, stdin, 100<<10)
				return cut
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
		_, err := Send(filepath.Join(dir, files[c.format]), c.format, c.here, 0, func(stdin io.Reader) error {
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := stdin.Read(buf); err != nil {
						return
					}
				}
			}()
			<-started // a progress report is under way: the command ends now
			return errors.New("command ended")
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
