package image

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/piseduce/piseduce/pkg/usedmap"
)

// SectorSize is the sector size of SD cards and of the images written on them.
const SectorSize = 512

// MBR partition types PiSeduce cares about.
const (
	PartLinux = 0x83
	PartGPT   = 0xee // protective MBR of a GPT disk
)

// ErrNoPartitionTable is returned for an image whose first sector holds no MBR partition table.
var ErrNoPartitionTable error = badImage("image: no MBR partition table in the first sector")

// Partition is one primary entry of an MBR partition table.
type Partition struct {
	// Number is the partition's number on the card: 1 to 4 (/dev/mmcblk0pN).
	Number int
	Type   byte
	Boot   bool
	// Start and Sectors are in 512-byte sectors.
	Start, Sectors int64
}

// End is the sector right after the partition.
func (p Partition) End() int64 { return p.Start + p.Sectors }

// Layout is an image's partition layout, read from its first sector.
type Layout struct {
	Partitions []Partition
	// RootStart is the first sector of the root partition: the last Linux (0x83) partition.
	// 0 when there is none.
	RootStart int64
	// End is the size in bytes up to the end of the last partition: what a card must hold of
	// the image, and what a capture of a card reads.
	End int64
}

// Root returns the root partition: the last Linux (0x83) partition.
func (l Layout) Root() (Partition, bool) {
	for i := len(l.Partitions) - 1; i >= 0; i-- {
		if l.Partitions[i].Type == PartLinux {
			return l.Partitions[i], true
		}
	}
	return Partition{}, false
}

// ParseMBR reads the partition table of an MBR first sector (at least 512 bytes). Only the four
// primary entries are read: an extended partition counts as one partition that ends after its
// logical ones. A GPT disk (protective MBR) is refused: Raspberry Pi images use MBR.
func ParseMBR(sector []byte) (Layout, error) {
	if len(sector) < SectorSize {
		return Layout{}, fmt.Errorf("%w: only %d bytes", ErrNoPartitionTable, len(sector))
	}
	if sector[510] != 0x55 || sector[511] != 0xaa {
		return Layout{}, fmt.Errorf("%w (no 55 aa signature)", ErrNoPartitionTable)
	}
	var l Layout
	for i := 0; i < 4; i++ {
		e := sector[446+16*i : 446+16*(i+1)]
		typ := e[4]
		start := int64(binary.LittleEndian.Uint32(e[8:12]))
		n := int64(binary.LittleEndian.Uint32(e[12:16]))
		if typ == 0 || n == 0 {
			continue
		}
		if typ == PartGPT {
			return Layout{}, badImage("image: GPT partition table: only MBR images are supported")
		}
		if e[0] != 0 && e[0] != 0x80 {
			return Layout{}, fmt.Errorf("%w (entry %d has boot flag %#x)", ErrNoPartitionTable, i+1, e[0])
		}
		if start == 0 {
			return Layout{}, fmt.Errorf("%w (partition %d starts at sector 0)", ErrNoPartitionTable, i+1)
		}
		p := Partition{Number: i + 1, Type: typ, Boot: e[0] == 0x80, Start: start, Sectors: n}
		l.Partitions = append(l.Partitions, p)
		if end := p.End() * SectorSize; end > l.End {
			l.End = end
		}
	}
	if len(l.Partitions) == 0 {
		return Layout{}, fmt.Errorf("%w (no partition)", ErrNoPartitionTable)
	}
	for i, p := range l.Partitions {
		for _, q := range l.Partitions[i+1:] {
			if p.Start < q.End() && q.Start < p.End() {
				return Layout{}, badImage(fmt.Sprintf("image: partitions %d and %d overlap", p.Number, q.Number))
			}
		}
	}
	if root, ok := l.Root(); ok {
		l.RootStart = root.Start
	}
	return l, nil
}

// ReadLayout reads the partition table from the first sector of a raw disk stream.
func ReadLayout(raw io.Reader) (Layout, error) {
	sector := make([]byte, SectorSize)
	if _, err := io.ReadFull(raw, sector); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Layout{}, fmt.Errorf("%w: the image is shorter than one sector", ErrNoPartitionTable)
		}
		return Layout{}, err
	}
	return ParseMBR(sector)
}

// LayoutOf reads the partition layout of the image file at path, inflating only its first
// sectors.
func LayoutOf(path, format string) (Layout, error) {
	f, _, err := Open(path)
	if err != nil {
		return Layout{}, err
	}
	defer f.Close()
	r, err := Inflate(bufio.NewReader(f), format)
	if err != nil {
		return Layout{}, fmt.Errorf("image: %s: %w", path, err)
	}
	defer r.Close()
	l, err := ReadLayout(r)
	if err != nil {
		return Layout{}, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// Magic numbers of the compressed formats.
var (
	magicGzip = []byte{0x1f, 0x8b}
	magicXZ   = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// DetectFormat tells the format of the image file at path from its content: the magic bytes of
// gzip, xz and zstd, a tar archive inside gzip for the original's tar.gz; anything else is raw.
func DetectFormat(path string) (string, error) {
	f, _, err := Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return detectFormat(f)
}

// detectFormat reads the head of f for DetectFormat, and leaves f where it began.
func detectFormat(f *os.File) (string, error) {
	defer f.Seek(0, io.SeekStart)
	head := make([]byte, 8)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("image: %w", err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, magicXZ):
		return XZ, nil
	case bytes.HasPrefix(head, magicZstd):
		return Zstd, nil
	case !bytes.HasPrefix(head, magicGzip):
		return Raw, nil
	}
	// gzip: a tar archive inside has "ustar" at offset 257 of its first block.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("image: %w", err)
	}
	r, err := Inflate(bufio.NewReader(io.LimitReader(f, 64<<10)), Gzip)
	if err != nil {
		return "", fmt.Errorf("image: %s: %w", f.Name(), err)
	}
	defer r.Close()
	block := make([]byte, 512)
	if n, _ := io.ReadFull(r, block); n >= 262 && string(block[257:262]) == "ustar" {
		return TarGz, nil
	}
	return Gzip, nil
}

// Info is what registering an image computes once: its format, uncompressed size and sha256,
// and its partition layout.
type Info struct {
	Format string
	Sum
	Layout Layout
	// The hashes of the raw image's blocks and its used ranges, taken in the same pass (see
	// KeepFor).
	blocks Blocks
	used   []usedmap.Range
}

// KeepFor keeps the measure info took, block hashes and used ranges included, for the file at
// path: the file examined, or a copy of it (env-register copies an image into img_dir after
// measuring it). The first deployment of that file version then neither inflates it to
// measure it nor writes the blocks its file systems do not use. Were path not such a copy,
// the first copy would tell (the node's sha256 differs) and measure it again. Like the
// measure a copy keeps, this is a saving only: a file it cannot stat keeps nothing.
func (info Info) KeepFor(path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	if id, ok := idOf(fi, info.Format); ok && info.blocks.Covers(info.Size) {
		rememberDigest(path, digest{ID: id, Raw: info.Sum, Blocks: info.blocks, Used: info.used})
	}
}

// Examine measures the image file at path in one pass: its format (from its content, see
// DetectFormat), the size and sha256 of the raw disk image inside, and its partition layout. A
// raw image shorter than its partition table says fails; so does a truncated compressed one.
// It reads a regular file only (see Open), as far as its size when opened, at most
// MaxRawSize raw bytes, and gives up with ctx's error when ctx ends first. In the same pass it
// hashes the raw image's blocks and maps its used ranges, and keeps them for this version of
// the file, as the first copy of it would (see Send and KeepFor).
func Examine(ctx context.Context, path string) (Info, error) {
	return examine(ctx, path, io.Discard)
}

// examine is Examine, writing the raw image to spill as well.
func examine(ctx context.Context, path string, spill io.Writer) (Info, error) {
	f, fi, err := Open(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	format, err := detectFormat(f)
	if err != nil {
		return Info{}, err
	}
	h, bh, mapper := NewHasher(), newBlockHasher(), NewUsedMapper()
	first := &firstSector{}
	if err := readRaw(ctx, f, fi.Size(), format, MaxRawSize, io.MultiWriter(h, first, spill, bh, mapper)); err != nil {
		return Info{}, fmt.Errorf("image: %s: %w", path, err)
	}
	l, err := ParseMBR(first.b)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	sum := h.Sum()
	if sum.Size < l.End {
		return Info{}, fmt.Errorf("image: %s: %w: %d bytes, its partitions end at byte %d", path, ErrCorrupt, sum.Size, l.End)
	}
	info := Info{Format: format, Sum: sum, Layout: l, blocks: bh.blocks(), used: mapper.Used(BlockSize)}
	if id, ok := idOf(fi, format); ok && unchanged(f, id, format) {
		rememberDigest(path, digest{ID: id, Raw: sum, Blocks: info.blocks, Used: info.used})
	}
	return info, nil
}

// readRaw inflates the first size bytes of f, an image of format, into w: at most limit
// bytes, until ctx ends.
func readRaw(ctx context.Context, f *os.File, size int64, format string, limit int64, w io.Writer) error {
	r, err := Inflate(bufio.NewReaderSize(ctxReader{ctx: ctx, r: io.LimitReader(f, size)}, 1<<20), format)
	if err != nil {
		if ctx.Err() != nil { // the header was not read: no sign of a corrupt image
			return fmt.Errorf("reading given up: %w", ctx.Err())
		}
		return err
	}
	defer r.Close()
	n, err := io.Copy(w, io.LimitReader(r, limit+1))
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("reading given up: %w", ctx.Err())
	case err != nil:
		return err
	case n > limit:
		return fmt.Errorf("%w: it inflates to more than %d bytes", ErrTooBig, limit)
	}
	return nil
}

// ContextReader is r, ending with ctx's error once ctx ends.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx: ctx, r: r} }

// ctxReader stops reading once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// firstSector keeps the first sector written to it.
type firstSector struct{ b []byte }

func (s *firstSector) Write(p []byte) (int, error) {
	if room := SectorSize - len(s.b); room > 0 {
		s.b = append(s.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// NewUsedMapper returns a usedmap.Mapper that reads a raw image's MBR partition table.
func NewUsedMapper() *usedmap.Mapper {
	return usedmap.New(func(mbr []byte) ([]usedmap.Extent, error) {
		l, err := ParseMBR(mbr)
		if err != nil {
			return nil, err
		}
		parts := make([]usedmap.Extent, len(l.Partitions))
		for i, p := range l.Partitions {
			parts[i] = usedmap.Extent{Start: p.Start * SectorSize, Size: p.Sectors * SectorSize}
		}
		return parts, nil
	})
}
