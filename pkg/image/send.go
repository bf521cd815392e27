package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Send streams the image file at path into run's stdin, and returns the size and sha256 of the
// raw disk image it carried, to be checked against what lands on the card.
//
// With inflateHere the image is inflated by the pimaster and raw bytes go on the wire; else the
// file's own bytes are sent (run's command inflates them, see NodeInflater) and a copy of the
// stream is inflated here only to measure it. A truncated or damaged image fails with
// ErrCorrupt, even when the node's command did not notice.
//
// progress gets what went on the wire so far and the total: the file's bytes and size, or,
// when the pimaster inflates an image whose raw size is known (rawSize > 0), the raw bytes and
// rawSize, so that the throughput shown is the link's.
func Send(path, format string, inflateHere bool, rawSize int64, run func(stdin io.Reader) error, progress func(done, total int64)) (Sum, error) {
	if err := Check(format); err != nil {
		return Sum{}, err
	}
	f, fi, err := Open(path)
	if err != nil {
		return Sum{}, err
	}
	defer f.Close()
	src := &counter{r: bufio.NewReaderSize(io.LimitReader(f, fi.Size()), 1<<20), total: fi.Size()}
	h := NewHasher()

	if inflateHere || format == Raw {
		raw, err := Inflate(src, format)
		if err != nil {
			return Sum{}, err
		}
		defer raw.Close()
		rec := &recorder{r: raw}
		var wire io.Reader = rec
		if format != Raw && rawSize > 0 {
			wire = &counter{r: rec, total: rawSize, progress: progress}
		} else {
			src.progress = progress
		}
		in := &gate{r: io.TeeReader(wire, h)}
		rerr := run(in)
		in.close()
		// A stream the node accepted may still have been cut short by a corrupt file.
		if rec.err != nil {
			return Sum{}, fmt.Errorf("image %s: %w", path, rec.err)
		}
		if rerr != nil {
			return Sum{}, rerr
		}
		return h.Sum(), nil
	}

	// Inflate a copy of the stream here, in step with the sender; on a corrupt image the copy
	// keeps draining so the sender never blocks.
	pr, pw := io.Pipe()
	measured := make(chan error, 1)
	go func() {
		raw, err := Inflate(pr, format)
		if err == nil {
			_, err = io.Copy(h, raw)
			raw.Close()
		}
		io.Copy(io.Discard, pr)
		measured <- err
	}()
	src.progress = progress
	in := &gate{r: io.TeeReader(src, pw)}
	rerr := run(in)
	in.close()
	if rerr != nil {
		pw.CloseWithError(errStreamCut)
	} else {
		pw.Close()
	}
	merr := <-measured
	switch {
	case rerr == nil && merr == nil:
		return h.Sum(), nil
	case merr != nil && !errors.Is(merr, errStreamCut):
		return Sum{}, fmt.Errorf("image %s: %w", path, merr)
	}
	// The node gave up first: because of the image (its inflater failed on it too), or of
	// the node or the network. Only reading the whole file tells.
	if _, err := Measure(context.Background(), path, format); errors.Is(err, ErrCorrupt) {
		return Sum{}, err
	}
	return Sum{}, rerr
}

// errStreamCut ends the local copy of a stream the node stopped reading.
var errStreamCut = errors.New("stream cut: the node stopped reading")

// counter counts the file bytes read and reports them.
type counter struct {
	r        io.Reader
	n, total int64
	progress func(done, total int64)
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n, c.total)
	}
	return n, err
}

// gate is the stream run reads. run may return while a goroutine of its own is still reading
// (an SSH session whose command died); close waits for that read to end and makes the next
// ones fail, so nothing is read — and no progress reported — once Send has returned.
type gate struct {
	mu     sync.Mutex
	r      io.Reader
	closed bool
}

var errGateClosed = errors.New("image: stream closed")

func (g *gate) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, errGateClosed
	}
	return g.r.Read(p)
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// recorder keeps the first read error other than EOF.
type recorder struct {
	r   io.Reader
	err error
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}
