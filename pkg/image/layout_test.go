package image_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// mbr builds a first sector with the given primary entries {type, start, sectors}.
func mbr(entries ...[3]int64) []byte {
	b := make([]byte, 512)
	for i, e := range entries {
		off := 446 + 16*i
		b[off+4] = byte(e[0])
		binary.LittleEndian.PutUint32(b[off+8:], uint32(e[1]))
		binary.LittleEndian.PutUint32(b[off+12:], uint32(e[2]))
	}
	b[510], b[511] = 0x55, 0xaa
	return b
}

func TestParseMBR(t *testing.T) {
	// Raspberry Pi OS: FAT32 boot (0x0c) then ext4 root.
	l, err := image.ParseMBR(mbr([3]int64{0x0c, 8192, 1048576}, [3]int64{0x83, 1056768, 4194304}))
	if err != nil {
		t.Fatal(err)
	}
	if l.RootStart != 1056768 || l.End != (1056768+4194304)*512 || len(l.Partitions) != 2 || l.Partitions[1].Number != 2 {
		t.Errorf("layout %+v", l)
	}
	// The root is the last Linux partition, wherever the others are; the end is the furthest
	// partition's, whatever the order of the entries.
	l, err = image.ParseMBR(mbr([3]int64{0x0c, 8192, 8192}, [3]int64{0x83, 16384, 1000}, [3]int64{0x83, 20000, 1000}, [3]int64{0x82, 17384, 100}))
	if err != nil {
		t.Fatal(err)
	}
	if l.RootStart != 20000 || l.End != 21000*512 {
		t.Errorf("layout %+v", l)
	}
	// An empty slot between entries is skipped.
	l, err = image.ParseMBR(mbr([3]int64{0x0c, 2048, 2048}, [3]int64{0, 0, 0}, [3]int64{0x83, 4096, 4096}))
	if err != nil || l.RootStart != 4096 || len(l.Partitions) != 2 || l.Partitions[1].Number != 3 {
		t.Errorf("layout %+v, %v", l, err)
	}
	// No Linux partition: no root, still a layout.
	l, err = image.ParseMBR(mbr([3]int64{0x0c, 2048, 2048}))
	if err != nil || l.RootStart != 0 || l.End != 4096*512 {
		t.Errorf("layout %+v, %v", l, err)
	}

	bad := map[string][]byte{
		"short":        make([]byte, 100),
		"no signature": make([]byte, 512),
		"empty table":  mbr(),
		"overlap":      mbr([3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 4096, 4096}),
		"sector 0":     mbr([3]int64{0x83, 0, 4096}),
	}
	for name, b := range bad {
		if _, err := image.ParseMBR(b); !errors.Is(err, image.ErrNoPartitionTable) && name != "overlap" || err == nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := image.ParseMBR(mbr([3]int64{0xee, 1, 1 << 20})); err == nil || !strings.Contains(err.Error(), "GPT") {
		t.Errorf("GPT: %v", err)
	}
	flag := mbr([3]int64{0x83, 2048, 2048})
	flag[446] = 0x12
	if _, err := image.ParseMBR(flag); !errors.Is(err, image.ErrNoPartitionTable) {
		t.Errorf("bad boot flag: %v", err)
	}
}

// labImages builds the lab's test image in every format.
func labImages(t *testing.T) (*lab.Image, map[string]string) {
	t.Helper()
	testenv.NeedCommand(t, "sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs", "gzip", "zstd", "xz", "openssl")
	dir := t.TempDir()
	im, err := lab.BuildImage(dir)
	if err != nil {
		t.Fatal(err)
	}
	xzPath := im.Img + ".xz"
	if out, err := exec.Command("xz", "-k", "-T1", "-0", im.Img).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v %s", err, out)
	}
	tgz := filepath.Join(dir, "test-os.tar.gz")
	f, err := os.Create(tgz)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	raw, err := os.Open(im.Img)
	if err != nil {
		t.Fatal(err)
	}
	tw.WriteHeader(&tar.Header{Name: "test-os.img", Mode: 0o644, Size: lab.ImageSize, Typeflag: tar.TypeReg})
	io.Copy(tw, raw)
	raw.Close()
	tw.Close()
	zw.Close()
	f.Close()
	// A copy with no telling name: the format comes from the content.
	anon := filepath.Join(dir, "image-without-extension")
	b, _ := os.ReadFile(im.Zst)
	os.WriteFile(anon, b, 0o644)
	return im, map[string]string{image.Raw: im.Img, image.Gzip: im.Gz, image.Zstd: im.Zst, image.XZ: xzPath,
		image.TarGz: tgz, "anonymous " + image.Zstd: anon}
}

func TestLayoutAndExamineOnTheLabImages(t *testing.T) {
	im, files := labImages(t)
	raw, err := os.ReadFile(im.Img)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(raw)
	for label, path := range files {
		format := strings.TrimPrefix(label, "anonymous ")
		got, err := image.DetectFormat(path)
		if err != nil || got != format {
			t.Errorf("%s: DetectFormat = %q, %v", label, got, err)
		}
		l, err := image.LayoutOf(path, format)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		if l.RootStart != lab.ImageRootStart || l.End != lab.ImageSize || len(l.Partitions) != 2 {
			t.Errorf("%s: layout %+v; want root at %d, end %d", label, l, lab.ImageRootStart, lab.ImageSize)
		}
		info, err := image.Examine(context.Background(), path)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		if info.Format != format || info.Size != lab.ImageSize || info.SHA256 != hex.EncodeToString(want[:]) ||
			info.Layout.RootStart != lab.ImageRootStart {
			t.Errorf("%s: %+v", label, info)
		}
	}
}

func TestExamineRefusesBrokenImages(t *testing.T) {
	im, _ := labImages(t)
	dir := t.TempDir()
	// Truncated compressed image.
	b, _ := os.ReadFile(im.Zst)
	short := filepath.Join(dir, "short.img.zst")
	os.WriteFile(short, b[:len(b)/2], 0o644)
	if _, err := image.Examine(context.Background(), short); !errors.Is(err, image.ErrCorrupt) {
		t.Errorf("truncated zst: %v", err)
	}
	// A raw image cut inside its last partition.
	raw, _ := os.ReadFile(im.Img)
	cut := filepath.Join(dir, "cut.img")
	os.WriteFile(cut, raw[:len(raw)-4096], 0o644)
	if _, err := image.Examine(context.Background(), cut); !errors.Is(err, image.ErrCorrupt) {
		t.Errorf("cut raw image: %v", err)
	}
	// Not a disk image at all.
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte(strings.Repeat("hello\n", 200)), 0o644)
	if _, err := image.Examine(context.Background(), text); !errors.Is(err, image.ErrNoPartitionTable) || !errors.Is(err, image.ErrBadImage) {
		t.Errorf("text file: %v, want ErrNoPartitionTable, an ErrBadImage", err)
	}
	// A GPT disk and overlapping partitions are bad images too: retrying cannot help.
	for name, sector := range map[string][]byte{
		"GPT":         mbr([3]int64{0xee, 1, 1 << 20}),
		"overlapping": mbr([3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 4096, 4096}),
	} {
		if _, err := image.ParseMBR(sector); !errors.Is(err, image.ErrBadImage) {
			t.Errorf("%s: %v, want an ErrBadImage", name, err)
		}
	}
}

func TestExamineGivesUpWithItsContext(t *testing.T) {
	im, _ := labImages(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := image.Examine(ctx, im.Zst); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
