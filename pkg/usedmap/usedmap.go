// Package usedmap finds the byte ranges of a raw disk image that its file systems use, so
// that a copy onto a card can skip the rest (like bmaptool). It reads the image once, in
// order, as an io.Writer: it can be fed the stream a copy inflates anyway.
//
// Only what it proves free is left out: the free blocks of ext2/3/4 file systems (from their
// block bitmaps) and the free clusters of FAT ones (from the first FAT). The partition table,
// the gaps between partitions, file system metadata, any partition it does not recognise and
// any structure it cannot read in time or does not understand count as used, so a mistake
// here can cost speed, never data.
package usedmap

import (
	"container/heap"
	"sort"
)

// Range is a byte range of the image: [Start, End).
type Range struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Extent is a partition's place in the image, in bytes.
type Extent struct{ Start, Size int64 }

// maxTable bounds what one file system may ask to be kept in memory at once (its group
// descriptors or FAT): a larger one is counted as used.
const maxTable = 64 << 20

// Mapper is written the raw disk image from its first byte; Used then returns its used ranges.
type Mapper struct {
	table func(mbr []byte) ([]Extent, error)
	pos   int64
	wants wantHeap
	free  []Range
}

// New returns a Mapper that finds the partitions with table, given the image's first sector
// (512 bytes). An error leaves the whole image used.
func New(table func(mbr []byte) ([]Extent, error)) *Mapper {
	m := &Mapper{table: table}
	m.want(0, 512, m.partitions)
	return m
}

// Write never fails: what the Mapper cannot use it ignores.
func (m *Mapper) Write(p []byte) (int, error) {
	base, end := m.pos, m.pos+int64(len(p))
	for len(m.wants) > 0 {
		w := m.wants[0]
		next := w.off + int64(len(w.buf))
		if next >= end {
			break
		}
		if next < base { // asked for bytes already gone by: never known
			heap.Pop(&m.wants)
			continue
		}
		stop := min(end, w.off+w.n)
		if w.buf == nil {
			w.buf = make([]byte, 0, w.n)
		}
		w.buf = append(w.buf, p[next-base:stop-base]...)
		if int64(len(w.buf)) == w.n {
			heap.Pop(&m.wants)
			w.done(w.buf) // may ask for more, here or later
		} else {
			heap.Fix(&m.wants, 0)
		}
	}
	m.pos = end
	return len(p), nil
}

// Used returns the used ranges of the image written so far, rounded out to granule, in
// order: a card writes best in large aligned pieces, and a skip shorter than that is not
// worth a command. Bytes asked for but never written (a truncated image) leave what
// they describe used.
func (m *Mapper) Used(granule int64) []Range { return usedOf(m.free, m.pos, granule) }

// Coarsen returns used with the gaps between its ranges shorter than gap closed: fewer ranges
// for the same data, at the cost of writing those gaps.
func Coarsen(used []Range, gap int64) []Range {
	var out []Range
	for _, r := range used {
		if n := len(out); n > 0 && r.Start-out[n-1].End < gap {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Bytes is the total length of ranges.
func Bytes(rs []Range) int64 {
	var n int64
	for _, r := range rs {
		n += r.End - r.Start
	}
	return n
}

// usedOf is [0, size) less the free ranges, each used range rounded out to granule.
func usedOf(free []Range, size, granule int64) []Range {
	free = append([]Range(nil), free...)
	sort.Slice(free, func(i, j int) bool { return free[i].Start < free[j].Start })
	var used []Range
	add := func(start, end int64) {
		start = start / granule * granule
		end = min(size, (end+granule-1)/granule*granule)
		if start >= end {
			return
		}
		if n := len(used); n > 0 && start <= used[n-1].End {
			used[n-1].End = max(used[n-1].End, end)
			return
		}
		used = append(used, Range{start, end})
	}
	pos := int64(0)
	for _, f := range free {
		f.End = min(f.End, size)
		if f.Start > pos {
			add(pos, f.Start)
		}
		pos = max(pos, f.End)
	}
	if pos < size {
		add(pos, size)
	}
	return used
}

// partitions reads the first sector and looks at each partition's first 2 KiB, where both a
// FAT boot sector and an ext superblock lie.
func (m *Mapper) partitions(mbr []byte) {
	parts, err := m.table(mbr)
	if err != nil {
		return
	}
	for _, p := range parts {
		if p.Start <= 0 || p.Size < 2048 {
			continue
		}
		m.want(p.Start, 2048, func(b []byte) {
			switch {
			case isExt(b[1024:]):
				m.ext(p, b[1024:])
			case isFAT(b):
				m.fat(p, b)
			}
		})
	}
}

// markFree records [start, end) of partition p as free, clipped to it.
func (m *Mapper) markFree(p Extent, start, end int64) {
	start, end = max(start, 0), min(end, p.Size)
	if start < end {
		m.free = append(m.free, Range{p.Start + start, p.Start + end})
	}
}

// want asks for n bytes at off, given to done once they are all written.
func (m *Mapper) want(off, n int64, done func([]byte)) {
	if off < m.pos || n <= 0 {
		return
	}
	heap.Push(&m.wants, &want{off: off, n: n, done: done})
}

type want struct {
	off, n int64
	buf    []byte
	done   func([]byte)
}

// wantHeap orders wants by the next byte each waits for.
type wantHeap []*want

func (h wantHeap) Len() int { return len(h) }
func (h wantHeap) Less(i, j int) bool {
	return h[i].off+int64(len(h[i].buf)) < h[j].off+int64(len(h[j].buf))
}
func (h wantHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *wantHeap) Push(x any)   { *h = append(*h, x.(*want)) }
func (h *wantHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}

// Valid tells whether rs are ranges of an image of size bytes, in order, apart and not
// empty, the first sector (the partition table) among them.
func Valid(rs []Range, size int64) bool {
	if len(rs) == 0 || rs[0].Start != 0 {
		return false
	}
	end := int64(-1)
	for _, r := range rs {
		if r.Start <= end || r.End <= r.Start || r.End > size {
			return false
		}
		end = r.End
	}
	return true
}
