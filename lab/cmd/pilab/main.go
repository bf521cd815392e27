// Command pilab runs the virtual Pi lab.
//
//	pilab up [-n 4] [-dir /var/tmp/pilab] [-model RPI3Bplus|RPI4B|RPI5] [-card-device /dev/nvme0n1] [-boot-delay 500ms] [-link-mbit 0] [-uplink-mbit 0] [-card-mb 512]
//	          [-card-write-mbs 0] [-card-read-mbs 0]
//	pilab run ...            same as up, in the foreground (up starts this in the background)
//	pilab down [-dir DIR]    idempotent; also cleans up after a killed lab
//	pilab status [-dir DIR]
//	pilab cluster-desc [-dir DIR] OUTDIR
//	pilab seducepp [-dir DIR] [-db URL] [-port 9000]   print a seducepp.conf managing the lab
//	pilab image OUTDIR       build the test OS image only
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/piseduce/piseduce/lab"
)

const defaultDir = "/var/tmp/pilab"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	dir := fs.String("dir", defaultDir, "lab directory")
	n := fs.Int("n", 4, "number of nodes")
	model := fs.String("model", lab.ModelPi3, "node model: RPI3Bplus, RPI4B or RPI5")
	cardDev := fs.String("card-device", lab.CardSD, "the nodes' card: "+lab.CardSD+" or, on a Pi 5, "+lab.CardNVMe)
	bootDelay := fs.Duration("boot-delay", 500*time.Millisecond, "boot delay")
	retry := fs.Duration("retry-delay", 2*time.Second, "delay before a failed boot is retried")
	link := fs.Int("link-mbit", 0, "link rate in Mbit/s (0: model default, -1: unlimited)")
	uplink := fs.Int("uplink-mbit", 0, "the pimaster's uplink to the nodes in Mbit/s (0: unlimited)")
	cardMB := fs.Int64("card-mb", 512, "SD card size in MiB")
	cardW := fs.Int("card-write-mbs", 0, "SD card write speed in MB/s (0: model default, -1: unlimited)")
	cardR := fs.Int("card-read-mbs", 0, "SD card read speed in MB/s (0: model default, -1: unlimited)")
	offset := fs.Int("offset", 0, "switch OID offset")
	community := fs.String("community", "private", "switch community")
	db := fs.String("db", "sqlite:///var/tmp/piseduce-demo/piseduce.db", "seducepp: database connection URL")
	port := fs.Int("port", 9000, "seducepp: web port")
	kind := fs.String("kind", lab.ImageTestOS, "image: test-os, or a family image: raspios, cloudinit, busybox")
	fs.Parse(args)
	opts := func() lab.Options {
		o := lab.Options{Dir: *dir, Nodes: *n, Model: *model, BootDelay: *bootDelay, RetryDelay: *retry,
			CardSize: *cardMB << 20, CardWriteMBs: *cardW, CardReadMBs: *cardR, UplinkMbit: *uplink, Offset: *offset, Community: *community, Log: os.Stderr}
		for i := 0; i < *n; i++ {
			o.Specs = append(o.Specs, lab.NodeSpec{LinkMbit: *link, CardDevice: *cardDev})
		}
		return o
	}
	switch cmd {
	case "seducepp":
		d, err := lab.Load(*dir)
		if err != nil {
			fatal(err)
		}
		fmt.Print(d.SeduceppConf(*db, *port))
	case "run":
		os.MkdirAll(*dir, 0o755)
		abs, _ := filepath.Abs(*dir)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		l, err := lab.Up(ctx, opts())
		cancel()
		if err != nil {
			fatal(err)
		}
		os.WriteFile(filepath.Join(abs, "runner.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
		os.WriteFile(filepath.Join(abs, "ready"), []byte("ready\n"), 0o644)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		os.Remove(filepath.Join(abs, "ready"))
		err = l.Down()
		os.Remove(filepath.Join(abs, "runner.pid"))
		if err != nil {
			fatal(err)
		}
	case "up":
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			fatal(err)
		}
		abs, _ := filepath.Abs(*dir)
		os.Remove(filepath.Join(abs, "ready"))
		self, _ := os.Executable()
		logf, err := os.OpenFile(filepath.Join(abs, "pilab.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fatal(err)
		}
		c := exec.Command(self, append([]string{"run", "-dir", abs}, args...)...)
		c.Stdout, c.Stderr = logf, logf
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		for {
			select {
			case err := <-done:
				b, _ := os.ReadFile(filepath.Join(abs, "pilab.log"))
				fatal(fmt.Errorf("lab failed to start (%v):\n%s", err, tail(string(b), 2000)))
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := os.Stat(filepath.Join(abs, "ready")); err == nil {
				status(abs)
				fmt.Printf("lab up (pid %d); log %s; stop with: pilab down -dir %s\n", c.Process.Pid, logf.Name(), abs)
				return
			}
		}
	case "down":
		if err := lab.DownDir(*dir); err != nil {
			fatal(err)
		}
		fmt.Println("lab down")
	case "status":
		status(*dir)
	case "cluster-desc":
		if fs.NArg() != 1 {
			usage()
		}
		d, err := lab.Load(*dir)
		if err != nil {
			fatal(err)
		}
		if err := d.WriteClusterDesc(fs.Arg(0)); err != nil {
			fatal(err)
		}
		fmt.Println("wrote", fs.Arg(0))
	case "image":
		if fs.NArg() != 1 {
			usage()
		}
		build := lab.BuildImage
		if *kind != lab.ImageTestOS {
			build = func(dir string) (*lab.Image, error) { return lab.BuildFamilyImage(dir, *kind) }
		}
		im, err := build(fs.Arg(0))
		if err != nil {
			fatal(err)
		}
		for _, f := range []string{im.Img, im.Gz, im.Zst, im.Xz} {
			if f != "" {
				fmt.Println(f)
			}
		}
		fmt.Printf("family %s, size %d, root partition at sector %d\n", im.Family, im.Size, im.SectorStart)
	default:
		usage()
	}
}

func status(dir string) {
	d, err := lab.Load(dir)
	if err != nil {
		fatal(err)
	}
	up := "down"
	if b, err := os.ReadFile(filepath.Join(d.Dir, "runner.pid")); err == nil {
		if _, err := os.Stat("/proc/" + strings.TrimSpace(string(b))); err == nil {
			up = "up (pid " + strings.TrimSpace(string(b)) + ")"
		}
	}
	fmt.Printf("lab %s: %s\nswitch %s community %s oid %s offset %d\ntftp root %s\nnfs boot files %s\ndhcp hosts %s (dnsmasq pid %d)\npimaster key %s\n",
		d.Dir, up, d.Switch.Addr, d.Switch.Community, d.Switch.OID, d.Switch.Offset, d.TFTPRoot, d.NFSBootDir,
		d.DHCPHostsFile, d.DnsmasqPID, d.PimasterKey)
	fmt.Printf("%-8s %-4s %-12s %-17s %-8s %-9s %s\n", "NODE", "PORT", "IP", "MAC", "SERIAL", "MODEL", "STATE")
	for _, n := range d.Nodes {
		st, _ := os.ReadFile(filepath.Join(n.Dir, "state"))
		fmt.Printf("%-8s %-4d %-12s %-17s %-8s %-9s %s\n", n.Name, n.Port, n.IP, n.MAC, n.Serial, n.Model, strings.TrimSpace(string(st)))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pilab up|run|down|status [-dir DIR] [-n N] ... | pilab cluster-desc [-dir DIR] OUTDIR | pilab image [-kind KIND] OUTDIR")
	os.Exit(2)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "pilab:", err)
	os.Exit(1)
}
