package remote_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/remote/internal/sshdtest"
	"github.com/piseduce/piseduce/pkg/testenv"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

// streamImages are the benchmark's images, made once: 128 MiB raw, shaped like an OS image
// (half incompressible, a quarter zeros, a quarter text), and the same compressed.
var streamImages struct {
	once sync.Once
	dir  string
	err  error
}

const streamRawMiB = 128

// TestMain removes the benchmarks' images, shared by all of them.
func TestMain(m *testing.M) {
	code := m.Run()
	if streamImages.dir != "" {
		os.RemoveAll(streamImages.dir)
	}
	os.Exit(code)
}

func streamImage(b *testing.B, format string) string {
	b.Helper()
	streamImages.once.Do(func() {
		dir, err := os.MkdirTemp("", "piseduce-stream-bench-")
		if err != nil {
			streamImages.err = err
			return
		}
		streamImages.dir = dir
		raw := filepath.Join(dir, "os.img")
		streamImages.err = writeOSLike(raw, streamRawMiB<<20)
		for _, c := range [][]string{{"gzip", "-k", "-1"}, {"xz", "-k", "-T2", "-1"}, {"zstd", "-q", "-k", "-3"}} {
			if streamImages.err == nil {
				streamImages.err = exec.Command(c[0], append(c[1:], raw)...).Run()
			}
		}
	})
	if streamImages.err != nil {
		b.Fatalf("making the images in %s: %v", streamImages.dir, streamImages.err)
	}
	if format == image.Raw {
		return filepath.Join(streamImages.dir, "os.img")
	}
	return filepath.Join(streamImages.dir, "os.img."+format)
}

func writeOSLike(path string, size int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	text := []byte(strings.Repeat("root:x:0:0:root:/root:/bin/bash\nGNU GPL licence text, manual pages, locale data\n", 1<<10))
	for left := size; left > 0; left -= 4 << 20 {
		block := make([]byte, 4<<20)
		rand.Read(block[:2<<20])
		copy(block[3<<20:], text)
		if _, err := f.Write(block); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// BenchmarkStreamCPU measures what one image copy costs pitasks' CPU, as env_copy sends it
// (image.Send into a remote command over a real sshd), for each cipher and format: cpu-s/GB
// is this process's CPU seconds per GB on the wire (the sshd and the node's inflater and
// sha256sum are other processes, a node's work). "first" is the first copy of a file version,
// which pitasks also measures, reading the file (the file is touched before each one); "later" are the
// next copies, which only send. Run it again with GODEBUG=cpu.aes=off to see a pimaster
// without AES instructions (a Raspberry Pi 4): bench/cpu.sh does both.
func BenchmarkStreamCPU(b *testing.B) {
	testenv.NeedCommand(b, "gzip", "xz", "zstd")
	srv := sshdtest.Start(b)
	keys := remote.StaticHostKey(srv.HostKey)
	for _, cipher := range []string{ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305} {
		for _, format := range []string{image.Raw, image.Gzip, image.XZ, image.Zstd} {
			for _, first := range []bool{true, false} {
				name := cipher + "/" + format + "/later"
				if first {
					name = cipher + "/" + format + "/first"
				}
				b.Run(name, func(b *testing.B) { streamCPU(b, srv, keys, cipher, format, first) })
			}
		}
	}
}

func streamCPU(b *testing.B, srv *sshdtest.Server, keys remote.HostKeyStore, cipher, format string, first bool) {
	path := streamImage(b, format)
	d := &remote.Dialer{Signer: srv.Signer, Keys: keys, Ciphers: []string{cipher}}
	c, err := d.Dial(context.Background(), remote.Target{Addr: srv.Addr, Role: remote.RoleSystem, NodeID: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	inflater := image.NodeInflater(format)
	if inflater == nil {
		inflater = []string{"cat"}
	}
	argv := append([]string{"sh", "-c", `"$@" | sha256sum`, "sh"}, inflater...)
	var wire int64
	send := func() {
		_, err := image.Send(context.Background(), path, format, false, image.Sum{}, func(stdin io.Reader, _ []usedmap.Range) (string, error) {
			var out strings.Builder
			err := c.Run(context.Background(), argv, remote.RunOptions{Stdin: stdin, Stdout: &out})
			sum, _, _ := strings.Cut(out.String(), " ")
			return sum, err
		}, func(done, total int64) { wire = total })
		if err != nil {
			b.Fatal(err)
		}
	}
	if !first {
		send() // the first copy measures the file
	}
	b.ResetTimer()
	var used time.Duration
	for i := 0; i < b.N; i++ {
		if first {
			now := time.Now()
			if err := os.Chtimes(path, now, now); err != nil {
				b.Fatal(err)
			}
		}
		start := testenv.CPUTime()
		send()
		used += testenv.CPUTime() - start
	}
	elapsed := b.Elapsed()
	gb := float64(wire) * float64(b.N) / 1e9
	b.ReportMetric(used.Seconds()/gb, "cpu-s/GB")
	b.ReportMetric(gb*1e3/elapsed.Seconds(), "MB/s")
	b.ReportMetric(float64(wire)/(streamRawMiB<<20), "wire/raw")
}

// BenchmarkConcurrentCopies streams the raw image to n nodes at once as n env_copy states do
// (image.Send hashing it here, into sha256sum over a real sshd, one connection per node) and
// reports this process's Go heap at its peak (heap objects, live or not yet swept, sampled
// every 10 ms, as make bench-lab does) and its CPU per GB on the wire.
func BenchmarkConcurrentCopies(b *testing.B) {
	srv := sshdtest.Start(b)
	keys := remote.StaticHostKey(srv.HostKey)
	path := streamImage(b, image.Raw)
	for _, n := range []int{1, 10, 20} {
		b.Run(fmt.Sprintf("copies=%d", n), func(b *testing.B) {
			clients := dialNodes(b, srv, keys, n)
			var wire atomic.Int64
			var peak int64
			var used time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				stop := testenv.PeakHeap()
				start := testenv.CPUTime()
				errs := make(chan error, n)
				for _, c := range clients {
					go func() {
						sum, err := sendRaw(c, path, nil)
						wire.Add(sum.Size)
						errs <- err
					}()
				}
				for range clients {
					if err := <-errs; err != nil {
						b.Error(err)
					}
				}
				used += testenv.CPUTime() - start
				peak = max(peak, stop())
			}
			gb := float64(wire.Load()) / 1e9
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(used.Seconds()/gb, "cpu-s/GB")
			b.ReportMetric(gb*1e3/b.Elapsed().Seconds(), "MB/s")
		})
	}
}

// dialNodes opens n connections to srv, one per stand-in node, closed with tb. They are
// dialled one after the other: sshd drops unauthenticated connections beyond MaxStartups.
func dialNodes(tb testing.TB, srv *sshdtest.Server, keys remote.HostKeyStore, n int) []*remote.Client {
	tb.Helper()
	d := &remote.Dialer{Signer: srv.Signer, Timeout: time.Minute, Keys: keys}
	clients := make([]*remote.Client, n)
	for i := range clients {
		c, err := d.Dial(context.Background(), remote.Target{Addr: srv.Addr, Role: remote.RoleSystem, NodeID: uint(i + 1)})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		clients[i] = c
	}
	return clients
}

// sendRaw copies the raw image at path as env_copy does (hashed here, checked against the
// node's sha256sum); wrap, if not nil, wraps the stream the session reads.
func sendRaw(c *remote.Client, path string, wrap func(io.Reader) io.Reader) (image.Sum, error) {
	return image.Send(context.Background(), path, image.Raw, true, image.Sum{}, func(stdin io.Reader, _ []usedmap.Range) (string, error) {
		if wrap != nil {
			stdin = wrap(stdin)
		}
		var out strings.Builder
		err := c.Run(context.Background(), []string{"sha256sum"}, remote.RunOptions{Stdin: stdin, Stdout: &out})
		sum, _, _ := strings.Cut(out.String(), " ")
		return sum, err
	}, nil)
}
