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
)

// Image describes the lab's test OS image.
type Image struct {
	Img         string `json:"img"`
	Gz          string `json:"img_gz"`
	Zst         string `json:"img_zst"`
	Size        int64  `json:"img_size"`
	SectorStart int    `json:"sector_start"` // start of the root partition (p2)
	BootStart   int    `json:"boot_start"`   // start of the boot partition (p1)
	SSHUser     string `json:"ssh_user"`
	Hostname    string `json:"hostname"`
	Password    string `json:"password"`
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

// CardCmdline is the cmdline.txt of the test image (with the first-boot resize init=, as Raspberry Pi OS).
const CardCmdline = "console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext4 fsck.repair=yes rootwait init=/usr/lib/raspi-config/init_resize.sh"

// BuildImage builds the test OS image in dir (test-os.img, .img.gz, .img.zst) without loop
// devices or mounts: sfdisk on the file, mkfs.vfat --offset + mtools, mkfs.ext4 -d -E offset.
func BuildImage(dir string) (*Image, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	img := filepath.Join(dir, "test-os.img")
	im := &Image{Img: img, Gz: img + ".gz", Zst: img + ".zst", Size: ImageSize, SectorStart: ImageRootStart,
		BootStart: ImageBootStart, SSHUser: ImageUser, Hostname: ImageHostname, Password: ImagePassword}
	if fi, err := os.Stat(im.Zst); err == nil && fi.Size() > 0 {
		if _, err := os.Stat(im.Gz); err == nil {
			return im, nil // already built
		}
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	raw := filepath.Join(tmp, "test-os.img")
	f, err := os.Create(raw)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(ImageSize); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	table := fmt.Sprintf("label: dos\nlabel-id: 0x5ed0ce01\nunit: sectors\n\n%d,%d,c\n%d,%d,83\n",
		ImageBootStart, ImageBootSectors, ImageRootStart, ImageRootSectors)
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", raw)
	cmd.Stdin = strings.NewReader(table)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sfdisk: %v: %s", err, out)
	}
	// Boot partition.
	if err := run("mkfs.vfat", "-F", "32", "-n", "BOOT", "-S", "512", "--offset", fmt.Sprint(ImageBootStart),
		raw, fmt.Sprint(ImageBootSectors/2)); err != nil {
		return nil, err
	}
	bootDir := filepath.Join(tmp, "boot")
	if err := WriteBootFiles(bootDir, CardCmdline); err != nil {
		return nil, err
	}
	ents, _ := os.ReadDir(bootDir)
	args := []string{"-i", fmt.Sprintf("%s@@%d", raw, ImageBootStart*512), "-o"}
	for _, e := range ents {
		args = append(args, filepath.Join(bootDir, e.Name()))
	}
	args = append(args, "::")
	if err := runEnv([]string{"MTOOLS_SKIP_CHECK=1"}, "mcopy", args...); err != nil {
		return nil, err
	}
	// Root partition.
	root := filepath.Join(tmp, "root")
	hash, err := runOut("openssl", "passwd", "-6", ImagePassword)
	if err != nil {
		return nil, err
	}
	files := map[string]string{
		"etc/hostname": ImageHostname + "\n",
		"etc/hosts":    "127.0.0.1\tlocalhost\n127.0.1.1\t" + ImageHostname + "\n",
		"etc/os-release": "PRETTY_NAME=\"PiSeduce lab test OS\"\nNAME=\"PiSeduce lab test OS\"\nID=pilab\n" +
			"VERSION_ID=\"1\"\n",
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
			"bin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n" +
			"sshd:x:108:65534::/run/sshd:/usr/sbin/nologin\n" +
			"pi:x:1000:1000:,,,:/home/pi:/bin/bash\n",
		"etc/group": "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:pi\nsudo:x:27:pi\n" +
			"nogroup:x:65534:\npi:x:1000:\n",
		"etc/shadow": "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n" +
			"sys:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n" +
			"pi:" + strings.TrimSpace(hash) + ":19000:0:99999:7:::\n",
		"etc/fstab":        "proc /proc proc defaults 0 0\n/dev/mmcblk0p1 /boot vfat defaults 0 2\n/dev/mmcblk0p2 / ext4 defaults,noatime 0 1\n",
		"etc/ssh/.keep":    "",
		"home/pi/.profile": "# pilab test OS\n",
		"root/.profile":    "# pilab test OS\n",
		"etc/pilab-image":  "pilab test OS image v1\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		mode := os.FileMode(0o644)
		if name == "etc/shadow" {
			mode = 0o640
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			return nil, err
		}
	}
	os.Chmod(filepath.Join(root, "root"), 0o700)
	if err := run("mkfs.ext4", "-F", "-q", "-L", "rootfs", "-d", root, "-E",
		fmt.Sprintf("offset=%d", ImageRootStart*512), raw, fmt.Sprintf("%dk", ImageRootSectors/2)); err != nil {
		return nil, err
	}
	// Ownership without root tricks: set it in the file system with debugfs.
	req := "sif /home/pi uid 1000\nsif /home/pi gid 1000\nsif /home/pi/.profile uid 1000\nsif /home/pi/.profile gid 1000\n" +
		"sif /etc/shadow gid 42\n"
	for _, p := range []string{"/", "/etc", "/etc/ssh", "/home", "/root", "/etc/hostname", "/etc/hosts", "/etc/os-release",
		"/etc/passwd", "/etc/group", "/etc/fstab", "/etc/pilab-image", "/etc/ssh/.keep", "/root/.profile"} {
		req += "sif " + p + " uid 0\nsif " + p + " gid 0\n"
	}
	cmd = exec.Command("debugfs", "-w", "-f", "-", fmt.Sprintf("%s?offset=%d", raw, ImageRootStart*512))
	cmd.Stdin = strings.NewReader(req)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("debugfs: %v: %s", err, out)
	}
	if err := compress(raw, "gzip", ".gz"); err != nil {
		return nil, err
	}
	if err := compress(raw, "zstd", ".zst"); err != nil {
		return nil, err
	}
	for _, ext := range []string{".gz", ".zst", ""} {
		if err := os.Rename(raw+ext, img+ext); err != nil {
			return nil, err
		}
	}
	return im, nil
}

func compress(raw, tool, ext string) error {
	out, err := os.Create(raw + ext)
	if err != nil {
		return err
	}
	defer out.Close()
	var args []string
	if tool == "gzip" {
		args = []string{"-c", "-6", raw}
	} else {
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
