package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"math/rand/v2"
	"slices"

	"github.com/piseduce/piseduce/pkg/usedmap"
)

// BlockSize is the unit in which a raw image is hashed block by block, so that a card can be
// checked by reading back a sample of its blocks instead of the whole image.
const BlockSize = 4 << 20

// Blocks are the sha256 (hex) of each BlockSize block of a raw image, the last one as long as
// what is left of the image.
type Blocks []string

// Covers tells whether b has one hash per block of a raw image of size bytes.
func (b Blocks) Covers(size int64) bool {
	return size > 0 && int64(len(b)) == (size+BlockSize-1)/BlockSize
}

// blockHasher hashes what is written to it block by block.
type blockHasher struct {
	h    hash.Hash
	n    int // bytes of the current block
	sums Blocks
}

func newBlockHasher() *blockHasher { return &blockHasher{h: sha256.New()} }

func (b *blockHasher) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		c := min(len(p), BlockSize-b.n)
		b.h.Write(p[:c])
		b.n += c
		p = p[c:]
		if b.n == BlockSize {
			b.next()
		}
	}
	return total, nil
}

func (b *blockHasher) next() {
	b.sums = append(b.sums, hex.EncodeToString(b.h.Sum(nil)))
	b.h.Reset()
	b.n = 0
}

// blocks ends the last block and returns the hashes.
func (b *blockHasher) blocks() Blocks {
	if b.n > 0 {
		b.next()
	}
	return b.sums
}

// BlockSums returns the block hashes of the raw image inside the image file at path, which must
// be the raw image want: those kept from an earlier measure of this version of the file (see
// Send), or else taken now by reading the whole file, once however many ask (measureOnce), and
// kept. A file whose raw image is not want fails with ErrChanged.
func BlockSums(ctx context.Context, path, format string, want Sum) (Blocks, error) {
	if err := Check(format); err != nil {
		return nil, err
	}
	f, fi, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	id, identified := idOf(fi, format)
	if identified {
		if d, ok := cachedDigest(path, id); ok && d.Raw == want {
			return d.Blocks, nil
		}
	}
	d, err := measureOnce(path, id, format).wait(ctx, path)
	if err != nil {
		return nil, err
	}
	if d.Raw != want {
		return nil, changed(path, d.Raw, want)
	}
	return d.Blocks, nil
}

// Sample picks the blocks to read back from a card that was given a raw image of size bytes
// and partition layout l: the one holding the partition table, those holding the first and
// the last MiB of each partition (where a card too small for the image, or one that has lost
// its last writes, differs), and k others at random, picked afresh at each call so that no card
// can be made to pass by keeping only the blocks that are read. Block numbers are in
// increasing order.
//
// written are the only ranges of the image the copy wrote (nil: all of it), whole blocks (see
// UsedRanges): only their blocks are picked, the last one always (a fake card differs there).
func Sample(l Layout, size int64, written []usedmap.Range, k int) []int64 {
	n := (size + BlockSize - 1) / BlockSize
	if n <= 0 {
		return nil
	}
	if len(written) == 0 {
		written = []usedmap.Range{{Start: 0, End: size}}
	}
	var blocks []int64 // those written
	for _, r := range written {
		for b := r.Start / BlockSize; b*BlockSize < min(r.End, size); b++ {
			if len(blocks) == 0 || b > blocks[len(blocks)-1] {
				blocks = append(blocks, b)
			}
		}
	}
	isWritten := func(b int64) bool {
		_, found := slices.BinarySearch(blocks, b)
		return found
	}
	picked := map[int64]bool{0: true, blocks[len(blocks)-1]: true}
	span := func(from, to int64) { // the written blocks of bytes [from, to) of the image
		from, to = max(from, 0), min(to, size)
		for b := from / BlockSize; b*BlockSize < to; b++ {
			if isWritten(b) {
				picked[b] = true
			}
		}
	}
	for _, p := range l.Partitions {
		start, end := p.Start*SectorSize, p.End()*SectorSize
		span(start, min(start+1<<20, end))
		span(max(end-1<<20, start), end)
	}
	for left := min(k, len(blocks)-len(picked)); left > 0; {
		if b := blocks[rand.IntN(len(blocks))]; !picked[b] {
			picked[b] = true
			left--
		}
	}
	out := make([]int64, 0, len(picked))
	for b := range picked {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}
