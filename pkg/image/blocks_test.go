package image

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/piseduce/piseduce/pkg/testenv"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

func fileIDOf(t *testing.T, path, format string) fileID {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	id, ok := idOf(fi, format)
	if !ok {
		t.Fatal("no file identity")
	}
	return id
}

// blocksOf hashes raw block by block, the plain way.
func blocksOf(raw []byte) Blocks {
	var b Blocks
	for off := 0; off < len(raw); off += BlockSize {
		s := sha256.Sum256(raw[off:min(off+BlockSize, len(raw))])
		b = append(b, hex.EncodeToString(s[:]))
	}
	return b
}

// Every copy that measures an image keeps its block hashes, whichever side inflates it;
// BlockSums gives them back without reading the file, and measures a file that has none kept
// (a cache entry of an older version, without blocks) once.
func TestBlockSumsKeptByTheCopy(t *testing.T) {
	testenv.NeedCommand(t, "xz", "zstd")
	dir := t.TempDir()
	raw := make([]byte, 2*BlockSize+12345)
	rand.Read(raw[:BlockSize+100])
	path := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"xz", "-k", "-0", "-T1", path}, {"zstd", "-q", "-k", path}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	want := blocksOf(raw)
	h := sha256.Sum256(raw)
	sum := Sum{Size: int64(len(raw)), SHA256: hex.EncodeToString(h[:])}
	for _, c := range []struct {
		format, name string
		here         bool
	}{{Raw, "disk.img", true}, {XZ, "disk.img.xz", false}, {Zstd, "disk.img.zst", true}} {
		p := filepath.Join(dir, c.name)
		if _, err := Send(context.Background(), p, c.format, c.here, sum, nodeRun(c.format, !c.here, filepath.Join(t.TempDir(), "card")), nil); err != nil {
			t.Fatalf("%s: %v", c.format, err)
		}
		digests.Delete(p) // read the cache file, as a restarted pitasks would
		d, ok := cachedDigest(p, fileIDOf(t, p, c.format))
		if !ok || !slices.Equal(d.Blocks, want) {
			t.Fatalf("%s: kept %v, want the block hashes %v", c.format, d.Blocks, want)
		}
		// BlockSums answers from the cache: a forged entry shows it did not read the file.
		forged := slices.Clone(want)
		forged[1] = want[0]
		rememberDigest(p, digest{ID: d.ID, Raw: sum, Blocks: forged, Used: d.Used})
		if got, err := BlockSums(context.Background(), p, c.format, sum); err != nil || !slices.Equal(got, forged) {
			t.Errorf("%s: BlockSums = %v, %v; want the kept hashes", c.format, got, err)
		}
		// An entry without blocks (this cache before block hashes) is measured again, once.
		old, _ := json.Marshal(map[string]any{"file": d.ID, "raw": sum})
		os.WriteFile(digestPath(p), old, 0o644)
		digests.Delete(p)
		if got, err := BlockSums(context.Background(), p, c.format, sum); err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: BlockSums of an old entry = %v, %v; want %v", c.format, got, err, want)
		}
		if d, ok := cachedDigest(p, d.ID); !ok || !slices.Equal(d.Blocks, want) {
			t.Errorf("%s: the measure BlockSums took was not kept", c.format)
		}
		other := Sum{Size: sum.Size, SHA256: hex.EncodeToString(make([]byte, 32))}
		forgetDigest(p)
		if _, err := BlockSums(context.Background(), p, c.format, other); !errors.Is(err, ErrChanged) {
			t.Errorf("%s: BlockSums of another image: err = %v, want ErrChanged", c.format, err)
		}
	}
}

func TestSample(t *testing.T) {
	const mib = 1 << 20
	sectors := func(bytes int64) int64 { return bytes / SectorSize }
	// A boot partition from 4 MiB to 260 MiB, root from 260 MiB to 3 GiB + 1 MiB (not on a block
	// boundary), and a raw image that ends 100 KiB after it.
	l := Layout{Partitions: []Partition{
		{Number: 1, Type: 0x0c, Start: sectors(4 * mib), Sectors: sectors(256 * mib)},
		{Number: 2, Type: PartLinux, Start: sectors(260 * mib), Sectors: sectors(2813 * mib)},
	}}
	size := 3*1024*mib + mib + 100<<10
	fixed := []int64{0, 1, 64, 65, 768} // the table; boot's first and last MiB; root's
	for _, k := range []int{0, 16} {
		a, b := Sample(l, int64(size), nil, k), Sample(l, int64(size), nil, k)
		for _, s := range [][]int64{a, b} {
			if len(s) != len(fixed)+k || !slices.IsSorted(s) {
				t.Fatalf("k=%d: sample %v: want %d sorted blocks", k, s, len(fixed)+k)
			}
			for _, f := range fixed {
				if !slices.Contains(s, f) {
					t.Errorf("k=%d: sample %v lacks block %d", k, s, f)
				}
			}
			if last := s[len(s)-1]; last > 768 {
				t.Errorf("k=%d: block %d is past the image", k, last)
			}
		}
		if k > 0 && slices.Equal(a, b) {
			t.Errorf("two samples picked the same %d random blocks of 764: %v", k, a)
		}
	}
	// After a sparse copy, only the blocks written are read, the last of them always.
	written := []usedmap.Range{{Start: 0, End: 8 * mib}, {Start: 64 * mib, End: 72 * mib}, {Start: 400 * mib, End: 404 * mib}}
	for i := 0; i < 20; i++ {
		s := Sample(l, int64(size), written, 16)
		if !slices.Equal(s, []int64{0, 1, 16, 17, 100}) {
			t.Fatalf("sample %v of the written blocks 0, 1, 16, 17, 100", s)
		}
	}
	// An image of fewer blocks than asked for is read whole.
	if s := Sample(Layout{}, 3*BlockSize-1, nil, 16); !slices.Equal(s, []int64{0, 1, 2}) {
		t.Errorf("a 3-block image: sample %v", s)
	}
}

// Registering an image (Examine) keeps its measure, block hashes and used ranges, for that
// version of the file, and KeepFor for a copy of it: the first copy of either to a node is
// then given the used ranges (sent sparse) without measuring the file. A copy without its
// measure kept is given none.
func TestExamineKeepsTheMeasure(t *testing.T) {
	testenv.NeedCommand(t, "xz")
	raw := make([]byte, 3<<20+123)
	rand.Read(raw[1<<20 : 2<<20])
	// One Linux partition, the second MiB.
	raw[450] = 0x83
	binary.LittleEndian.PutUint32(raw[454:], 2048)
	binary.LittleEndian.PutUint32(raw[458:], 2048)
	raw[510], raw[511] = 0x55, 0xaa
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("xz", "-0", "-T1", path).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v %s", err, out)
	}
	path += ".xz"
	info, err := Examine(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	digests.Delete(path) // read the cache file, as pitasks would after env-register
	if d, ok := cachedDigest(path, fileIDOf(t, path, XZ)); !ok || !slices.Equal(d.Blocks, blocksOf(raw)) || !usedmap.Valid(d.Used, int64(len(raw))) {
		t.Fatalf("Examine kept %+v (found %v), want the image's blocks and used ranges", d, ok)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kept, bare := filepath.Join(t.TempDir(), "kept.img.xz"), filepath.Join(t.TempDir(), "bare.img.xz")
	for _, p := range []string{kept, bare} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info.KeepFor(kept)
	for _, c := range []struct {
		path   string
		sparse bool
	}{{path, true}, {kept, true}, {bare, false}} {
		var given []usedmap.Range
		run := nodeRun(XZ, true, filepath.Join(t.TempDir(), "card"))
		sum, err := Send(context.Background(), c.path, XZ, false, info.Sum, func(r io.Reader, used []usedmap.Range) (string, error) {
			given = used
			return run(r, used)
		}, nil)
		if err != nil || sum != info.Sum {
			t.Fatalf("%s: Send = %+v, %v; want %+v", c.path, sum, err, info.Sum)
		}
		if (given != nil) != c.sparse {
			t.Errorf("%s: the first copy was given the used ranges %v; want them given: %v", filepath.Base(c.path), given, c.sparse)
		}
	}
}
