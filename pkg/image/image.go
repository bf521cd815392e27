// Package image knows the OS image formats PiSeduce deploys (raw, gz, xz, zst and the
// original's tar.gz holding one .img), how to inflate each one in Go and on a node, and how to
// measure an image: its uncompressed size and sha256.
package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Formats.
const (
	Raw   = "raw"
	Gzip  = "gz"
	XZ    = "xz"
	Zstd  = "zst"
	TarGz = "tar.gz"
)

// ErrBadImage is the kind of every error that says the image itself is unusable: trying
// again with the same file cannot succeed. ErrCorrupt, ErrTooBig and ErrNoPartitionTable are
// ErrBadImage (errors.Is).
var ErrBadImage = errors.New("bad image")

// badImage is an error of kind ErrBadImage.
type badImage string

func (e badImage) Error() string        { return string(e) }
func (e badImage) Is(target error) bool { return target == ErrBadImage }

// ErrCorrupt marks an image that cannot be read to its end: truncated or damaged.
var ErrCorrupt error = badImage("image is truncated or corrupt")

// ErrTooBig marks an image whose raw disk image is larger than MaxRawSize.
var ErrTooBig error = badImage("image is too big")

// FormatOf guesses a format from a file name.
func FormatOf(name string) string {
	switch {
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		return TarGz
	case strings.HasSuffix(name, ".gz"):
		return Gzip
	case strings.HasSuffix(name, ".xz"):
		return XZ
	case strings.HasSuffix(name, ".zst"):
		return Zstd
	default:
		return Raw
	}
}

// Check refuses unknown formats.
func Check(format string) error {
	switch format {
	case Raw, Gzip, XZ, Zstd, TarGz:
		return nil
	}
	return fmt.Errorf("image: unknown format %q (want raw, gz, xz, zst or tar.gz)", format)
}

// Inflate returns a reader of the raw disk image inside r. Errors reading it wrap ErrCorrupt.
func Inflate(r io.Reader, format string) (io.ReadCloser, error) {
	var (
		out io.Reader
		cl  func()
	)
	switch format {
	case Raw:
		out = r
	case Gzip, TarGz:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, corrupt(err)
		}
		out, cl = zr, func() { zr.Close() }
		if format == TarGz {
			tr := tar.NewReader(zr)
			for {
				h, err := tr.Next()
				if err != nil {
					return nil, corrupt(fmt.Errorf("no disk image in the archive: %w", err))
				}
				if h.Typeflag == tar.TypeReg {
					out = tr
					break
				}
			}
		}
	case XZ:
		xr, err := xz.NewReader(bufio.NewReaderSize(r, 1<<20))
		if err != nil {
			return nil, corrupt(err)
		}
		out = xr
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, corrupt(err)
		}
		out, cl = zr, zr.Close
	default:
		return nil, Check(format)
	}
	return &inflater{r: out, close: cl}, nil
}

type inflater struct {
	r     io.Reader
	close func()
}

func (i *inflater) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if err != nil && err != io.EOF {
		err = corrupt(err)
	}
	return n, err
}

func (i *inflater) Close() error {
	if i.close != nil {
		i.close()
	}
	return nil
}

func corrupt(err error) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: it ends too early", ErrCorrupt)
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}

// NodeInflater is the argv of the program that inflates format on a node (stdin to stdout),
// or nil for raw images.
func NodeInflater(format string) []string {
	switch format {
	case Gzip:
		return []string{"gzip", "-dc"}
	case TarGz:
		return []string{"tar", "-xzOf", "-"}
	case XZ:
		return []string{"xz", "-dc"}
	case Zstd:
		return []string{"zstd", "-dc"}
	}
	return nil
}

// Sum is the measure of an image: its uncompressed size and sha256.
type Sum struct {
	Size   int64
	SHA256 string
}

// Hasher counts and hashes what is written to it.
type Hasher struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

// NewHasher returns an empty Hasher.
func NewHasher() *Hasher { return &Hasher{h: sha256.New()} }

func (h *Hasher) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	return h.h.Write(p)
}

// Sum returns what was written so far.
func (h *Hasher) Sum() Sum { return Sum{Size: h.n, SHA256: hex.EncodeToString(h.h.Sum(nil))} }

// Measure reads the image file at path to its end and returns its uncompressed size and
// sha256; see Examine for the bounds of the reading.
func Measure(ctx context.Context, path, format string) (Sum, error) {
	f, fi, err := Open(path)
	if err != nil {
		return Sum{}, err
	}
	defer f.Close()
	h := NewHasher()
	if err := readRaw(ctx, f, fi.Size(), format, MaxRawSize, h); err != nil {
		return Sum{}, fmt.Errorf("image: %s: %w", path, err)
	}
	return h.Sum(), nil
}
