package remote_test

import (
	"io"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/remote/internal/sshdtest"
)

// perCopyBound is the most Go heap one image copy in flight may hold (issue 14 item 3: pitasks'
// memory flat in the number of nodes deployed at once). A copy reads into one 32 KiB buffer; the
// SSH channel and cipher add a packet each. It held ~1.2 MiB with a 1 MiB read buffer per copy
// and the x/crypto/ssh stdin pipe's two copy buffers.
const perCopyBound = 256 << 10

// TestCopyMemoryPerCopy holds 1, then 10 image copies (image.Send into a real sshd, one
// connection per node) in the middle of their stream and compares the live heap: what grows
// with the number of copies must stay under perCopyBound per copy.
func TestCopyMemoryPerCopy(t *testing.T) {
	srv := sshdtest.Start(t)
	path := filepath.Join(t.TempDir(), "os.img")
	if err := writeOSLike(path, 4<<20); err != nil {
		t.Fatal(err)
	}
	clients := dialNodes(t, srv, remote.StaticHostKey(srv.HostKey), 10)
	one := liveWhileCopying(t, clients[:1], path)
	ten := liveWhileCopying(t, clients, path)
	per := (ten - one) / 9
	t.Logf("live heap with 1 copy in flight %d KiB, with 10 %d KiB: %d KiB per copy", one>>10, ten>>10, per>>10)
	if per > perCopyBound {
		t.Errorf("each image copy in flight holds %d KiB of heap, more than %d KiB", per>>10, perCopyBound>>10)
	}
}

// liveWhileCopying starts a copy to each client, holds them all 1 MiB into their stream, and
// returns the live heap then.
func liveWhileCopying(t *testing.T, clients []*remote.Client, path string) int64 {
	t.Helper()
	var arrived sync.WaitGroup
	arrived.Add(len(clients))
	release := make(chan struct{})
	errs := make(chan error, len(clients))
	for _, c := range clients {
		here := sync.OnceFunc(arrived.Done)
		go func() {
			_, err := sendRaw(c, path, func(r io.Reader) io.Reader {
				return &pauser{r: r, left: 1 << 20, arrived: here, release: release}
			})
			here() // a copy that failed before its pause does not hold the others
			errs <- err
		}()
	}
	arrived.Wait()
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	close(release)
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	return int64(m.HeapAlloc)
}

// pauser passes reads through until left bytes have gone, then reports it has arrived and
// waits for release.
type pauser struct {
	r       io.Reader
	left    int
	arrived func()
	release chan struct{}
}

func (p *pauser) Read(b []byte) (int, error) {
	if p.left <= 0 {
		p.arrived()
		<-p.release
	}
	n, err := p.r.Read(b)
	p.left -= n
	return n, err
}
