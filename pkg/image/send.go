package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/piseduce/piseduce/pkg/usedmap"
)

// ErrChanged marks an image file whose raw image is not the one registered with its
// environment: registering it again is the cure, not trying again.
var ErrChanged error = badImage("image changed since it was registered")

// Send streams the image file at path into run's stdin and returns the size and sha256 of the
// raw disk image it carried, to be checked against what lands on the card; ctx bounds its wait
// for the file's measure. run returns the
// sha256 (hex) of the raw image the node received, which the node computes as it inflates.
// run is also given the ranges of the raw image its file systems use when they are known for
// this version of the file (nil otherwise): the node may write those alone, and it still
// receives and hashes the whole image.
//
// known is the raw image's measure registered with its environment, if any: a file whose raw
// image differs fails with ErrChanged. With inflateHere a compressed image is inflated by the
// pimaster and raw bytes go on the wire, hashed here. Else the file's own bytes are sent
// (run's command inflates them, see NodeInflater) and the pimaster hashes nothing when it
// kept the measure of this version of the file from an earlier copy (see digest.go), the
// registered one if any; the node's sha256 must then match it, and a mismatch makes the next
// copy measure the file again. Otherwise the file is measured here (measureOnce), once per
// version of the file however many copies of it are under way. Either way the measure kept has
// the hashes of the raw image's blocks (BlockSums) and its used ranges. A truncated or damaged
// image fails with ErrCorrupt, even when the node's command did not notice.
//
// progress gets what went on the wire so far and the total: the file's bytes and size, or,
// when the pimaster inflates an image whose raw size is known (known.Size > 0), the raw bytes
// and that size, so that the throughput shown is the link's.
func Send(ctx context.Context, path, format string, inflateHere bool, known Sum, run func(stdin io.Reader, used []usedmap.Range) (string, error), progress func(done, total int64)) (Sum, error) {
	if err := Check(format); err != nil {
		return Sum{}, err
	}
	f, fi, err := Open(path)
	if err != nil {
		return Sum{}, err
	}
	defer f.Close()
	// The file is read in the reader's buffer (remote.Run's, one SSH packet): no buffer of its
	// own per copy, as many copies run at once (one per node).
	src := &counter{r: io.LimitReader(f, fi.Size()), total: fi.Size()}
	h := NewHasher()
	id, identified := idOf(fi, format)
	var kept digest
	haveKept := false
	if identified {
		kept, haveKept = cachedDigest(path, id)
		haveKept = haveKept && agrees(kept.Raw, known)
	}
	var used []usedmap.Range // what the node may write alone: only the map of a version measured
	if haveKept {
		used = kept.Used
	}
	// keep remembers the measure taken by this copy, unless the file changed while it was read.
	keep := func(sum Sum, blocks Blocks, m *usedmap.Mapper) {
		if identified && unchanged(f, id, format) {
			rememberDigest(path, digest{ID: id, Raw: sum, Blocks: blocks, Used: m.Used(BlockSize)})
		}
	}

	if inflateHere && format != Raw {
		// The decoder reads in small pieces: buffered, so that is not one syscall each.
		raw, err := Inflate(bufio.NewReaderSize(src, inflateBuffer), format)
		if err != nil {
			return Sum{}, err
		}
		defer raw.Close()
		rec := &recorder{r: raw}
		var wire io.Reader = rec
		if known.Size > 0 {
			wire = &counter{r: rec, total: known.Size, progress: progress}
		} else {
			src.progress = progress
		}
		var bh *blockHasher
		var mapper *usedmap.Mapper
		var hashes io.Writer = h
		if identified && !haveKept {
			bh, mapper = newBlockHasher(), NewUsedMapper()
			hashes = io.MultiWriter(h, bh, mapper)
		}
		in := &gate{r: io.TeeReader(wire, hashes)}
		node, rerr := run(in, used)
		in.close()
		// A stream the node accepted may still have been cut short by a corrupt file.
		if rec.err != nil {
			return Sum{}, fmt.Errorf("image %s: %w", path, rec.err)
		}
		if rerr != nil {
			return Sum{}, rerr
		}
		sum, err := measured(path, h.Sum(), node, known)
		if err == nil && bh != nil {
			keep(sum, bh.blocks(), mapper)
		}
		return sum, err
	}

	src.progress = progress
	if haveKept {
		in := &gate{r: src}
		node, rerr := run(in, used)
		in.close()
		if rerr != nil {
			return Sum{}, rerr // the image is not to blame: this version of it was measured whole
		}
		if node != kept.Raw.SHA256 {
			forgetDigest(path)
			return Sum{}, fmt.Errorf("image %s: the node received a raw image of sha256 %s, not the %s measured before; the next copy measures it again",
				path, node, kept.Raw.SHA256)
		}
		return measured(path, kept.Raw, node, known)
	}

	// The file's bytes go as they are, and the version is measured from the file, once
	// whatever the number of copies under way (measureOnce).
	m := measureOnce(path, id, format)
	in := &gate{r: src}
	node, rerr := run(in, nil)
	in.close()
	d, merr := m.wait(ctx, path)
	switch {
	case rerr != nil && errors.Is(merr, ErrCorrupt):
		return Sum{}, merr // the node's inflater failed on the image
	case rerr != nil:
		return Sum{}, rerr
	case merr != nil:
		return Sum{}, merr
	}
	return measured(path, d.Raw, node, known)
}

// agrees tells whether the measure sum is that of the registered measure known, if any.
func agrees(sum, known Sum) bool {
	return known.SHA256 == "" || (sum.SHA256 == known.SHA256 && (known.Size <= 0 || sum.Size == known.Size))
}

// unchanged tells whether the open file f is still the version id.
func unchanged(f *os.File, id fileID, format string) bool {
	after, err := f.Stat()
	if err != nil {
		return false
	}
	id2, _ := idOf(after, format)
	return id2 == id
}

// inflateBuffer buffers the file read by an image inflated here.
const inflateBuffer = 64 << 10

// measured checks the measure sum the pimaster took while sending against the sha256 the node
// received and the registered measure known.
func measured(path string, sum Sum, node string, known Sum) (Sum, error) {
	if node != sum.SHA256 {
		return Sum{}, fmt.Errorf("image %s: the node received a raw image of sha256 %s, the pimaster sent %s", path, node, sum.SHA256)
	}
	if !agrees(sum, known) {
		return Sum{}, changed(path, sum, known)
	}
	return sum, nil
}

func changed(path string, got, known Sum) error {
	size := ""
	if got.Size > 0 {
		size = fmt.Sprintf("%d bytes, ", got.Size)
	}
	return fmt.Errorf("image %s: %w: %ssha256 %s; registered %d bytes, sha256 %s", path, ErrChanged, size, got.SHA256, known.Size, known.SHA256)
}

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
