package image

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/piseduce/piseduce/pkg/atomicfile"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

// The measure of an image file (the size and sha256 of the raw image inside, and the sha256 of
// each of its blocks) is costly to take from a compressed file: inflating xz costs the
// pimaster more than sending it. So it is taken once per file and kept, in memory and in a
// cache file beside the image, keyed by the file's identity: device, inode, size, and
// modification and change times to the nanosecond. Replacing or rewriting the file changes
// that identity (the change time cannot be set back), so a changed file is measured again and
// never trusted with an old digest.

// fileID is what identifies one version of an image file.
type fileID struct {
	Format string `json:"format"`
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Size   int64  `json:"size"`
	Mtime  int64  `json:"mtime_ns"`
	Ctime  int64  `json:"ctime_ns"`
}

func idOf(fi fs.FileInfo, format string) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{Format: format, Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: fi.Size(),
		Mtime: fi.ModTime().UnixNano(), Ctime: st.Ctim.Nano()}, true
}

// digest is one cache entry: the measure of the file version ID. Facts about the raw image
// that are worth keeping per version belong here: the hashes of its blocks, and the ranges its
// file systems use (see UsedRanges), which a copy may write alone.
type digest struct {
	ID     fileID          `json:"file"`
	Raw    Sum             `json:"raw"`
	Blocks Blocks          `json:"blocks"`
	Used   []usedmap.Range `json:"used"`
}

// valid tells an entry that is whole: an entry of an older version of this cache, without
// block hashes or used ranges, is measured again.
func (d digest) valid() bool {
	return d.Raw.Size > 0 && len(d.Raw.SHA256) == 64 && d.Blocks.Covers(d.Raw.Size) && usedmap.Valid(d.Used, d.Raw.Size)
}

var digests sync.Map // path → digest

// digestPath is the cache file of the image at path: a dot file, which no image name can be
// (CheckName), so it is never offered as an image.
func digestPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".piseduce-sum")
}

// cachedDigest returns the measure of the image at path if it was taken from this very
// version of the file.
func cachedDigest(path string, id fileID) (digest, bool) {
	if d, ok := digests.Load(path); ok && d.(digest).ID == id {
		return d.(digest), true
	}
	b, err := os.ReadFile(digestPath(path))
	if err != nil {
		return digest{}, false
	}
	var d digest
	if json.Unmarshal(b, &d) != nil || d.ID != id || !d.valid() {
		return digest{}, false
	}
	digests.Store(path, d)
	return d, true
}

// rememberDigest keeps the measure of a file version. The cache file is a convenience: where
// img_dir is read-only, the measure is kept in memory only.
func rememberDigest(path string, d digest) {
	digests.Store(path, d)
	b, _ := json.Marshal(d)
	_ = atomicfile.Write(digestPath(path), b, 0o644)
}

// forgetDigest drops the measure of the image at path: a node received other bytes.
func forgetDigest(path string) {
	digests.Delete(path)
	os.Remove(digestPath(path))
}
