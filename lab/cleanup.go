package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/piseduce/piseduce/lab/poeswitch"
)

// DownDir tears down the lab in dir, whatever state it is in: a running `pilab run` process is
// asked to stop (SIGTERM) first; then everything recorded in dir, every pilab-* namespace and
// the bridge are removed. Idempotent; works after the lab's process was SIGKILLed.
func DownDir(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if pid := readPid(filepath.Join(dir, "runner.pid")); pid > 0 && pid != os.Getpid() && ours(pid, dir) {
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 300 && alive(pid); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lock, err := acquireLock(ctx)
	if err != nil {
		return err
	}
	defer lock.Close()
	err = cleanup(dir, nil)
	if b, e := os.ReadFile(activeFile); e == nil && strings.TrimSpace(string(b)) == dir {
		os.Remove(activeFile)
	}
	return err
}

// cleanup removes what a lab in dir left behind. The caller holds the lab lock.
func cleanup(dir string, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var errs []string
	nodeDirs, _ := filepath.Glob(filepath.Join(dir, "nodes", "*"))
	for _, nd := range nodeDirs {
		if pid := readPid(filepath.Join(nd, "unshare.pid")); pid > 0 && ours(pid, dir) {
			logf("killing stale node process %d", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		os.Remove(filepath.Join(nd, "unshare.pid"))
	}
	if pid := readPid(filepath.Join(dir, "dnsmasq.pid")); pid > 0 && ours(pid, dir) {
		logf("killing stale dnsmasq %d", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	os.Remove(filepath.Join(dir, "dnsmasq.pid"))
	if _, err := os.Stat(filepath.Join(dir, "switch")); err == nil {
		if err := poeswitch.StopStale(filepath.Join(dir, "switch")); err != nil {
			errs = append(errs, "switch: "+err.Error())
		}
	}
	// Namespaces: every process in a lab namespace is the lab's.
	if out, err := runOut("ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !strings.HasPrefix(f[0], NSPrefix) {
				continue
			}
			ns := f[0]
			for i := 0; i < 50; i++ {
				pids, _ := runOut("ip", "netns", "pids", ns)
				if strings.TrimSpace(pids) == "" {
					break
				}
				for _, p := range strings.Fields(pids) {
					if pid, _ := strconv.Atoi(p); pid > 1 {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := run("ip", "netns", "del", ns); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	// A node veth can outlive its namespace's name while the kernel still holds the namespace:
	// delete the root-side ends by name (lab names only; deleting one end deletes both).
	if links, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, l := range links {
			if strings.HasPrefix(l.Name(), vethPrefix) {
				// It may vanish on its own meanwhile, with its namespace: only one left is an error.
				if err := run("ip", "link", "del", l.Name()); err != nil && linkExists(l.Name()) {
					errs = append(errs, err.Error())
				}
			}
		}
	}
	if _, err := os.Stat("/sys/class/net/" + Bridge); err == nil {
		if err := run("ip", "link", "del", Bridge); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// Loop devices over the lab's card files, and their partition devices.
	loops := map[string]bool{}
	if out, err := runOut("losetup", "-l", "-n", "-O", "NAME,BACK-FILE"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && strings.HasPrefix(f[1], dir+"/") {
				loops[f[0]] = true
			}
		}
	}
	for _, nd := range nodeDirs {
		if b, err := os.ReadFile(filepath.Join(nd, "loop")); err == nil {
			l := strings.TrimSpace(string(b))
			if l != "" && backingUnder(l, dir) {
				loops[l] = true
			}
		}
	}
	for l := range loops {
		if err := releaseLoop(l); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, nd := range nodeDirs {
		os.Remove(filepath.Join(nd, "loop"))
	}
	if err := unmountFakeCards(dir); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab cleanup: %s", strings.Join(errs, "; "))
	}
	return nil
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func backingUnder(loop, dir string) bool {
	b, err := os.ReadFile("/sys/block/" + filepath.Base(loop) + "/loop/backing_file")
	return err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), dir+"/")
}

func releaseLoop(loop string) error {
	base := filepath.Base(loop)
	waitCardReleased(loop, 5*time.Second)
	// The card's speed limit would outlive the lab on this loop device: clear it first.
	if err := setCardThrottle(loop, 0, 0); err != nil {
		return err
	}
	var last error
	for i := 0; i < 30; i++ {
		parts, _ := filepath.Glob("/sys/block/" + base + "/" + base + "p*")
		if len(parts) > 0 {
			last = run("partx", "-d", loop)
		}
		parts, _ = filepath.Glob("/sys/block/" + base + "/" + base + "p*")
		if len(parts) == 0 {
			if _, err := os.Stat("/sys/block/" + base + "/loop"); err != nil {
				return nil
			}
			if last = run("losetup", "-d", loop); last == nil {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("release %s: %v", loop, last)
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// ours reports whether pid is alive and its command line mentions the lab dir.
func ours(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), dir)
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i > 0 && len(s) > i+2 {
		return s[i+2] != 'Z'
	}
	return true
}
