package bench

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/bench/deploymodel"
	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

var (
	flagSizes     = flag.String("sizes", "1,5,20", "nodes deployed at once, one round each (one lab of the largest size)")
	flagPayload   = flag.Int("payload-mib", 40, "MiB of data added to the image's root file system: random (incompressible) unless -compressible")
	flagFreshRoot = flag.Bool("fresh-root", false, "a root grown by -root-mib or the payload is made afresh at its size, as a real "+
		"system's is (mkfs.ext4: 4 KiB blocks, an inode per 16 KiB), instead of resized from the lab image's 32 MiB one "+
		"(1 KiB blocks, an inode per 4 KiB: inode tables are 6 % of it)")
	flagCompressible = flag.Bool("compressible", false, "the payload is words of a fixed random vocabulary instead: xz -0 packs it "+
		"about 2.9:1 (xz -6 3.4:1), as it does a system's binaries and text")
	flagRoot   = flag.Int64("root-mib", 0, "size of the image's root partition in MiB, the rest empty (0: what the payload needs)")
	flagExtra  = flag.Int64("extra-mib", 100, "MiB added to the image's root partition by the deployment")
	flagLink   = flag.Int("link-mbit", 0, "node link rate in Mbit/s (0: the model's default, Pi 3B+ = 80 = 10 MB/s; <0: unlimited)")
	flagUplink = flag.Int("uplink-mbit", 0, "the pimaster's uplink to the nodes in Mbit/s (0: unlimited)")
	flagModel  = flag.String("model", lab.ModelPi3, "node model: "+lab.ModelPi3+" or "+lab.ModelPi4)
	flagFormat = flag.String("format", "raw", "how the environment's image is stored and streamed: raw (the same bytes as the baseline), "+
		"gz (inflated on the node, as the lab's test environment), gz-pimaster (inflated by pitasks), xz (inflated on the node, as Raspberry Pi OS ships)")
	flagSSHLost  = flag.Duration("ssh-lost", 0, "how long pitasks waits for a node's SSH before it is lost (0: the lab tests' 60s)")
	flagCardW    = flag.Int("card-write-mbs", 0, "nodes' SD card write speed in MB/s (0: the model's default; <0: unlimited)")
	flagCardR    = flag.Int("card-read-mbs", 0, "nodes' SD card read speed in MB/s (0: the model's default; <0: unlimited)")
	flagReport   = flag.String("report", "", "also write the report (markdown) to this file")
	flagReadBack = flag.Bool("readback", false, "the baseline also reads the whole image back from the card (`dd iflag=direct | sha256sum`, "+
		"the old env_check), timed: the reference of the card goal (issue 14 item 2)")
	flagMeasured = flag.Bool("measured", false, "measure and map the image before the rounds (image.BlockSums, as a registration "+
		"would), so that the first copy writes only the ranges its file systems use")
	flagWorkers = flag.Int("workers", 0, "pitasks [tasks] workers (0: pitasks' default, 64)")
	flagBooting = flag.Int("max-booting", 0, "pitasks [tasks] max_booting (0: pitasks' default, 8)")
	flagCopying = flag.Int("max-copying", 0, "pitasks [tasks] max_copying (0: pitasks' default, 48)")
	flagCipher  = flag.String("baseline-cipher", "", "ssh -c CIPHER for the baseline (default: OpenSSH's own choice, chacha20-poly1305)")
	flagTick    = flag.Duration("tick", 0, "time between two engine ticks (0: the lab harness's 250ms; pitasks' default is 2s)")
	flagPoll    = flag.Duration("poll", 0, "how soon a state not done is looked at again (0: the lab harness's 300ms; pitasks' default is 1s)")
	flagBoots   = flag.String("boot-events", "on", "wake the SSH waits from dnsmasq's log as pitasks does: on, off, or both (each size twice, off then on)")
)

// initScript is the user's init script of every benchmark deployment.
const initScript = "#!/bin/bash\nset -e\necho \"hello from $(hostname)\" | tee /home/pi/hello.txt\ndf -h / | tail -1\n"

// BenchmarkDeployLab brings up one lab, builds the benchmark image, then for each size N: the
// baseline (N nodes booted into the NFS system, the image piped at once into
// `ssh root@node 'dd of=/dev/mmcblk0 bs=4M conv=fsync'`), then pitasks (N deployments at once,
// from the request to `deployed`), then destroy. Run it once: -benchtime 1x.
func BenchmarkDeployLab(b *testing.B) {
	var sizes []int
	for _, s := range strings.Split(*flagSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			b.Fatalf("-sizes: bad size %q", s)
		}
		sizes = append(sizes, n)
	}
	maxN := slices.Max(sizes)
	specs := make([]lab.NodeSpec, maxN)
	for i := range specs {
		specs[i] = lab.NodeSpec{Model: *flagModel, LinkMbit: *flagLink, CardWriteMBs: *flagCardW, CardReadMBs: *flagCardR}
	}
	rootMiB := max(*flagRoot, lab.ImageRootSectors/2048)
	if *flagPayload > 0 {
		rootMiB = max(rootMiB, int64(lab.ImageRootSectors/2048+*flagPayload+8)) // the payload and 8 MiB of room
	}
	// The card holds the image, its root partition grown by the deployment, and some room.
	cardSize := max(512<<20, (int64(lab.ImageRootStart)/2048+rootMiB+*flagExtra+64)<<20)
	// The image is made before the lab is up: the lab lock (one lab per machine) is held
	// while measuring only.
	t0 := time.Now()
	work, err := os.MkdirTemp("/var/tmp", "piseduce-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(work)
	base, err := lab.BuildImage(filepath.Join(work, "base"))
	if err != nil {
		b.Fatal(err)
	}
	im := buildImage(b, base.Img, work, *flagPayload, rootMiB)
	env := store.Environment{Name: "bench", Type: store.EnvDefault, ImageSize: im.size, ImageSHA256: im.sha256,
		SectorStart: lab.ImageRootStart, SSHUser: lab.ImageUser, Shell: "bash"}
	switch *flagFormat {
	case "raw":
		env.ImageName, env.ImageFormat = filepath.Base(im.raw), image.Raw
	case "gz", "gz-pimaster":
		compressImage(b, im.raw, ".gz", "gzip", "-c", "-6", im.raw)
		env.ImageName, env.ImageFormat, env.DecompressOn = filepath.Base(im.raw)+".gz", image.Gzip, "node"
		if *flagFormat == "gz-pimaster" {
			env.DecompressOn = "pimaster"
		}
	case "xz":
		compressImage(b, im.raw, ".xz", "xz", "-c", "-T2", "-0", im.raw)
		env.ImageName, env.ImageFormat, env.DecompressOn = filepath.Base(im.raw)+".xz", image.XZ, "node"
	default:
		b.Fatalf("-format: %q", *flagFormat)
	}
	b.Logf("image %s: %.1f MiB raw (%d MiB %s), root partition %d MiB; %s made in %s", filepath.Base(im.raw),
		float64(im.size)/(1<<20), *flagPayload, payloadKind(), im.rootMiB, env.ImageName, time.Since(t0).Round(100*time.Millisecond))

	start := time.Now()
	// A step may take as long as a copy at 2 MB/s: the default (2 min) is for the small image.
	cfg := deploytest.Config{Workers: *flagWorkers, MaxBooting: *flagBooting, MaxCopying: *flagCopying,
		StepDeadline: max(2*time.Minute, time.Duration(cardSize/2e6)*time.Second), SSHLost: *flagSSHLost,
		Tick: *flagTick, PollInterval: *flagPoll}
	var boots []bool
	switch *flagBoots {
	case "on":
		boots = []bool{true}
	case "off":
		boots = []bool{false}
	case "both":
		boots = []bool{false, true}
	default:
		b.Fatalf("-boot-events: %q", *flagBoots)
	}
	h := deploytest.StartWith(b, lab.Options{Nodes: maxN, Specs: specs, CardSize: cardSize, UplinkMbit: *flagUplink}, cfg)
	labUp := time.Since(start)
	b.Logf("lab of %d nodes up in %s", maxN, labUp.Round(100*time.Millisecond))
	// Into the lab's image folder (pitasks' img_dir): the same file system, a rename.
	imgDir := filepath.Dir(h.Lab.Desc.Image.Img)
	// A raw environment's image is the raw file itself: moved once.
	for _, f := range slices.Compact([]string{filepath.Base(im.raw), env.ImageName}) {
		if err := os.Rename(filepath.Join(work, f), filepath.Join(imgDir, f)); err != nil && !os.IsExist(err) {
			b.Fatal(err)
		}
	}
	im.raw = filepath.Join(imgDir, filepath.Base(im.raw))
	if err := storetest.DB(h.Store).Create(&env).Error; err != nil {
		b.Fatal(err)
	}
	wirePath := filepath.Join(imgDir, env.ImageName)
	if *flagMeasured { // after the rename: a file's measure is kept per version, its change time included
		t := time.Now()
		if _, err := image.BlockSums(context.Background(), wirePath, env.ImageFormat, image.Sum{Size: im.size, SHA256: im.sha256}); err != nil {
			b.Fatal(err)
		}
		b.Logf("image measured and mapped in %s", time.Since(t).Round(100*time.Millisecond))
	}
	wire, err := os.Stat(wirePath)
	if err != nil {
		b.Fatal(err)
	}
	// The baseline sends what pitasks sends: the compressed file when the node inflates it.
	baseImg, baseInflate := im.raw, ""
	if env.DecompressOn == "node" {
		baseImg, baseInflate = wirePath, strings.Join(image.NodeInflater(env.ImageFormat), " ")+" | "
	}

	rep := &report{labUp: labUp, im: im, format: *flagFormat, wireBytes: wire.Size(), extraMiB: *flagExtra,
		link: h.Lab.Desc.Nodes[0].LinkMbit, uplink: h.Lab.Desc.UplinkMbit, cardW: h.Lab.Desc.Nodes[0].CardWriteMBs, cardR: h.Lab.Desc.Nodes[0].CardReadMBs,
		baseSends: filepath.Base(baseImg), model: *flagModel, cipher: *flagCipher, cfg: cfg}
	b.ResetTimer()
	for _, n := range sizes {
		nodes := h.Nodes[:n]
		base := baseline(b, h, nodes, baseImg, baseInflate, im)
		for _, on := range boots {
			r := round{n: n, base: base, bootEvents: on}
			stopBoots := func() {}
			if on {
				stopBoots = h.FollowBoots()
			}
			stopWatch := watchMemory()
			r.deploy = deployRound(b, h, nodes, &env, im.rootMiB+*flagExtra)
			r.mem = stopWatch()
			stopBoots()
			rep.rounds = append(rep.rounds, r)
			s := r.summary(im.size)
			tag := fmt.Sprintf("n%d", n)
			if len(boots) > 1 && !on {
				tag += "-noboots"
			}
			b.ReportMetric(s.total.Seconds(), "s-total-"+tag)
			b.ReportMetric(s.copyRatio, "copy-ratio-"+tag)
			b.ReportMetric(s.hwRatio, "hw-ratio-"+tag)
			b.ReportMetric(s.aggRatio, "agg-throughput-ratio-"+tag)
			b.ReportMetric(s.gap.Seconds()*1000, "ms-median-interstate-"+tag)
			b.Logf("%d nodes, boot events %v: deployed in %s (baseline copy %s, pitasks env_copy %s); Go heap %.1f -> peak %.1f MiB, VmRSS %.1f -> peak %.1f MiB",
				n, on, s.total.Round(100*time.Millisecond), s.baseCopy.Round(100*time.Millisecond), s.pitasksCopy.Round(100*time.Millisecond),
				float64(r.mem.heapBefore)/(1<<20), float64(r.mem.heapPeak)/(1<<20), float64(r.mem.rssBefore)/(1<<20), float64(r.mem.rssPeak)/(1<<20))
		}
	}
	b.StopTimer()
	out := rep.markdown()
	fmt.Print("\n" + out)
	if *flagReport != "" {
		if err := os.WriteFile(*flagReport, []byte(out), 0o644); err != nil {
			b.Error(err)
		}
	}
}

// --- the image ---

type benchImage struct {
	raw     string
	size    int64
	sha256  string
	rootMiB int64 // the image's root partition
}

// buildImage makes dir/bench-os.img from the lab's test image srcImg: its ext4 root partition
// grown to rootMiB, with a file of payload MiB (random, or -compressible) in /opt. No loop
// devices, no mounts: the partition is cut out, grown with resize2fs (or made afresh with its
// files, -fresh-root), filled with debugfs, and put back behind a partition table that says
// its new size.
func buildImage(b *testing.B, srcImg, dir string, payloadMiB int, rootMiB int64) benchImage {
	b.Helper()
	tmp, err := os.MkdirTemp(dir, "bench-build-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	src, err := os.Open(srcImg)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	rootStart := int64(lab.ImageRootStart) * 512
	root := filepath.Join(tmp, "root.ext4")
	copyRange(b, root, src, rootStart, int64(lab.ImageRootSectors)*512)
	switch {
	case rootMiB > lab.ImageRootSectors/2048 && *flagFreshRoot:
		// The lab image's files, owners and modes into a file system made at full size.
		tree := filepath.Join(tmp, "tree")
		if err := os.Mkdir(tree, 0o755); err != nil {
			b.Fatal(err)
		}
		mustRun(b, nil, "debugfs", "-R", "rdump / "+tree, root)
		label := strings.TrimSpace(string(mustRun(b, nil, "e2label", root)))
		mustRun(b, nil, "mkfs.ext4", "-F", "-q", "-L", label, "-d", tree, root, fmt.Sprintf("%dM", rootMiB))
	case rootMiB > lab.ImageRootSectors/2048:
		if out, err := exec.Command("e2fsck", "-f", "-y", root).CombinedOutput(); err != nil {
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
				b.Fatalf("e2fsck: %v: %s", err, out)
			}
		}
		mustRun(b, nil, "resize2fs", root, fmt.Sprintf("%dM", rootMiB))
	default:
		rootMiB = lab.ImageRootSectors / 2048
	}
	if payloadMiB > 0 {
		payload := filepath.Join(tmp, "payload.bin")
		f, err := os.Create(payload)
		if err != nil {
			b.Fatal(err)
		}
		var data io.Reader = rand.NewChaCha8([32]byte{'p', 'i', 's', 'e', 'd', 'u', 'c', 'e'}) // reproducible, incompressible
		if *flagCompressible {
			data = newWords(rand.NewChaCha8([32]byte{'w', 'o', 'r', 'd', 's'}), 1024)
		}
		if _, err := io.CopyN(f, data, int64(payloadMiB)<<20); err != nil {
			b.Fatal(err)
		}
		f.Close()
		mustRun(b, strings.NewReader("mkdir /opt\ncd /opt\nwrite "+payload+" payload.bin\n"), "debugfs", "-w", "-f", "-", root)
	}
	raw := filepath.Join(dir, "bench-os.img")
	copyRange(b, raw, src, 0, rootStart)
	out, err := os.OpenFile(raw, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		b.Fatal(err)
	}
	rf, err := os.Open(root)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, rf); err != nil {
		b.Fatal(err)
	}
	rf.Close()
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	mustRun(b, strings.NewReader(fmt.Sprintf("%d,%d\n", lab.ImageRootStart, rootMiB*2048)),
		"sfdisk", "--no-reread", "--no-tell-kernel", "-q", "-N", "2", raw)
	f, err := os.Open(raw)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sum := sha256.New()
	n, err := io.Copy(sum, f)
	if err != nil {
		b.Fatal(err)
	}
	return benchImage{raw: raw, size: n, sha256: hex.EncodeToString(sum.Sum(nil)), rootMiB: rootMiB}
}

func payloadKind() string {
	if *flagCompressible {
		return "compressible"
	}
	return "random"
}

func freshRoot() string {
	if *flagFreshRoot {
		return " (made afresh: 4 KiB blocks)"
	}
	return ""
}

// words is a reproducible, compressible stream: words of 2–11 random bytes drawn at random from a
// vocabulary of n. Random bytes within a word keep it from packing like text does; 1024 words
// give about 3:1, near the used part of a real system image.
type words struct {
	rnd   *rand.Rand
	vocab [][]byte
	rest  []byte // what is left of the current word
}

func newWords(src rand.Source, n int) *words {
	w := &words{rnd: rand.New(src)}
	for range n {
		word := make([]byte, 2+w.rnd.IntN(10))
		for i := range word {
			word[i] = byte(w.rnd.Uint32())
		}
		w.vocab = append(w.vocab, word)
	}
	return w
}

func (w *words) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(w.rest) == 0 {
			w.rest = w.vocab[w.rnd.IntN(len(w.vocab))]
		}
		c := copy(p[n:], w.rest)
		w.rest, n = w.rest[c:], n+c
	}
	return n, nil
}

func copyRange(b *testing.B, dst string, src *os.File, off, n int64) {
	b.Helper()
	f, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, io.NewSectionReader(src, off, n)); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// compressImage writes raw+ext with the output of the compressor name args.
func compressImage(b *testing.B, raw, ext, name string, args ...string) {
	b.Helper()
	out, err := os.Create(raw + ext)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v: %s", name, err, stderr.String())
	}
}

// mustRun runs name and returns its output (stdout).
func mustRun(b *testing.B, stdin io.Reader, name string, args ...string) []byte {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s %s: %v: %s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// --- the baseline ---

type baseNode struct {
	name       string
	start, end time.Time     // the copy
	boot       time.Duration // power on → the NFS system answers SSH
	copy       time.Duration // ssh … dd < image, to its exit
	readBack   time.Duration // the whole image read back from the card and hashed (-readback)
}

var ddBytes = regexp.MustCompile(`(?m)^(\d+) bytes`)

// baseline boots the nodes into the NFS system as pitasks does (TFTP folder, power on through
// the switch), waits until each answers SSH, then pipes the image into
// `ssh root@node 'dd of=/dev/mmcblk0 bs=4M conv=fsync'` on every node at once, with the
// OpenSSH client, the pimaster key and the lab's known_hosts; with -readback each then reads
// the whole image back and checks its sha256. The nodes are off afterwards.
func baseline(b *testing.B, h *deploytest.Harness, nodes []store.Node, img, inflate string, im benchImage) []baseNode {
	b.Helper()
	rawSize := im.size
	desc := h.Lab.Desc
	sw := h.Lab.Switch()
	sshArgs := func(n store.Node, cmd string) []string {
		var c []string
		if *flagCipher != "" {
			c = []string{"-c", *flagCipher}
		}
		return append(c, "-F", "/dev/null", "-i", desc.PimasterKey, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+desc.KnownHosts,
			"-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR", "root@"+n.IP, cmd)
	}
	res := make([]baseNode, len(nodes))
	for i, n := range nodes {
		res[i].name = n.Name
		if err := h.TFTP.BootNFS(n.Serial); err != nil {
			b.Fatal(err)
		}
	}
	powerOff(b, h, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute+time.Duration(rawSize/2e6)*time.Second) // ≥ 2 MB/s
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	ready := make(chan struct{})
	var readyWG sync.WaitGroup
	readyWG.Add(len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			on := time.Now()
			if err := sw.SetPort(n.Port, true); err != nil {
				errs[i] = err
				readyWG.Done()
				return
			}
			for {
				out, err := exec.CommandContext(ctx, "ssh", sshArgs(n, "cat /etc/hostname")...).Output()
				if err == nil && strings.TrimSpace(string(out)) == "nfspi" {
					break
				}
				if ctx.Err() != nil {
					errs[i] = fmt.Errorf("%s: the NFS system never answered SSH: %v", n.Name, err)
					readyWG.Done()
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			res[i].boot = time.Since(on)
			readyWG.Done()
			<-ready // every node's copy starts at once
			f, err := os.Open(img)
			if err != nil {
				errs[i] = err
				return
			}
			defer f.Close()
			cmd := exec.CommandContext(ctx, "ssh", sshArgs(n, inflate+"dd of=/dev/mmcblk0 bs=4M iflag=fullblock conv=fsync")...)
			cmd.Stdin = f
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			t0 := time.Now()
			err = cmd.Run()
			res[i].copy = time.Since(t0)
			res[i].start, res[i].end = t0, time.Now()
			m := ddBytes.FindStringSubmatch(stderr.String())
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("%s: ssh dd: %v: %s", n.Name, err, stderr.String())
				return
			case m == nil || m[1] != strconv.FormatInt(rawSize, 10):
				errs[i] = fmt.Errorf("%s: dd did not write the whole image: %s", n.Name, stderr.String())
				return
			}
			if *flagReadBack {
				// Direct I/O: the page cache, which the copy just filled, would prove nothing.
				read := fmt.Sprintf("dd if=/dev/mmcblk0 bs=4M count=%d iflag=direct,count_bytes status=none | sha256sum", rawSize)
				t0 := time.Now()
				out, err := exec.CommandContext(ctx, "ssh", sshArgs(n, read)...).Output()
				res[i].readBack = time.Since(t0)
				if got, _, _ := strings.Cut(string(out), " "); err != nil || got != im.sha256 {
					errs[i] = fmt.Errorf("%s: reading the card back: %v, sha256 %q, want %s", n.Name, err, got, im.sha256)
					return
				}
			}
			// Not timed: wipe the partition table again. A Pi 3B+ whose card holds a
			// bootcode.bin boots the card, not the network (pitasks deletes it from the cards
			// it deploys; this plain copy did not).
			wipe := "dd if=/dev/zero of=/dev/mmcblk0 bs=512 count=1 conv=fsync status=none"
			if out, err := exec.CommandContext(ctx, "ssh", sshArgs(n, wipe)...).CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("%s: wiping the partition table: %v: %s", n.Name, err, out)
			}
		}()
	}
	readyWG.Wait()
	close(ready)
	wg.Wait()
	powerOff(b, h, nodes)
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return res
}

// powerOff turns the nodes' ports off and waits until the lab saw it: every node is off.
func powerOff(b *testing.B, h *deploytest.Harness, nodes []store.Node) {
	b.Helper()
	for _, n := range nodes {
		if err := h.Lab.Switch().SetPort(n.Port, false); err != nil {
			b.Fatal(err)
		}
	}
	for _, n := range nodes {
		state := filepath.Join(h.Lab.Desc.Node(n.Name).Dir, "state")
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if st, _ := os.ReadFile(state); strings.TrimSpace(string(st)) == "off" {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s is not off 30s after its port was", n.Name)
			}
		}
	}
}

// --- pitasks ---

type deployNode struct {
	name     string
	total    time.Duration            // request → deployed
	states   map[string]time.Duration // per state, first start → last end
	first    map[string]time.Time
	last     map[string]time.Time
	order    []string
	bytes    int64
	written  int64 // bytes env_copy wrote onto the card (its used ranges, or the whole image)
	attempts int   // events that were not "done" (retries, reboots)
	// gaps: from the end of the step call that finished a state to the start of the next
	// state's first call (the engine's overhead between states).
	gaps []time.Duration
	// lag: for ssh_nfs and ssh_system, from the node up (the lab's events log) to the state's end.
	lag map[string]time.Duration
}

// deployRound asks for a deployment of every node at once (one reservation), ticks the engine
// until all are deployed, reads the times from the state events, then destroys them.
func deployRound(b *testing.B, h *deploytest.Harness, nodes []store.Node, env *store.Environment, sizeMiB int64) []deployNode {
	b.Helper()
	t0 := time.Now()
	ds := h.Deploy(nodes, deploytest.Request{Env: env, SizeMiB: sizeMiB, Password: "bench password", Key: h.UserKey, Script: initScript})
	h.RunUntil(ds, 8*time.Minute+time.Duration(sizeMiB/2)*time.Second, "deployed") // + 2 MiB/s
	res := make([]deployNode, len(ds))
	for i, d := range ds {
		got := h.Load(d.ID)
		if !strings.Contains(got.ScriptOutput, "hello from "+got.Node.Name) {
			b.Errorf("%s: init script output %q", got.Node.Name, got.ScriptOutput)
		}
		r := deployNode{name: got.Node.Name, states: map[string]time.Duration{}, bytes: got.BytesTotal}
		var data process.DeployData
		if err := json.Unmarshal([]byte(got.StepData), &data); err != nil {
			b.Fatalf("%s: step data %q: %v", got.Node.Name, got.StepData, err)
		}
		r.written = data.Size
		if data.Written != nil {
			r.written = usedmap.Bytes(data.Written)
		}
		first, last := map[string]time.Time{}, map[string]time.Time{}
		var end time.Time
		for _, ev := range h.Events(d.ID) {
			if ev.Process != process.Deploy {
				continue
			}
			state := string(ev.State)
			if _, ok := first[state]; !ok {
				first[state] = ev.StartedAt
				r.order = append(r.order, state)
			}
			last[state] = ev.EndedAt
			if ev.EndedAt.After(end) {
				end = ev.EndedAt
			}
			if ev.Outcome != store.OutcomeDone {
				r.attempts++
			}
		}
		for s, f := range first {
			r.states[s] = last[s].Sub(f)
		}
		r.total = end.Sub(t0)
		r.first, r.last = first, last
		r.gaps = stateGaps(h.Calls(d.ID))
		r.lag = map[string]time.Duration{}
		if boots, err := h.Lab.Desc.Node(got.Node.Name).Boots(); err == nil {
			for st, mode := range map[string]string{"ssh_nfs": "nfs", "ssh_system": "card"} {
				var up time.Time
				for _, bt := range boots {
					if bt.Mode == mode && !bt.At.Before(first[st].Add(-time.Second)) && bt.At.Before(last[st]) {
						up = bt.At
					}
				}
				if !up.IsZero() {
					r.lag[st] = last[st].Sub(up)
				}
			}
		}
		res[i] = r
	}
	for _, d := range ds {
		if err := h.Store.RequestProcess(context.Background(), d.ID, process.Destroy); err != nil {
			b.Fatal(err)
		}
	}
	h.RunUntil(ds, 2*time.Minute, "destroyed")
	powerOff(b, h, nodes)
	return res
}

// stateGaps returns, for each state that followed another, the time from the end of the call
// that finished the previous state (its Post said done) to the start of its own first call.
func stateGaps(calls []deploytest.Call) []time.Duration {
	slices.SortFunc(calls, func(a, b deploytest.Call) int { return a.Start.Compare(b.Start) })
	var out []time.Duration
	var doneAt time.Time
	var doneState process.StateName
	for _, c := range calls {
		if !doneAt.IsZero() && c.State != doneState {
			out = append(out, c.Start.Sub(doneAt))
			doneAt = time.Time{}
		}
		if c.Post && c.Done {
			doneAt, doneState = c.End, c.State
		}
	}
	return out
}

// quantile returns the q-quantile of ds (0.5: the median), 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*q+0.5)]
}

// --- the report ---

type round struct {
	n          int
	bootEvents bool
	base       []baseNode
	deploy     []deployNode
	mem        memPeak
}

// memPeak is this process's memory over a pitasks round: the engine's, as the harness beside it
// only asks the database (the baseline's copies are ssh processes of their own).
type memPeak struct {
	heapBefore, heapPeak int64 // Go heap objects (live and not yet swept), bytes
	rssBefore, rssPeak   int64 // VmRSS, bytes
}

// watchMemory samples this process's heap and resident size every 100 ms until stop.
func watchMemory() (stop func() memPeak) {
	heap := func() int64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return int64(s[0].Value.Uint64())
	}
	var m memPeak
	m.heapBefore = heap()
	m.rssBefore, _, _ = residentSize("self")
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			m.heapPeak = max(m.heapPeak, heap())
			rss, _, _ := residentSize("self")
			m.rssPeak = max(m.rssPeak, rss)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() memPeak {
		close(done)
		<-finished
		return m
	}
}

type summary struct {
	total, meanTotal        time.Duration // slowest node; mean over nodes
	baseCopy, baseBoot      time.Duration // means
	baseReadBack            time.Duration // mean (-readback)
	cardRatio               float64       // copyCheck / (baseCopy + baseReadBack): the card goal
	pitasksCopy, copyCheck  time.Duration // means: env_copy; env_copy + env_check
	copyRatio, copyChkRatio float64       // pitasks / baseline
	hw                      time.Duration // hardware-bound estimate of one node
	hwRatio                 float64       // slowest node / hw
	// Aggregate copy: first copy's start to last copy's end, over all nodes. pitasks
	// staggers the copies (at most 8 nodes boot at once), the baseline starts them together.
	baseSpan, pitasksSpan time.Duration
	baseAgg, pitasksAgg   float64       // MB/s, all nodes together
	aggRatio              float64       // pitasks aggregate throughput / baseline's
	gap, gapP90           time.Duration // median and 90th percentile of the overhead between states
	nfsLag, systemLag     time.Duration // means: node up to ssh_nfs / ssh_system done
}

func mean(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s / time.Duration(max(1, len(ds)))
}

// summary: rates count rawBytes, the image written onto each card (both sides send the same
// bytes: the raw image, or the compressed one when the node inflates it).
func (r round) summary(rawBytes int64) summary {
	var s summary
	var totals, copies, boots, readBacks, pcopies, checks, gaps, nfsLags, sysLags []time.Duration
	for _, d := range r.deploy {
		gaps = append(gaps, d.gaps...)
		if l, ok := d.lag["ssh_nfs"]; ok {
			nfsLags = append(nfsLags, l)
		}
		if l, ok := d.lag["ssh_system"]; ok {
			sysLags = append(sysLags, l)
		}
		s.total = max(s.total, d.total)
		totals = append(totals, d.total)
		pcopies = append(pcopies, d.states["env_copy"])
		checks = append(checks, d.states["env_copy"]+d.states["env_check"])
	}
	for _, b := range r.base {
		copies = append(copies, b.copy)
		boots = append(boots, b.boot)
		readBacks = append(readBacks, b.readBack)
	}
	s.baseReadBack = mean(readBacks)
	s.meanTotal, s.baseCopy, s.baseBoot = mean(totals), mean(copies), mean(boots)
	var f, l time.Time
	for _, d := range r.deploy {
		if st := d.first["env_copy"]; f.IsZero() || st.Before(f) {
			f = st
		}
		if en := d.last["env_copy"]; en.After(l) {
			l = en
		}
	}
	s.pitasksSpan = l.Sub(f)
	f, l = time.Time{}, time.Time{}
	for _, b := range r.base {
		if f.IsZero() || b.start.Before(f) {
			f = b.start
		}
		if b.end.After(l) {
			l = b.end
		}
	}
	s.baseSpan = l.Sub(f)
	s.baseAgg = float64(int64(r.n)*rawBytes) / 1e6 / s.baseSpan.Seconds()
	s.pitasksAgg = float64(int64(r.n)*rawBytes) / 1e6 / s.pitasksSpan.Seconds()
	s.aggRatio = s.pitasksAgg / s.baseAgg
	s.pitasksCopy, s.copyCheck = mean(pcopies), mean(checks)
	s.copyRatio = s.pitasksCopy.Seconds() / s.baseCopy.Seconds()
	s.copyChkRatio = s.copyCheck.Seconds() / s.baseCopy.Seconds()
	s.cardRatio = s.copyCheck.Seconds() / (s.baseCopy + s.baseReadBack).Seconds()
	// Two boots (the NFS system, then the card: the lab boots both alike) and one copy, as the
	// baseline measured them on the same nodes and links; the configuration work is not counted.
	s.gap, s.gapP90, s.nfsLag, s.systemLag = quantile(gaps, 0.5), quantile(gaps, 0.9), mean(nfsLags), mean(sysLags)
	s.hw = 2*s.baseBoot + s.baseCopy
	s.hwRatio = s.total.Seconds() / s.hw.Seconds()
	return s
}

type report struct {
	labUp     time.Duration
	im        benchImage
	format    string
	wireBytes int64
	extraMiB  int64
	link      int
	uplink    int // Mbit/s, 0 = unlimited
	cardW     int // MB/s, 0 = unlimited
	cardR     int
	baseSends string
	model     string
	cipher    string
	cfg       deploytest.Config
	rounds    []round
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }

// modelParams takes the model's parameters from the first round (issue 14 item 4: the model is
// checked against the lab with what the lab measured, not with assumed values): one node's
// copy rate and check, the boots and configuration as the state events timed them, and what
// the states do not account for. The uplink is its tbf rate at the payload share of a link
// measured by make bench-lab (0.935, as bench/deploymodel's site parameters).
func (r *report) modelParams() (deploymodel.Params, bool) {
	if len(r.rounds) == 0 || len(r.rounds[0].deploy) == 0 {
		return deploymodel.Params{}, false
	}
	ds := r.rounds[0].deploy
	state := func(names ...string) time.Duration {
		var all []time.Duration
		for _, d := range ds {
			var sum time.Duration
			for _, n := range names {
				sum += d.states[n]
			}
			all = append(all, sum)
		}
		return mean(all)
	}
	var totals, inStates []time.Duration
	for _, d := range ds {
		totals = append(totals, d.total)
		var sum time.Duration
		for _, v := range d.states {
			sum += v
		}
		inStates = append(inStates, sum)
	}
	p := deploymodel.Params{
		ImageBytes: float64(r.im.size), WireBytes: float64(r.wireBytes),
		Start: state("boot_conf", "turn_off"), Boot1: state("turn_on", "ssh_nfs"),
		Conf1: state("partition", "system_conf", "boot_files"), Boot2: state("ssh_system", "system_update", "boot_update"),
		Conf2: state("user_conf", "user_script"), Fixed: max(0, mean(totals)-mean(inStates)),
		Slots: cmp.Or(r.cfg.MaxBooting, config.Default().Tasks.MaxBooting), Copies: min(cmp.Or(r.cfg.Workers, config.Default().Tasks.Workers), cmp.Or(r.cfg.MaxCopying, config.Default().Tasks.MaxCopying)),
	}
	copySecs, check := state("env_copy").Seconds(), state("env_check").Seconds()
	if copySecs <= 0 {
		return deploymodel.Params{}, false
	}
	p.LinkBps = p.WireBytes / copySecs
	if check > 0 {
		p.CheckBps = p.ImageBytes / check
	}
	if r.uplink > 0 {
		p.UplinkBps = float64(r.uplink) * 1e6 / 8 * 0.935
	}
	return p, true
}

func mbps(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(bytes)/1e6/d.Seconds())
}

func (r *report) markdown() string {
	var w strings.Builder
	link := fmt.Sprintf("%d Mbit/s", r.link)
	if r.link == 0 {
		link = "unlimited"
	}
	uplink := "unlimited"
	if r.uplink > 0 {
		uplink = fmt.Sprintf("%d Mbit/s", r.uplink)
	}
	fmt.Fprintf(&w, "### Lab benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&w, "%s nodes, links %s (tc tbf), the pimaster's uplink %s; lab up in %s s. Image: %.1f MiB raw (%s, sha256 %s…), root partition %d MiB%s holding %d MiB of %s payload, "+
		"deployed with +%d MiB (root %d MiB) and an init script; environment format `%s`: %.1f MiB on the wire per node.\n\n",
		r.model, link, uplink, secs(r.labUp), float64(r.im.size)/(1<<20), filepath.Base(r.im.raw), r.im.sha256[:12], r.im.rootMiB, freshRoot(), *flagPayload, payloadKind(),
		r.extraMiB, r.im.rootMiB+r.extraMiB, r.format, float64(r.wireBytes)/(1<<20))
	card := "unlimited"
	if r.cardW > 0 {
		card = fmt.Sprintf("writes %d MB/s, reads %d MB/s", r.cardW, r.cardR)
	}
	fmt.Fprintf(&w, "SD cards: %s (blk-throttle). The baseline sends `%s`. MB/s = bytes of the raw image written onto a card per second.\n\n",
		card, r.baseSends)
	if r.cfg.Workers != 0 || r.cfg.MaxBooting != 0 || r.cfg.MaxCopying != 0 {
		fmt.Fprintf(&w, "pitasks settings: workers %d, max_booting %d, max_copying %d (0: default, 64, 8 and 48).\n\n",
			r.cfg.Workers, r.cfg.MaxBooting, r.cfg.MaxCopying)
	}
	if r.cipher != "" {
		fmt.Fprintf(&w, "Baseline cipher: `ssh -c %s`.\n\n", r.cipher)
	}
	fmt.Fprintf(&w, "Engine tick %s, poll interval %s (0: the harness's 250ms / 300ms; pitasks' defaults are 2s / 1s).\n\n",
		r.cfg.Tick, r.cfg.PollInterval)
	w.WriteString("| nodes | boot events | deployed: slowest / mean (s) | slowest / estimate | node up → ssh_nfs done (s) | node up → ssh_system done (s) | " +
		"overhead between states: median / p90 (ms) |\n|---|---|---|---|---|---|---|\n")
	for _, rd := range r.rounds {
		s := rd.summary(r.im.size)
		on := "off"
		if rd.bootEvents {
			on = "on"
		}
		fmt.Fprintf(&w, "| %d | %s | %s / %s | %.2f | %.2f | %.2f | %.0f / %.0f |\n", rd.n, on, secs(s.total), secs(s.meanTotal), s.hwRatio,
			s.nfsLag.Seconds(), s.systemLag.Seconds(), float64(s.gap.Microseconds())/1000, float64(s.gapP90.Microseconds())/1000)
	}
	w.WriteString("\n")
	w.WriteString("| nodes | deployed: slowest / mean (s) | baseline boot (s) | baseline copy (s, MB/s per node) | pitasks env_copy (s, MB/s per node) | " +
		"copy ratio pitasks/baseline | (env_copy+env_check)/baseline | aggregate MB/s baseline / pitasks (ratio) | hardware-bound estimate (s) | slowest / estimate |\n")
	w.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, rd := range r.rounds {
		s := rd.summary(r.im.size)
		fmt.Fprintf(&w, "| %d | %s / %s | %s | %s (%s) | %s (%s) | %.2f | %.2f | %.1f / %.1f (%.2f) | %s | %.2f |\n", rd.n, secs(s.total), secs(s.meanTotal),
			secs(s.baseBoot), secs(s.baseCopy), mbps(r.im.size, s.baseCopy), secs(s.pitasksCopy), mbps(r.im.size, s.pitasksCopy),
			s.copyRatio, s.copyChkRatio, s.baseAgg, s.pitasksAgg, s.aggRatio, secs(s.hw), s.hwRatio)
	}
	if p, ok := r.modelParams(); ok {
		w.WriteString("\nThe deployment-time model (bench/deploymodel) against this run: its parameters are the first round's " +
			"(per-state means, the copy rate of one node, env_check), the uplink at 0.935 of its tbf rate, pitasks' boot and copy slots; " +
			"it predicts the slowest node of each round:\n\n| nodes | measured slowest (s) | model (s) | measured / model | copies bound by the uplink (s) |\n|---|---|---|---|---|\n")
		for _, rd := range r.rounds {
			s, m := rd.summary(r.im.size), deploymodel.Predict(p, rd.n)
			fmt.Fprintf(&w, "| %d | %s | %s | %.2f | %s |\n", rd.n, secs(s.total), secs(m.Max), s.total.Seconds()/m.Max.Seconds(), secs(m.Shared))
		}
	}
	if *flagReadBack {
		w.WriteString("\nThe card goal (issue 14 item 2: ≤ 0.6): pitasks' env_copy + env_check against the baseline's straight copy " +
			"plus a full read-back of the card (`dd iflag=direct | sha256sum`), means per node:\n\n" +
			"| nodes | baseline copy + read-back (s) | pitasks env_copy + env_check (s) | ratio |\n|---|---|---|---|\n")
		for _, rd := range r.rounds {
			s := rd.summary(r.im.size)
			fmt.Fprintf(&w, "| %d | %s + %s | %s | %.3f |\n", rd.n, secs(s.baseCopy), secs(s.baseReadBack), secs(s.copyCheck), s.cardRatio)
		}
	}
	if *flagMeasured {
		w.WriteString("\nThe image was measured and mapped before the rounds (-measured): every copy wrote only the ranges its file systems use.\n")
	}
	w.WriteString("\nMemory of the benchmark process (the engine, and the harness that only asks the database) during each pitasks " +
		"round (issue 14 item 3), sampled every 100 ms:\n\n| nodes | Go heap before / peak (MiB) | VmRSS before / peak (MiB) |\n|---|---|---|\n")
	for _, rd := range r.rounds {
		fmt.Fprintf(&w, "| %d | %.1f / %.1f | %.1f / %.1f |\n", rd.n, float64(rd.mem.heapBefore)/(1<<20), float64(rd.mem.heapPeak)/(1<<20),
			float64(rd.mem.rssBefore)/(1<<20), float64(rd.mem.rssPeak)/(1<<20))
	}
	for _, rd := range r.rounds {
		fmt.Fprintf(&w, "\n#### %d node(s) at once, boot events %v\n\n", rd.n, rd.bootEvents)
		w.WriteString("Per node: time to `deployed` (s), baseline boot / copy (s), pitasks env_copy (s) and what it wrote onto the card, retries or reboots\n\n")
		for i, d := range rd.deploy {
			bn := baseNode{}
			for _, b := range rd.base {
				if b.name == d.name {
					bn = b
				}
			}
			if i > 0 {
				w.WriteString("; ")
			}
			fmt.Fprintf(&w, "%s %s (%s/%s, %s, %.1f MiB written", d.name, secs(d.total), secs(bn.boot), secs(bn.copy), secs(d.states["env_copy"]),
				float64(d.written)/(1<<20))
			if d.attempts > 0 {
				fmt.Fprintf(&w, ", %d retries", d.attempts)
			}
			w.WriteString(")")
		}
		w.WriteString("\n\nMean time per state (s):\n\n| state | mean | max |\n|---|---|---|\n")
		var order []string
		if len(rd.deploy) > 0 {
			order = rd.deploy[0].order
		}
		for _, st := range order {
			var all []time.Duration
			for _, d := range rd.deploy {
				all = append(all, d.states[st])
			}
			fmt.Fprintf(&w, "| %s | %s | %s |\n", st, fmt.Sprintf("%.2f", mean(all).Seconds()), fmt.Sprintf("%.2f", slices.Max(all).Seconds()))
		}
	}
	return w.String()
}
