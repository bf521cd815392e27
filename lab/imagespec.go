package lab

import (
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"

	"github.com/piseduce/piseduce/pkg/image"
)

// Kinds of lab image.
const (
	ImageTestOS    = "test-os"   // the lab's test image: plain, its first boot does nothing
	ImageRaspiOS   = "raspios"   // Raspberry Pi OS (Bookworm) first boot: init= firstboot, userconf.txt
	ImageCloudInit = "cloudinit" // Ubuntu-like: cloud-init with a NoCloud seed on the boot partition
	ImageBusybox   = "busybox"   // a minimal system: busybox, no bash, no systemd
)

// The stand-ins of the family images' first-boot programs.
//
//go:embed images/*
var imagesFS embed.FS

// imageSpec is what differs between the lab's images.
type imageSpec struct {
	kind, family         string
	cmdline              string
	bootLabel, rootLabel string
	user, password       string // password "": none
	homeUser             string // the account made in the image (uid 1000), "" for none
	xz                   bool   // shipped as .img.xz (else .img.zst)
	bootFiles            map[string]string
	files                map[string]file
	whiteouts            []string // paths the card hides from the host programs seen through it
}

// file is a file, directory or symbolic link of an image's root.
type file struct {
	data []byte
	mode os.FileMode
	dir  bool
	link string
}

func text(s string) file   { return file{data: []byte(s), mode: 0o644} }
func script(s string) file { return file{data: []byte(s), mode: 0o755} }

func embedded(name string) file {
	b, err := imagesFS.ReadFile("images/" + name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return script(string(b))
}

// unit is a systemd unit enabled for multi-user.target: the lab's stand-in for systemd (stage2.sh)
// runs the ExecStart= of the card's own enabled units, those ordered Before=ssh.service first.
func unit(files map[string]file, name, desc, before, exec string) {
	u := "[Unit]\nDescription=" + desc + "\n"
	if before != "" {
		u += "Before=" + before + "\n"
	}
	u += "[Service]\nType=oneshot\nExecStart=" + exec + "\n[Install]\nWantedBy=multi-user.target\n"
	files["usr/lib/systemd/system/"+name] = text(u)
	files["etc/systemd/system/multi-user.target.wants/"+name] = file{link: "/usr/lib/systemd/system/" + name}
}

// rootFiles is the spec's root with the files every image has.
func (s imageSpec) rootFiles() (map[string]file, error) {
	shell := "/bin/bash"
	if s.kind == ImageBusybox {
		shell = "/bin/sh"
	}
	passwd := "root:x:0:0:root:/root:" + shell + "\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
		"bin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nsshd:x:108:65534::/run/sshd:/usr/sbin/nologin\n"
	group := "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:%s\nshadow:x:42:\nsudo:x:27:%s\nnogroup:x:65534:\n"
	shadow := "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n" +
		"sys:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n"
	files := map[string]file{
		"etc/hostname":    text(ImageHostname + "\n"),
		"etc/hosts":       text("127.0.0.1\tlocalhost\n127.0.1.1\t" + ImageHostname + "\n"),
		"etc/ssh/.keep":   text(""),
		"root/.profile":   text("# pilab " + s.kind + "\n"),
		"etc/pilab-image": text("pilab " + s.kind + " image v1\n"),
		"etc/fstab": text("proc /proc proc defaults 0 0\n/dev/mmcblk0p1 /boot vfat defaults 0 2\n" +
			"/dev/mmcblk0p2 / ext4 defaults,noatime 0 1\n"),
	}
	if u := s.homeUser; u != "" {
		hash := "*" // locked
		if s.password != "" {
			h, err := runOut("openssl", "passwd", "-6", s.password)
			if err != nil {
				return nil, err
			}
			hash = strings.TrimSpace(h)
		}
		passwd += u + ":x:1000:1000:,,,:/home/" + u + ":" + shell + "\n"
		group = fmt.Sprintf(group, u, u) + u + ":x:1000:\n"
		shadow += u + ":" + hash + ":19000:0:99999:7:::\n"
		files["home/"+u+"/.profile"] = text("# pilab " + s.kind + "\n")
	} else {
		group = fmt.Sprintf(group, "", "")
	}
	files["etc/passwd"], files["etc/group"] = text(passwd), text(group)
	files["etc/shadow"] = file{data: []byte(shadow), mode: 0o640}
	for k, v := range s.files {
		files[k] = v
	}
	return files, nil
}

func osRelease(pretty, id, version string) file {
	return text(fmt.Sprintf("PRETTY_NAME=%q\nNAME=%q\nID=%s\nVERSION_ID=%q\n", pretty, pretty, id, version))
}

func plainSpec() imageSpec {
	return imageSpec{kind: ImageTestOS, family: image.FamilyPlain, cmdline: CardCmdline, bootLabel: "BOOT", rootLabel: "rootfs",
		user: ImageUser, password: ImagePassword, homeUser: ImageUser,
		files: map[string]file{"etc/os-release": osRelease("PiSeduce lab test OS", "pilab", "1")}}
}

// RaspiOSCmdline is the cmdline.txt of the raspios image, as Raspberry Pi OS ships it.
const RaspiOSCmdline = "console=serial0,115200 console=tty1 root=PARTUUID=" + ImageDiskID + "-02 rootfstype=ext4 " +
	"fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot"

// familySpec is the spec of a family image kind.
func familySpec(kind string) (imageSpec, error) {
	switch kind {
	case ImageRaspiOS:
		return raspiOSSpec(), nil
	case ImageCloudInit:
		return cloudInitSpec(), nil
	case ImageBusybox:
		return busyboxSpec()
	}
	return imageSpec{}, fmt.Errorf("lab: no image kind %q (want %s, %s or %s)", kind, ImageRaspiOS, ImageCloudInit, ImageBusybox)
}

func raspiOSSpec() imageSpec {
	rpi := map[string]file{
		"etc/os-release": osRelease("Raspbian GNU/Linux 12 (bookworm)", "raspbian", "12"),
		"etc/fstab": text("proc /proc proc defaults 0 0\nPARTUUID=" + ImageDiskID + "-01 /boot/firmware vfat defaults 0 2\n" +
			"PARTUUID=" + ImageDiskID + "-02 / ext4 defaults,noatime 0 1\n"),
		"boot/firmware":                                         {dir: true, mode: 0o755},
		"usr/lib/raspberrypi-sys-mods/firstboot":                embedded("firstboot.sh"),
		"usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys": embedded("regenerate_ssh_host_keys.sh"),
		"usr/lib/userconf-pi/userconf-service":                  embedded("userconf-service.sh"),
	}
	unit(rpi, "regenerate_ssh_host_keys.service", "Regenerate SSH host keys", "ssh.service",
		"/usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys")
	unit(rpi, "userconfig.service", "User configuration dialog", "ssh.service", "/usr/lib/userconf-pi/userconf-service")
	return imageSpec{kind: ImageRaspiOS, family: image.FamilyFirstboot, cmdline: RaspiOSCmdline, bootLabel: "bootfs",
		rootLabel: "rootfs", user: ImageUser, homeUser: ImageUser, xz: true, files: rpi}
}

func cloudInitSpec() imageSpec {

	ci := map[string]file{
		"etc/os-release": osRelease("Ubuntu 24.04.1 LTS", "ubuntu", "24.04"),
		"etc/fstab": text("LABEL=writable / ext4 discard,errors=remount-ro 0 1\n" +
			"LABEL=system-boot /boot/firmware vfat defaults 0 1\n"),
		"boot/firmware":      {dir: true, mode: 0o755},
		"usr/bin/cloud-init": embedded("cloud-init.py"),
		"etc/cloud/cloud.cfg": text("# pilab stand-in: the parts of Ubuntu's cloud.cfg it reads\n" +
			"datasource_list: [NoCloud, None]\ndatasource:\n  NoCloud:\n    fs_label: system-boot\n" +
			"preserve_hostname: false\nsystem_info:\n  default_user:\n    name: ubuntu\n    lock_passwd: true\n" +
			"    gecos: Ubuntu\n    groups: [adm, sudo]\n    sudo: [\"ALL=(ALL) NOPASSWD:ALL\"]\n    shell: /bin/bash\n"),
	}
	unit(ci, "cloud-init.service", "Cloud-init: Network Stage", "ssh.service", "/usr/bin/cloud-init init")
	unit(ci, "cloud-final.service", "Cloud-init: Final Stage", "", "/usr/bin/cloud-init modules --mode=final")
	return imageSpec{kind: ImageCloudInit, family: image.FamilyCloudInit, bootLabel: "system-boot", rootLabel: "writable", xz: true,
		cmdline: "console=serial0,115200 dwc_otg.lpm_enable=0 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext4 rootwait fixrtc quiet splash",
		user:    "ubuntu", files: ci,
		bootFiles: map[string]string{
			// As Ubuntu's preinstalled server image ships them.
			"meta-data": "instance-id: cloud-image\n",
			"user-data": "#cloud-config\n# On first boot, set the (default) ubuntu user's password to \"ubuntu\" and\n" +
				"# expire user passwords\nchpasswd:\n  expire: true\n  users:\n  - name: ubuntu\n    password: ubuntu\n" +
				"    type: text\n\nssh_pwauth: true\n",
			"network-config": "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n      optional: true\n",
		}}
}

func busyboxSpec() (imageSpec, error) {
	bb := map[string]file{
		"etc/os-release": osRelease("Busybox lab system", "busybox", "1"),
		"usr/bin":        {dir: true, mode: 0o755},
		"usr/sbin":       {dir: true, mode: 0o755},
	}
	if err := busyboxFiles(bb); err != nil {
		return imageSpec{}, err
	}
	return imageSpec{kind: ImageBusybox, family: image.FamilyPlain, bootLabel: "BOOT", rootLabel: "rootfs", user: "user",
		password: "busybox", homeUser: "user", xz: true, files: bb,
		cmdline: "console=ttyAMA0,115200 root=/dev/mmcblk0p2 rootfstype=ext4 rootwait",
		// The host's programs show through the card's /usr in the lab: hide those a busybox
		// system lacks and a deployment might wrongly count on.
		whiteouts: []string{"/usr/bin/bash", "/usr/bin/getent", "/usr/sbin/chpasswd", "/usr/sbin/usermod",
			"/usr/sbin/useradd", "/usr/bin/sudo", "/usr/bin/python3", "/usr/bin/openssl", "/usr/bin/install"}}, nil
}

// busyboxFiles adds the host's busybox and a link for each of its applets but the power ones,
// which the lab's shims provide.
func busyboxFiles(files map[string]file) error {
	bin, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("lab: busybox image: %w (lab/install-deps.sh installs it)", err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	files["bin/busybox"] = file{data: b, mode: 0o755}
	out, _ := runOut(bin, "--list")
	applets := strings.Fields(out)
	sort.Strings(applets)
	for _, a := range applets {
		switch a {
		case "busybox", "reboot", "poweroff", "halt", "init", "linuxrc":
			continue
		}
		files[path.Join("bin", a)] = file{link: "busybox"}
	}
	return nil
}
