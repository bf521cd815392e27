package image

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// OS families: how an image's system configures itself at its first boot, hence how a
// deployment must configure it.
const (
	// FamilyPlain does nothing of its own at first boot: the deployment edits /etc.
	FamilyPlain = "plain"
	// FamilyFirstboot is Raspberry Pi OS: cmdline.txt's init= runs a first-boot program that
	// resizes the root and regenerates the SSH host keys; userconf.txt names the user.
	FamilyFirstboot = "raspios-firstboot"
	// FamilyCloudInit is configured by cloud-init from a NoCloud seed on the boot partition.
	FamilyCloudInit = "cloud-init"
)

// Families are the OS families, the default first.
func Families() []string { return []string{FamilyPlain, FamilyFirstboot, FamilyCloudInit} }

// OS is what an image's partitions tell of its system.
type OS struct {
	Family string
	// Name is PRETTY_NAME (or NAME) of the root partition's /etc/os-release, "" if none.
	Name string
	// Why says what decided the family.
	Why string
}

// initPrograms are the init= values that start the system itself, not a first-boot program.
var initPrograms = map[string]bool{"/sbin/init": true, "/lib/systemd/systemd": true, "/usr/lib/systemd/systemd": true}

// ExamineOS is Examine, and in the same pass the image's system: its family and name, read
// from the boot partition (cmdline.txt init=, a NoCloud seed) and the root partition
// (cloud-init installed, /etc/os-release). The raw image goes to a sparse temporary file in
// tmpDir (removed before it returns), read with mtools and debugfs.
func ExamineOS(ctx context.Context, path, tmpDir string) (Info, OS, error) {
	tmp, err := os.CreateTemp(tmpDir, ".examine-*.img")
	if err != nil {
		return Info{}, OS{}, fmt.Errorf("image: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	spill := &sparseWriter{f: tmp}
	info, err := examine(ctx, path, spill)
	if err != nil {
		return Info{}, OS{}, err
	}
	if spill.err != nil {
		return Info{}, OS{}, fmt.Errorf("image: writing %s: %w", tmp.Name(), spill.err)
	}
	if err := tmp.Truncate(spill.off); err != nil {
		return Info{}, OS{}, err
	}
	o, err := detectOS(ctx, tmp.Name(), info.Layout)
	if err != nil {
		return Info{}, OS{}, fmt.Errorf("image: %s: %w", path, err)
	}
	return info, o, nil
}

func detectOS(ctx context.Context, raw string, l Layout) (OS, error) {
	var o OS
	root, ok := l.Root()
	if !ok {
		return o, fmt.Errorf("no Linux (0x83) root partition")
	}
	if rel, err := debugfsCat(ctx, raw, root.Start, "/etc/os-release"); err == nil {
		o.Name = osReleaseName(rel)
	}
	boot, hasBoot := bootPartition(l)
	var bootFiles map[string]bool
	if hasBoot {
		cmdline, err := mtype(ctx, raw, boot.Start, "cmdline.txt")
		if err == nil {
			for _, w := range strings.Fields(cmdline) {
				if v, ok := strings.CutPrefix(w, "init="); ok && !initPrograms[v] {
					o.Family, o.Why = FamilyFirstboot, "cmdline.txt runs init="+v
					return o, nil
				}
			}
		}
		bootFiles = mdir(ctx, raw, boot.Start)
	}
	for _, f := range []string{"user-data", "meta-data"} {
		if bootFiles[f] {
			o.Family, o.Why = FamilyCloudInit, "the boot partition holds a NoCloud seed ("+f+")"
			return o, nil
		}
	}
	for _, f := range []string{"/usr/bin/cloud-init", "/etc/cloud/cloud.cfg"} {
		if _, err := debugfsCat(ctx, raw, root.Start, f); err == nil {
			o.Family, o.Why = FamilyCloudInit, "the root partition has "+f
			return o, nil
		}
	}
	o.Family, o.Why = FamilyPlain, "no first-boot program, no cloud-init"
	return o, nil
}

// bootPartition is the first FAT partition before the root.
func bootPartition(l Layout) (Partition, bool) {
	for _, p := range l.Partitions {
		switch p.Type {
		case 0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e:
			return p, true
		}
	}
	return Partition{}, false
}

func mtoolsCmd(ctx context.Context, tool, raw string, start int64, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, tool, append([]string{"-i", raw + "@@" + strconv.FormatInt(start*SectorSize, 10)}, args...)...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	return cmd
}

func mtype(ctx context.Context, raw string, start int64, name string) (string, error) {
	out, err := mtoolsCmd(ctx, "mtype", raw, start, "::"+name).Output()
	return string(out), err
}

// mdir lists the root folder of a FAT partition, names in lower case.
func mdir(ctx context.Context, raw string, start int64) map[string]bool {
	out, _ := mtoolsCmd(ctx, "mdir", raw, start, "-b", "::").Output()
	names := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if n := strings.TrimSpace(strings.TrimPrefix(l, "::/")); n != "" {
			names[strings.ToLower(n)] = true
		}
	}
	return names
}

// debugfsCat reads a file of the ext2/3/4 file system at sector start of raw (following
// symbolic links is not needed for the files read here).
func debugfsCat(ctx context.Context, raw string, start int64, name string) (string, error) {
	dev := fmt.Sprintf("%s?offset=%d", raw, start*SectorSize)
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "debugfs", "-R", "stat "+name, dev)
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("debugfs: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	if strings.Contains(errb.String(), "File not found") || strings.Contains(errb.String(), "Bad magic") {
		return "", fmt.Errorf("%s: %s", name, strings.TrimSpace(errb.String()))
	}
	out, err := exec.CommandContext(ctx, "debugfs", "-R", "cat "+name, dev).Output()
	return string(out), err
}

// osReleaseName is PRETTY_NAME (else NAME) of an os-release file.
func osReleaseName(text string) string {
	vals := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		} else {
			v = strings.Trim(v, `'"`)
		}
		vals[k] = v
	}
	if vals["PRETTY_NAME"] != "" {
		return vals["PRETTY_NAME"]
	}
	return vals["NAME"]
}

// sparseWriter writes a stream into a file at its offsets, leaving holes for zero blocks.
type sparseWriter struct {
	f   *os.File
	off int64
	err error
}

var zeroBlock [4096]byte

func (w *sparseWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && w.err == nil {
		c := min(len(p), len(zeroBlock))
		if !bytes.Equal(p[:c], zeroBlock[:c]) {
			_, w.err = w.f.WriteAt(p[:c], w.off)
		}
		w.off += int64(c)
		p = p[c:]
	}
	return n, w.err
}
