package lab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Layout of the test OS image, like Raspberry Pi OS: FAT32 boot at sector 8192, ext4 root after it.
const (
	ImageBootStart   = 8192      // sectors
	ImageBootSectors = 40 * 2048 // 40 MiB FAT32
	ImageRootStart   = ImageBootStart + ImageBootSectors
	ImageRootSectors = 32 * 2048 // 32 MiB ext4
	ImageSize        = (ImageRootStart + ImageRootSectors) * 512
	ImageHostname    = "raspberrypi"
	ImageUser        = "pi"
	ImagePassword    = "raspberry"
	ImageDiskID      = "5ed0ce01" // the MBR disk identifier: root=PARTUUID=5ed0ce01-02
)

// Image describes a lab OS image.
type Image struct {
	Kind string `json:"kind"` // test-os (the lab's test image), or a family image's kind
	// Family is the OS family PiSeduce should find in it: plain, raspios-firstboot, cloud-init.
	Family      string `json:"family"`
	Img         string `json:"img"`
	Gz          string `json:"img_gz"`
	Zst         string `json:"img_zst,omitempty"`
	Xz          string `json:"img_xz,omitempty"`
	Size        int64  `json:"img_size"`
	SectorStart int    `json:"sector_start"` // start of the root partition (p2)
	BootStart   int    `json:"boot_start"`   // start of the boot partition (p1)
	SSHUser     string `json:"ssh_user"`
	Hostname    string `json:"hostname"`
	Password    string `json:"password"` // empty: the image's user has no password (locked, or not made yet)
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func runOut(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return string(out), nil
}

func runEnv(env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Placeholder firmware files: the lab's nodes check that they exist, nothing runs them.
var firmwareFiles = []string{"bootcode.bin", "start.elf", "start4.elf", "fixup.dat", "fixup4.dat",
	"kernel.img", "kernel7.img", "kernel7l.img", "kernel8.img", "kernel_2712.img",
	"bcm2710-rpi-3-b-plus.dtb", "bcm2711-rpi-4-b.dtb", "bcm2712-rpi-5-b.dtb"}

// WriteBootFiles writes firmware placeholders, config.txt and the given cmdline.txt into dir.
func WriteBootFiles(dir, cmdline string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range firmwareFiles {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("pilab placeholder "+f+"\n"), 0o644); err != nil {
			return err
		}
	}
	cfg := "# pilab test OS\narm_64bit=1\nenable_uart=1\ndtoverlay=vc4-kms-v3d\n"
	if err := os.WriteFile(filepath.Join(dir, "config.txt"), []byte(cfg), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cmdline.txt"), []byte(cmdline+"\n"), 0o644)
}

// CardCmdline is the cmdline.txt of the test image: a plain system, whose first boot does
// nothing of its own.
const CardCmdline = "console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext4 fsck.repair=yes rootwait"

// BuildImage builds the test OS image in dir (test-os.img, .img.gz, .img.zst) without loop
// devices or mounts: sfdisk on the file, mkfs.vfat --offset + mtools, mkfs.ext4 -d -E offset.
func BuildImage(dir string) (*Image, error) {
	return buildImage(dir, plainSpec())
}

// BuildFamilyImage builds (once) the lab image of an OS family in dir: ImageRaspiOS,
// ImageCloudInit or ImageBusybox, as <kind>.img, .img.gz and .img.xz (the way such images
// are shipped). Their first boot behaves as the real systems' do: see lab/README.md.
func BuildFamilyImage(dir, kind string) (*Image, error) {
	spec, err := familySpec(kind)
	if err != nil {
		return nil, err
	}
	return buildImage(dir, spec)
}

func buildImage(dir string, spec imageSpec) (*Image, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	img := filepath.Join(dir, spec.kind+".img")
	im := &Image{Kind: spec.kind, Family: spec.family, Img: img, Gz: img + ".gz", Size: ImageSize,
		SectorStart: ImageRootStart, BootStart: ImageBootStart, SSHUser: spec.user, Hostname: ImageHostname,
		Password: spec.password}
	exts := []string{".gz"}
	if spec.xz {
		im.Xz = img + ".xz"
		exts = append(exts, ".xz")
	} else {
		im.Zst = img + ".zst"
		exts = append(exts, ".zst")
	}
	if built(img, exts) {
		return im, nil
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	raw := filepath.Join(tmp, filepath.Base(img))
	f, err := os.Create(raw)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(ImageSize); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	table := fmt.Sprintf("label: dos\nlabel-id: 0x%s\nunit: sectors\n\n%d,%d,c\n%d,%d,83\n",
		ImageDiskID, ImageBootStart, ImageBootSectors, ImageRootStart, ImageRootSectors)
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", raw)
	cmd.Stdin = strings.NewReader(table)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sfdisk: %v: %s", err, out)
	}
	if err := buildBoot(raw, tmp, spec); err != nil {
		return nil, err
	}
	if err := buildRoot(raw, tmp, spec); err != nil {
		return nil, err
	}
	for _, ext := range exts {
		if err := compress(raw, ext); err != nil {
			return nil, err
		}
	}
	for _, ext := range append(exts, "") {
		if err := os.Rename(raw+ext, img+ext); err != nil {
			return nil, err
		}
	}
	return im, nil
}

// built reports whether img and its compressed copies are all there.
func built(img string, exts []string) bool {
	for _, ext := range append(exts, "") {
		if fi, err := os.Stat(img + ext); err != nil || fi.Size() == 0 {
			return false
		}
	}
	return true
}

// buildBoot makes the FAT32 boot partition: firmware placeholders, config.txt, the image's
// cmdline.txt and its own boot files.
func buildBoot(raw, tmp string, spec imageSpec) error {
	if err := run("mkfs.vfat", "-F", "32", "-n", spec.bootLabel, "-S", "512", "--offset", fmt.Sprint(ImageBootStart),
		raw, fmt.Sprint(ImageBootSectors/2)); err != nil {
		return err
	}
	bootDir := filepath.Join(tmp, "boot")
	if err := WriteBootFiles(bootDir, spec.cmdline); err != nil {
		return err
	}
	for name, content := range spec.bootFiles {
		if err := os.WriteFile(filepath.Join(bootDir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	ents, _ := os.ReadDir(bootDir)
	args := []string{"-i", fmt.Sprintf("%s@@%d", raw, ImageBootStart*512), "-o"}
	for _, e := range ents {
		args = append(args, filepath.Join(bootDir, e.Name()))
	}
	return runEnv([]string{"MTOOLS_SKIP_CHECK=1"}, "mcopy", append(args, "::")...)
}

// buildRoot makes the ext4 root partition from the spec's files, owned by root (and the
// users their homes) whoever builds it, with the spec's overlay whiteouts.
func buildRoot(raw, tmp string, spec imageSpec) error {
	root := filepath.Join(tmp, "root")
	files, err := spec.rootFiles()
	if err != nil {
		return err
	}
	for name, fl := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if fl.link != "" {
			if err := os.Symlink(fl.link, p); err != nil {
				return err
			}
			continue
		}
		if fl.dir {
			if err := os.MkdirAll(p, fl.mode); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(p, fl.data, fl.mode); err != nil {
			return err
		}
		os.Chmod(p, fl.mode) // whatever the umask
	}
	os.Chmod(filepath.Join(root, "root"), 0o700)
	if err := run("mkfs.ext4", "-F", "-q", "-L", spec.rootLabel, "-d", root, "-E",
		fmt.Sprintf("offset=%d", ImageRootStart*512), raw, fmt.Sprintf("%dk", ImageRootSectors/2)); err != nil {
		return err
	}
	// Ownership without root tricks: set it in the file system with debugfs.
	var req strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != root {
			rel := strings.TrimPrefix(p, root)
			if fi.Mode()&os.ModeSymlink == 0 {
				fmt.Fprintf(&req, "sif %s uid 0\nsif %s gid 0\n", rel, rel)
			}
		}
		return nil
	})
	fmt.Fprintf(&req, "sif / uid 0\nsif / gid 0\nsif /etc/shadow gid 42\n")
	if spec.homeUser != "" {
		home := "/home/" + spec.homeUser
		for _, p := range []string{home, home + "/.profile"} {
			fmt.Fprintf(&req, "sif %s uid 1000\nsif %s gid 1000\n", p, p)
		}
	}
	for _, w := range spec.whiteouts {
		// An overlay whiteout is a 0/0 character device (debugfs makes it in its cwd).
		fmt.Fprintf(&req, "cd %s\nmknod %s c 0 0\ncd /\n", filepath.Dir(w), filepath.Base(w))
	}
	cmd := exec.Command("debugfs", "-w", "-f", "-", fmt.Sprintf("%s?offset=%d", raw, ImageRootStart*512))
	cmd.Stdin = strings.NewReader(req.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("debugfs: %v: %s", err, out)
	}
	return nil
}

func compress(raw, ext string) error {
	out, err := os.Create(raw + ext)
	if err != nil {
		return err
	}
	defer out.Close()
	tool, args := map[string]string{".gz": "gzip", ".zst": "zstd", ".xz": "xz"}[ext], []string{"-c", "-6", raw}
	if ext == ".zst" {
		args = []string{"-q", "-c", "-3", raw}
	}
	cmd := exec.Command(tool, args...)
	cmd.Stdout = out
	var e bytes.Buffer
	cmd.Stderr = &e
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", tool, err, e.String())
	}
	return out.Sync()
}
