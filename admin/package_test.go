package admin

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/piseduce/piseduce/pkg/testenv"
)

// The packages make package builds for the tests: version 1.0.0 for every architecture and
// 1.0.1 for this machine's, to upgrade to.
var (
	debOnce sync.Once
	debDir  string
	debErr  error
)

var debArchs = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "armhf": elf.EM_ARM}

func debs(t *testing.T) string {
	t.Helper()
	testenv.NeedCommand(t, "go", "make", "dpkg-deb")
	debOnce.Do(func() {
		if debDir, debErr = os.MkdirTemp("", "piseduce-debs"); debErr != nil {
			return
		}
		for _, b := range []struct{ version, archs string }{{"1.0.0", "amd64 arm64 armhf"}, {"1.0.1", "amd64"}} {
			cmd := exec.Command("make", "-C", "..", "package", "VERSION="+b.version, "BUILD_DATE=2030-01-02T03:04:05Z",
				"DIST="+debDir, "DEB_ARCHS="+b.archs)
			if out, err := cmd.CombinedOutput(); err != nil {
				debErr = fmt.Errorf("make package VERSION=%s: %v\n%s", b.version, err, out)
				return
			}
		}
	})
	if debErr != nil {
		t.Fatal(debErr)
	}
	return debDir
}

func deb(dir, version, arch string) string {
	return filepath.Join(dir, fmt.Sprintf("piseduce_%s-1_%s.deb", version, arch))
}

func runOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPackageContents: a package per architecture, its binaries built for it, both units, the
// config a conffile, and no lintian error.
func TestPackageContents(t *testing.T) {
	lintian := testenv.NeedCommand(t, "lintian")
	dir := debs(t)
	for arch, machine := range debArchs {
		p := deb(dir, "1.0.0", arch)
		info := runOut(t, "dpkg-deb", "--info", p)
		for _, want := range []string{"Package: piseduce", "Version: 1.0.0-1", "Architecture: " + arch, "Depends: adduser", " conffiles "} {
			if !strings.Contains(info, want) {
				t.Errorf("%s: dpkg-deb --info lacks %q:\n%s", arch, want, info)
			}
		}
		tree := t.TempDir()
		runOut(t, "dpkg-deb", "--control", p, filepath.Join(tree, "DEBIAN"))
		if b, _ := os.ReadFile(filepath.Join(tree, "DEBIAN/conffiles")); string(b) != "/etc/seducepp.conf\n" {
			t.Errorf("%s: conffiles %q", arch, b)
		}
		runOut(t, "dpkg-deb", "--extract", p, tree)
		for _, b := range []string{"usr/bin/pifrontend", "usr/bin/pitasks", "usr/bin/piseduce"} {
			f, err := elf.Open(filepath.Join(tree, b))
			if err != nil {
				t.Fatalf("%s: %v", arch, err)
			}
			if f.Machine != machine {
				t.Errorf("%s: %s is built for %s", arch, b, f.Machine)
			}
			f.Close()
		}
		for _, f := range []string{"lib/systemd/system/pitasks.service", "lib/systemd/system/pifrontend.service",
			"usr/share/doc/piseduce/copyright", "usr/share/doc/piseduce/changelog.Debian.gz"} {
			if _, err := os.Stat(filepath.Join(tree, f)); err != nil {
				t.Errorf("%s: %v", arch, err)
			}
		}
		conf, _ := os.ReadFile(filepath.Join(tree, "etc/seducepp.conf"))
		if !bytes.Contains(conf, []byte("connection_url = sqlite:///var/lib/piseduce/db/piseduce.db\n")) ||
			!bytes.Contains(conf, []byte("ssh_key = /var/lib/piseduce/id_ed25519\n")) {
			t.Errorf("%s: the packaged config keeps a checkout's paths:\n%s", arch, conf)
		}

		out, err := exec.Command(lintian, "--fail-on", "error", p).CombinedOutput()
		t.Logf("lintian %s:\n%s", filepath.Base(p), out)
		if err != nil || bytes.Contains(out, []byte("\nE: ")) || bytes.HasPrefix(out, []byte("E: ")) {
			t.Errorf("lintian %s: %v", filepath.Base(p), err)
		}
	}
}

// throwawayRoot is a copy-on-write copy of this Debian system (an overlay on /) where dpkg
// installs for real and runs the maintainer scripts, chrooted; nothing reaches this system.
func throwawayRoot(t *testing.T) string {
	t.Helper()
	testenv.NeedRoot(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"upper", "work", "root"} {
		mustMkdir(t, filepath.Join(dir, d))
	}
	opts := fmt.Sprintf("lowerdir=/,upperdir=%s/upper,workdir=%s/work", dir, dir)
	if err := syscall.Mount("overlay", root, "overlay", 0, opts); err != nil {
		testenv.Need(t, false, fmt.Sprintf("an overlay mount on / (%v)", err))
	}
	// The scripts write to /dev/null.
	if err := syscall.Mount("/dev", filepath.Join(root, "dev"), "", syscall.MS_BIND, ""); err != nil {
		syscall.Unmount(root, 0)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(filepath.Join(root, "dev"), syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s/dev: %v", root, err)
		}
		if err := syscall.Unmount(root, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", root, err)
		}
	})
	return root
}

// TestPackageInstallUpgradePurge installs the package into a throwaway Debian root with dpkg
// running in it (its maintainer scripts too), edits the config, upgrades to a newer version (the edit
// survives), then purges it.
func TestPackageInstallUpgradePurge(t *testing.T) {
	testenv.NeedCommand(t, "chroot")
	dir := debs(t)
	root := throwawayRoot(t)
	in := func(args ...string) string {
		t.Helper()
		return runOut(t, "chroot", append([]string{root}, args...)...)
	}
	// dpkg runs in the root (dpkg --root would look the group piseduce up on this system).
	install := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, filepath.Join(root, "var/tmp", filepath.Base(p)), string(b))
		return in("dpkg", "--force-confdef", "--force-confold", "--install", "/var/tmp/"+filepath.Base(p))
	}
	modeOf := func(p string) string {
		t.Helper()
		return strings.TrimSpace(in("stat", "-c", "%a %U:%G", p))
	}
	if out, err := exec.Command("chroot", root, "getent", "passwd", "piseduce").CombinedOutput(); err == nil {
		t.Fatalf("this system already has the user piseduce: %s", out)
	}

	out := install(deb(dir, "1.0.0", "amd64"))
	if !strings.Contains(out, "installed and not started") {
		t.Errorf("no word on what to do next:\n%s", out)
	}
	if v := in("pitasks", "--version"); !strings.HasPrefix(v, "pitasks 1.0.0 (commit ") || !strings.Contains(v, "built 2030-01-02T03:04:05Z") {
		t.Errorf("pitasks --version: %q", v)
	}
	if v := in("pifrontend", "-version"); !strings.HasPrefix(v, "pifrontend 1.0.0 ") {
		t.Errorf("pifrontend -version: %q", v)
	}
	if pw := in("getent", "passwd", "piseduce"); !strings.Contains(pw, ":/var/lib/piseduce:/usr/sbin/nologin") {
		t.Errorf("user piseduce: %q", pw)
	}
	for p, want := range map[string]string{"/etc/seducepp.conf": "640 root:piseduce", "/var/lib/piseduce": "750 root:piseduce",
		"/var/lib/piseduce/db": "2770 root:piseduce", "/var/lib/piseduce/img": "755 root:root", "/usr/bin/pitasks": "755 root:root"} {
		if got := modeOf(p); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	// Nothing is enabled or started.
	for _, u := range []string{"pitasks", "pifrontend"} {
		if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", u+".service")); err == nil {
			t.Errorf("%s is enabled by the package", u)
		}
	}
	if out := in("pifrontend", "-config", "/etc/seducepp.conf", "-check"); !strings.Contains(out, "configuration OK") {
		t.Errorf("the packaged config does not check: %s", out)
	}

	// The admin describes the site; the site's data appears.
	conf := filepath.Join(root, "etc/seducepp.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(b, []byte("\nport = 9000\n"), []byte("\nport = 9123\n"), 1)
	if bytes.Equal(edited, b) {
		t.Fatal("no port = 9000 line in the packaged config")
	}
	if err := os.WriteFile(conf, edited, 0o640); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "var/lib/piseduce/db/piseduce.db"), "the site's database\n")

	out = install(deb(dir, "1.0.1", "amd64"))
	if strings.Contains(out, "not started") {
		t.Errorf("an upgrade speaks as a first install:\n%s", out)
	}
	if v := in("pitasks", "--version"); !strings.HasPrefix(v, "pitasks 1.0.1 ") {
		t.Errorf("after the upgrade: %q", v)
	}
	if got, _ := os.ReadFile(conf); !bytes.Equal(got, edited) {
		t.Errorf("the edited config did not survive the upgrade:\n%s", got)
	}
	if got := modeOf("/etc/seducepp.conf"); got != "640 root:piseduce" {
		t.Errorf("config after the upgrade: %s", got)
	}
	if got := strings.TrimSpace(in("dpkg-query", "-W", "-f=${Version} ${Status}", "piseduce")); got != "1.0.1-1 install ok installed" {
		t.Errorf("dpkg-query: %q", got)
	}

	in("dpkg", "--purge", "piseduce")
	for _, p := range []string{"usr/bin/pitasks", "lib/systemd/system/pitasks.service", "etc/seducepp.conf"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s is left after the purge", p)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/piseduce/db/piseduce.db")); err != nil {
		t.Errorf("the purge removed the site's database: %v", err)
	}
	if out := in("dpkg-statoverride", "--list"); strings.Contains(out, "piseduce") {
		t.Errorf("overrides left after the purge:\n%s", out)
	}
}

// TestPackageScriptsLint: package.sh and the maintainer scripts pass shellcheck and refuse bad
// arguments.
func TestPackageScriptsLint(t *testing.T) {
	shellcheck := testenv.NeedCommand(t, "shellcheck")
	for _, c := range []struct{ file, shell string }{{"deb/package.sh", "bash"}, {"deb/postinst", "sh"}, {"deb/prerm", "sh"}, {"deb/postrm", "sh"}} {
		if out, err := exec.Command(c.shell, "-n", c.file).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", c.shell, c.file, err, out)
		}
		if out, err := exec.Command(shellcheck, "-x", "-S", "style", "-s", c.shell, c.file).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", c.file, err, out)
		}
	}
	if out, code := script(t, nil, "deb/package.sh", "--help"); code != 0 || !strings.HasPrefix(out, "usage: admin/deb/package.sh") {
		t.Errorf("package.sh --help: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"--version", "1.0.0"}, {"--version", "v1.0", "amd64"}, {"--version", "1.0.0", "sparc"}, {"--bogus"}} {
		if out, code := script(t, nil, "deb/package.sh", append(args, "--dist", t.TempDir())...); code != 2 {
			t.Errorf("package.sh %q: exit %d, want 2\n%s", args, code, out)
		}
	}
}
