package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestReadRawIsBounded: a small file that inflates past the limit is refused once the limit
// is reached, not read to its end.
func TestReadRawIsBounded(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(make([]byte, 8<<20))
	zw.Close()
	p := filepath.Join(t.TempDir(), "bomb.img.gz")
	os.WriteFile(p, b.Bytes(), 0o644)
	f, fi, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	err = readRaw(context.Background(), f, fi.Size(), Gzip, 1<<20, writerFunc(func(p []byte) (int, error) { n += int64(len(p)); return len(p), nil }))
	if !errors.Is(err, ErrTooBig) || n > 1<<20+1 {
		t.Fatalf("readRaw = %v after %d bytes; want ErrTooBig after at most 1 MiB", err, n)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
