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

// perNodeBound is the most Go heap one node copying its image may hold, its SSH connection
// included (issue 14 item 3: pitasks' memory flat in the number of nodes deployed at once): ~140
// KiB with OpenSSH's 32 KiB packets. A copy reads into one 32 KiB buffer; the SSH channel and
// cipher add a packet each; the connection keeps its ciphers and 4 KiB read and write buffers.
// A copy alone held ~1.2 MiB with a 1 MiB read buffer and the x/crypto/ssh stdin pipe's two
// copy buffers.
const perNodeBound = 192 << 10

// TestCopyMemoryPerCopy connects 1, then 10 nodes, holds their image copies (image.Send into a
// real sshd, one connection per node) in the middle of their stream and compares the live heap
// and the goroutine stacks: what grows with the number of nodes must stay under perNodeBound
// per node.
func TestCopyMemoryPerCopy(t *testing.T) {
	srv := sshdtest.Start(t)
	path := filepath.Join(t.TempDir(), "os.img")
	if err := writeOSLike(path, 4<<20); err != nil {
		t.Fatal(err)
	}
	keys := remote.StaticHostKey(srv.HostKey)
	one := whileCopying(t, dialNodes(t, srv, keys, 1), path)
	ten := whileCopying(t, dialNodes(t, srv, keys, 10), path)
	heap, stacks, goroutines := (ten.heap-one.heap)/9, (ten.stacks-one.stacks)/9, (ten.goroutines-one.goroutines)/9
	t.Logf("live heap with 1 node copying %d KiB, with 10 %d KiB: %d KiB a node; goroutine stacks %d KiB a node (%d goroutines)",
		one.heap>>10, ten.heap>>10, heap>>10, stacks>>10, goroutines)
	if heap > perNodeBound {
		t.Errorf("each node copying its image holds %d KiB of heap, more than %d KiB", heap>>10, perNodeBound>>10)
	}
}

// inFlight is what the process holds while copies are in flight.
type inFlight struct{ heap, stacks, goroutines int64 }

// whileCopying starts a copy to each client, holds them all 1 MiB into their stream, measures
// the process then, and closes the clients.
func whileCopying(t *testing.T, clients []*remote.Client, path string) inFlight {
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
	f := inFlight{heap: int64(m.HeapAlloc), stacks: int64(m.StackInuse), goroutines: int64(runtime.NumGoroutine())}
	close(release)
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, c := range clients {
		c.Close()
	}
	return f
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
