package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/piseduce/piseduce/pkg/names"
)

// MaxRawSize bounds the raw disk image inside an image file: no SD card holds more, and a
// compressed file that inflates further is refused instead of being read for hours.
const MaxRawSize = 256 << 30

var fileNameRE = regexp.MustCompile(`^[\p{L}\p{N}](?:[\p{L}\p{N} ._+-]*[\p{L}\p{N}._+-])?$`)

// CheckName refuses an image file name that is not a plain file name: an environment's image
// is a file of img_dir, named without a folder.
func CheckName(name string) error {
	if names.Check("", name) != nil || len(name) > 255 || !fileNameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%q is not a plain file name inside img_dir (letters, digits, spaces and . _ + -, at most 255 bytes; no folder, no ..)", name)
	}
	return nil
}

// Locate returns the real path of the image file name of folder dir: a regular file inside
// dir, reached through symbolic links only if they stay inside dir. A missing file, a dangling
// link, a link leading out of dir, a device, a FIFO or a folder is an error saying which.
func Locate(dir, name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", fmt.Errorf("image: %w", err)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("image: img_dir: %w", err)
	}
	p := filepath.Join(realDir, name)
	if _, err := os.Lstat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("image: there is no file %s in img_dir %s: %w", name, dir, fs.ErrNotExist)
		}
		return "", fmt.Errorf("image: %w", err)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("image: %s in img_dir %s is a symbolic link to nothing: %w", name, dir, fs.ErrNotExist)
	}
	if rel, err := filepath.Rel(realDir, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("image: %s in img_dir %s is a symbolic link leading out of it, to %s", name, dir, real)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("image: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("image: %s in img_dir %s is %s, not a regular file", name, dir, kind(fi.Mode()))
	}
	return real, nil
}

// Open opens the image file at path for reading: a regular file only. A device or a FIFO
// would never end (or block the open itself, which is why it is opened without waiting).
func Open(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is %s, not a regular file", path, kind(fi.Mode()))
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	return f, fi, nil
}

// kind names the type of a file that is not a regular one.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "a special file"
}
