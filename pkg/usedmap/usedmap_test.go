package usedmap_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/testenv"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

// disk is a raw image made by the real tools: an MBR, a FAT partition, an ext partition.
type disk struct {
	path             string
	size             int64
	fat, ext         usedmap.Extent
	fatFiles         map[string][]byte // kept files, by name on the FAT
	extFiles         map[string][]byte // kept files, by path in the ext file system
	fatArgs, extArgs []string
}

func run(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s%s", name, args, err, out, stderr.Bytes())
	}
	return string(out)
}

// makeDisk builds a disk of a FAT partition of fatKiB from byte start and an ext one of
// extKiB, each with files written then some deleted (their blocks free again, their data
// still there).
func makeDisk(t testing.TB, start, fatKiB, extKiB int64, fatArgs, extArgs []string) *disk {
	t.Helper()
	testenv.NeedCommand(t, "sfdisk", "mkfs.vfat", "mkfs.ext4", "debugfs", "mcopy", "mdel")
	dir := t.TempDir()
	d := &disk{path: filepath.Join(dir, "disk.img"), fatArgs: fatArgs, extArgs: extArgs,
		fatFiles: map[string][]byte{}, extFiles: map[string][]byte{}}
	d.fat = usedmap.Extent{Start: start, Size: fatKiB << 10}
	d.ext = usedmap.Extent{Start: d.fat.Start + d.fat.Size, Size: extKiB << 10}
	d.size = d.ext.Start + d.ext.Size + start // a tail after the last partition
	f, err := os.Create(d.path)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(d.size)
	f.Close()
	run(t, fmt.Sprintf("label: dos\nunit: sectors\n\n%d,%d,c\n%d,%d,83\n", d.fat.Start/512, d.fat.Size/512, d.ext.Start/512, d.ext.Size/512),
		"sfdisk", "--no-reread", "--no-tell-kernel", "-q", d.path)
	run(t, "", "mkfs.vfat", append(append([]string{}, fatArgs...), "-S", "512", "--offset", fmt.Sprint(d.fat.Start/512), d.path, fmt.Sprint(fatKiB))...)
	run(t, "", "mkfs.ext4", append(append([]string{"-F", "-q"}, extArgs...), "-E", fmt.Sprintf("offset=%d", d.ext.Start), d.path, fmt.Sprintf("%dk", extKiB))...)

	rng := rand.New(rand.NewSource(int64(fatKiB*7 + extKiB)))
	src := t.TempDir()
	data := func(name string, n int) string {
		b := make([]byte, n)
		rng.Read(b)
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fatImg := fmt.Sprintf("%s@@%d", d.path, d.fat.Start)
	var req strings.Builder
	fmt.Fprintf(&req, "mkdir /dir\n")
	for i := 0; i < 12; i++ {
		n := int(fatKiB) << 10 / 40 * (i%4 + 1) / 4
		name := fmt.Sprintf("F%d.BIN", i)
		run(t, "", "mcopy", "-i", fatImg, data(name, n), "::"+name)
		m := int(extKiB) << 10 / 40 * (i%5 + 1) / 5
		ename := fmt.Sprintf("/dir/e%d", i)
		fmt.Fprintf(&req, "write %s %s\n", data(fmt.Sprintf("e%d", i), m), ename)
		if i%3 != 1 {
			d.fatFiles[name], _ = os.ReadFile(filepath.Join(src, name))
			d.extFiles[ename], _ = os.ReadFile(filepath.Join(src, fmt.Sprintf("e%d", i)))
		}
	}
	for i := 1; i < 12; i += 3 {
		fmt.Fprintf(&req, "rm /dir/e%d\n", i)
		run(t, "", "mdel", "-i", fatImg, fmt.Sprintf("::F%d.BIN", i))
	}
	run(t, req.String(), "debugfs", "-w", "-f", "-", fmt.Sprintf("%s?offset=%d", d.path, d.ext.Start))
	return d
}

// usedOf maps the disk's image, written in pieces of random sizes.
func usedOf(t testing.TB, raw []byte, granule int64, seed int64) []usedmap.Range {
	m := image.NewUsedMapper()
	rng := rand.New(rand.NewSource(seed))
	for p := raw; len(p) > 0; {
		n := min(len(p), 1+rng.Intn(300000))
		m.Write(p[:n])
		p = p[n:]
	}
	return m.Used(granule)
}

// freeIn returns the bytes of part that used leaves out, as ranges relative to part.
func freeIn(used []usedmap.Range, part usedmap.Extent) []usedmap.Range {
	var free []usedmap.Range
	pos := part.Start
	end := part.Start + part.Size
	for _, r := range append(used, usedmap.Range{Start: end, End: end}) {
		if s, e := max(pos, part.Start), min(r.Start, end); s < e {
			free = append(free, usedmap.Range{Start: s - part.Start, End: e - part.Start})
		}
		pos = max(pos, r.End)
	}
	return free
}

const mib = 1 << 20

var freeBlocksLine = regexp.MustCompile(`(?m)^\s+Free blocks: (.*)$`)

// dumpe2fsFree is dumpe2fs's view of the free blocks of the ext file system.
func dumpe2fsFree(t *testing.T, d *disk) (free map[int64]bool, blockSize int64) {
	out := run(t, "", "dumpe2fs", fmt.Sprintf("%s?offset=%d", d.path, d.ext.Start))
	bs := regexp.MustCompile(`(?m)^Block size:\s+(\d+)`).FindStringSubmatch(out)
	if bs == nil {
		t.Fatalf("no block size in dumpe2fs' output:\n%s", out)
	}
	blockSize, _ = strconv.ParseInt(bs[1], 10, 64)
	free = map[int64]bool{}
	for _, m := range freeBlocksLine.FindAllStringSubmatch(out, -1) {
		for _, r := range strings.Split(m[1], ", ") {
			if r == "" {
				continue
			}
			a, b, found := strings.Cut(r, "-")
			lo, _ := strconv.ParseInt(a, 10, 64)
			hi := lo
			if found {
				hi, _ = strconv.ParseInt(b, 10, 64)
			}
			for i := lo; i <= hi; i++ {
				free[i] = true
			}
		}
	}
	return free, blockSize
}

var fatCases = []struct {
	name   string
	kib    int64
	args   []string
	extKiB int64
	ext    []string
}{
	{"fat32 + ext4 defaults, small groups", 40 << 10, []string{"-F", "32"}, 96 << 10, []string{"-g", "4096"}},
	{"fat16 + ext4 1k blocks, no flex_bg", 16 << 10, []string{"-F", "16"}, 48 << 10, []string{"-b", "1024", "-O", "^flex_bg"}},
	{"fat12 + ext4 without checksums or 64bit", 2 << 10, []string{"-F", "12"}, 64 << 10, []string{"-O", "^metadata_csum,^uninit_bg,^64bit,^flex_bg", "-g", "8192"}},
	{"fat16 2k clusters + ext2 2k blocks", 64 << 10, []string{"-F", "16", "-s", "4"}, 32 << 10, []string{"-t", "ext2", "-b", "2048"}},
}

// TestUsedMap checks the map of real disks against the tools: what it leaves out is free by
// dumpe2fs (block by block) and by fsck.fat (cluster count), and it leaves out most of what
// they call free. Then only the used ranges are written onto a "card" full of garbage: fsck
// finds both file systems clean and every kept file reads back whole.
func TestUsedMap(t *testing.T) {
	testenv.NeedCommand(t, "dumpe2fs", "fsck.fat", "e2fsck", "mtype")
	for i, c := range fatCases {
		t.Run(c.name, func(t *testing.T) {
			d := makeDisk(t, 1<<20, c.kib, c.extKiB, c.args, c.ext)
			raw, err := os.ReadFile(d.path)
			if err != nil {
				t.Fatal(err)
			}
			used := usedOf(t, raw, 512, int64(i))
			if !usedmap.Valid(used, d.size) {
				t.Fatalf("invalid map %v", used)
			}
			// ext: block by block, against dumpe2fs.
			dfree, bs := dumpe2fsFree(t, d)
			var mine int64
			for _, r := range freeIn(used, d.ext) {
				if r.Start%bs != 0 || r.End%bs != 0 {
					t.Fatalf("free range %v not on %d-byte blocks", r, bs)
				}
				for b := r.Start / bs; b < r.End/bs; b++ {
					if !dfree[b] {
						t.Fatalf("block %d left out of the map is in use by dumpe2fs", b)
					}
					mine++
				}
			}
			if mine < int64(len(dfree))*9/10 || mine == 0 {
				t.Errorf("the map leaves out %d of the %d free blocks dumpe2fs counts", mine, len(dfree))
			}
			// FAT: its free clusters, by fsck.fat's count.
			mfree := usedmap.Bytes(freeIn(used, d.fat))
			fsFree, clusterSize := fsckFree(t, d)
			if mfree != fsFree*clusterSize {
				t.Errorf("the map leaves out %d bytes of the FAT, fsck.fat counts %d free clusters of %d bytes", mfree, fsFree, clusterSize)
			}
			coarse := usedOf(t, raw, mib, int64(i))
			t.Logf("ext: %d of %d free blocks left out; FAT: %d free clusters; image %d bytes, %d used at 1 MiB",
				mine, len(dfree), fsFree, d.size, usedmap.Bytes(coarse))

			card := make([]byte, len(raw))
			rand.New(rand.NewSource(int64(i))).Read(card)
			for _, r := range coarse {
				copy(card[r.Start:r.End], raw[r.Start:r.End])
			}
			if skipped := int64(len(raw)) - usedmap.Bytes(coarse); skipped < int64(len(raw))/4 {
				t.Fatalf("only %d of %d bytes skipped", skipped, len(raw))
			}
			if err := os.WriteFile(d.path, card, 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, "", "e2fsck", "-fn", partFile(t, d.path, d.ext))
			run(t, "", "fsck.fat", "-n", partFile(t, d.path, d.fat))
			for name, want := range d.extFiles {
				got := run(t, "", "debugfs", "-R", "cat "+name, fmt.Sprintf("%s?offset=%d", d.path, d.ext.Start))
				if got != string(want) {
					t.Errorf("ext file %s: %d bytes back, want %d", name, len(got), len(want))
				}
			}
			for name, want := range d.fatFiles {
				got := run(t, "", "mtype", "-i", fmt.Sprintf("%s@@%d", d.path, d.fat.Start), "::"+name)
				if got != string(want) {
					t.Errorf("FAT file %s: %d bytes back, want %d", name, len(got), len(want))
				}
			}
		})
	}
}

// partFile copies a partition of the image at path out to a file of its own.
func partFile(t testing.TB, path string, part usedmap.Extent) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "part")
	if err := os.WriteFile(p, raw[part.Start:part.Start+part.Size], 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	fsckClusters    = regexp.MustCompile(`(\d+)/(\d+) clusters`)
	fsckClusterSize = regexp.MustCompile(`(\d+) bytes per cluster`)
)

// fsckFree is fsck.fat's count of the FAT's free clusters, and their size.
func fsckFree(t *testing.T, d *disk) (free, clusterSize int64) {
	out := run(t, "", "fsck.fat", "-n", "-v", partFile(t, d.path, d.fat))
	c, s := fsckClusters.FindStringSubmatch(out), fsckClusterSize.FindStringSubmatch(out)
	if c == nil || s == nil {
		t.Fatalf("fsck.fat's output has no cluster count:\n%s", out)
	}
	usedN, _ := strconv.ParseInt(c[1], 10, 64)
	total, _ := strconv.ParseInt(c[2], 10, 64)
	clusterSize, _ = strconv.ParseInt(s[1], 10, 64)
	return total - usedN, clusterSize
}

// FuzzUsed: no input makes the mapper panic or return anything but valid ranges covering the
// partition table. The seed is a small real disk.
func FuzzUsed(f *testing.F) {
	d := makeDisk(f, 4096, 128, 256, []string{"-F", "12"}, []string{"-b", "1024", "-O", "^has_journal"})
	seed, err := os.ReadFile(d.path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, 1000)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, raw []byte, cut int) {
		m := image.NewUsedMapper()
		cut = min(max(cut, 0), len(raw))
		m.Write(raw[:cut])
		m.Write(raw[cut:])
		if used := m.Used(mib); len(raw) > 0 && !usedmap.Valid(used, int64(len(raw))) {
			t.Fatalf("invalid map %v of %d bytes", used, len(raw))
		}
	})
}

// TestUnreadableFileSystemsAreWrittenWhole: an ext file system whose layout the map does not
// read (meta_bg, bigalloc) or whose superblock is damaged counts as used whole, so its copy
// falls back to writing all of it; the FAT beside it is still mapped. The plain ext4 of the
// same size is the control: it leaves blocks out.
func TestUnreadableFileSystemsAreWrittenWhole(t *testing.T) {
	for _, c := range []struct {
		name     string
		ext      []string
		damage   bool // the superblock's blocks-per-group made impossible
		readable bool
	}{
		{"plain ext4 (control)", nil, false, true},
		{"meta_bg", []string{"-O", "meta_bg,^resize_inode"}, false, false},
		{"bigalloc", []string{"-O", "bigalloc", "-C", "16384"}, false, false},
		{"damaged superblock", nil, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := makeDisk(t, 1<<20, 2<<10, 16<<10, []string{"-F", "12"}, c.ext)
			raw, err := os.ReadFile(d.path)
			if err != nil {
				t.Fatal(err)
			}
			if c.damage {
				binary.LittleEndian.PutUint32(raw[d.ext.Start+1024+0x20:], 0)
			}
			used := usedOf(t, raw, 512, 1)
			if !usedmap.Valid(used, d.size) {
				t.Fatalf("invalid map %v", used)
			}
			if free := freeIn(used, d.ext); (len(free) > 0) != c.readable {
				t.Errorf("ext left out %v; want some left out: %v", free, c.readable)
			}
			if len(freeIn(used, d.fat)) == 0 {
				t.Errorf("the FAT beside it left nothing out: %v", used)
			}
		})
	}
}
