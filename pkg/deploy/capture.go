package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
)

// The save_env process (pkg/process): the deployed system reboots into the NFS system
// (img_netboot, ssh_nfs), the card's used bytes — up to the end of its last partition — are
// streamed compressed into img_dir (img_copy), checked against the node's own reading of its
// card (img_check) which then creates the environment, and the node boots its card again
// (boot_files, ssh_system).

// EnvStore records the environments captured from nodes (the store). A Deployer whose Keys
// implement it (the store does) uses them.
type EnvStore interface {
	CreateCapturedEnvironment(ctx context.Context, e *store.Environment) error
}

func (d *Deployer) envStore() (EnvStore, error) {
	if es, ok := d.Keys.(EnvStore); ok {
		return es, nil
	}
	return nil, engine.Permanent(errors.New("this pitasks cannot record environments (no store)"))
}

// captureNameRE is what an environment name may be (as the web and the original's JSON
// check), so that it can be part of a file name.
var captureNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// capture checks the request's environment name and returns save_env's step data.
func (d *Deployer) capture(t *engine.Task) (*process.SaveEnvData, error) {
	if name := t.D.CaptureName; !captureNameRE.MatchString(name) {
		return nil, engine.Permanent(fmt.Errorf("%q is not a valid environment name", name))
	}
	return engine.Data[process.SaveEnvData](t)
}

// imgNetboot points the node's TFTP folder at the NFS system and reboots the deployed system
// cleanly, so that its file systems are unmounted when the card is read. A system that does
// not answer is power-cycled. The pinned host key of the system is kept: the card comes back
// unchanged.
func (d *Deployer) imgNetboot(ctx context.Context, t *engine.Task) error {
	if _, err := d.capture(t); err != nil {
		return err
	}
	if err := d.Boot.BootNFS(t.D.Node.Serial); err != nil {
		return bootError(err)
	}
	d.boots.note(t.D.NodeID)
	if err := d.reboot(ctx, t, remote.RoleSystem); err != nil {
		if engine.IsPermanent(err) {
			return err // a stranger answers: no power cycle either
		}
		t.Log.Warn("the deployed system does not answer: power-cycling it", "err", err)
		return d.HardReboot(ctx, t.D)
	}
	return nil
}

// readCard is the node's side of img_copy: the first $1 bytes of the card $2, compressed by
// the program given as the other arguments.
const readCard = `set -eo pipefail
head -c "$1" "$2" | "${@:3}"`

// imgCopy streams the card's used bytes, compressed on the node, into a new image file in
// img_dir. The stream is inflated here as it arrives, for the progress (in card bytes) and
// the sha256 img_check compares with the node's. It waits for a copy slot.
func (d *Deployer) imgCopy(ctx context.Context, t *engine.Task) error {
	c, err := d.capture(t)
	if err != nil {
		return err
	}
	if d.ImgDir == "" {
		return engine.Permanent(errors.New("no img_dir configured"))
	}
	if !d.copies.acquire(t.D.NodeID) {
		return d.copies.wait
	}
	defer d.copies.release(t.D.NodeID)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var progressErr error
	progress := func(done, total int64) {
		if err := t.Progress(ctx, done, total); err != nil && progressErr == nil {
			progressErr = err // the deployment is no longer ours: stop
			cancel()
		}
	}
	part := filepath.Join(d.ImgDir, fmt.Sprintf(".capture-%d.part", t.D.ID))
	defer os.Remove(part) // renamed away on success
	var (
		layout image.Layout
		format string
		sum    image.Sum
	)
	err = d.withShell(ctx, t, remote.RoleNFS, func(sh Shell) error {
		var mbr bytes.Buffer
		if err := sh.Run(ctx, []string{"head", "-c", "512", string(cardOf(t))}, remote.RunOptions{Stdout: &mbr}); err != nil {
			return err
		}
		var err error
		if layout, err = image.ParseMBR(mbr.Bytes()); err != nil {
			return engine.Permanent(errorf(t, "the card: %v", err))
		}
		if _, ok := layout.Root(); !ok {
			return engine.Permanent(errorf(t, "the card has no Linux root partition"))
		}
		compress := []string{"zstd", "-q", "-c", "-3", "-T0"}
		format = image.Zstd
		if _, err := sh.Output(ctx, "sh", "-c", "command -v zstd"); err != nil {
			compress, format = []string{"gzip", "-c", "-3"}, image.Gzip
		}
		sum, err = receive(part, format, layout.End, progress, func(w io.Writer) error {
			argv := append([]string{"bash", "-c", readCard, "bash", strconv.FormatInt(layout.End, 10), string(cardOf(t))}, compress...)
			return sh.Run(ctx, argv, remote.RunOptions{Stdout: w})
		})
		return err
	})
	if progressErr != nil {
		return progressErr
	}
	if err != nil {
		return err
	}
	ext := ".img.zst"
	if format == image.Gzip {
		ext = ".img.gz"
	}
	name := t.D.CaptureName + "-" + time.Now().UTC().Format("20060102-150405") + ext
	final := filepath.Join(d.ImgDir, name)
	// A hard link never replaces a file of the same name, as a rename would.
	if err := os.Link(part, final); err != nil {
		return fmt.Errorf("keeping the image as %s: %w", name, err)
	}
	c.File, c.Format, c.Size, c.SHA256, c.RootStart = name, format, sum.Size, sum.SHA256, layout.RootStart
	t.Log.Info("card captured", "file", name, "bytes", sum.Size, "sha256", sum.SHA256)
	return nil
}

// receive runs send with a writer into the file at path, inflating a copy of the stream as
// it comes to measure the raw bytes (progress over want); it returns their size and sha256.
func receive(path, format string, want int64, progress func(done, total int64), send func(io.Writer) error) (image.Sum, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return image.Sum{}, err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	h := image.NewHasher()
	measured := make(chan error, 1)
	go func() {
		raw, err := image.Inflate(pr, format)
		if err == nil {
			_, err = io.Copy(io.MultiWriter(h, &progressWriter{total: want, progress: progress}), raw)
			raw.Close()
		}
		pr.CloseWithError(err) // the sender stops at once on a bad stream
		measured <- err
	}()
	serr := send(io.MultiWriter(f, pw))
	pw.CloseWithError(serr)
	merr := <-measured
	switch {
	case serr != nil && merr != nil && !errors.Is(merr, serr):
		return image.Sum{}, fmt.Errorf("%w (the compressed card stream: %v)", serr, merr)
	case serr != nil:
		return image.Sum{}, serr
	case merr != nil:
		return image.Sum{}, fmt.Errorf("the compressed card stream: %w", merr)
	}
	if err := f.Sync(); err != nil {
		return image.Sum{}, err
	}
	if err := f.Close(); err != nil {
		return image.Sum{}, err
	}
	sum := h.Sum()
	if sum.Size != want {
		return image.Sum{}, fmt.Errorf("received %d bytes of the card, want %d", sum.Size, want)
	}
	return sum, nil
}

// progressWriter counts the raw bytes and reports them.
type progressWriter struct {
	n, total int64
	progress func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.progress != nil {
		p.progress(p.n, p.total)
	}
	return len(b), nil
}

// imgCheck compares what was received with the node's own sha256 of its card, checks the
// image file once more, and creates the environment: owned by the deployment's user, of type
// user (visible to them; admins publish it by changing its type), with the account, shell and
// web flag of the environment the node was deployed with.
func (d *Deployer) imgCheck(ctx context.Context, t *engine.Task) (bool, error) {
	c, err := d.capture(t)
	if err != nil {
		return false, err
	}
	if c.File == "" || c.Size <= 0 || c.File != filepath.Base(c.File) {
		return false, engine.Permanent(errors.New("no record of the card copy to check"))
	}
	es, err := d.envStore()
	if err != nil {
		return false, err
	}
	var out string
	err = d.withShell(ctx, t, remote.RoleNFS, func(sh Shell) error {
		var err error
		out, err = sh.Output(ctx, "sh", "-c", `head -c "$1" "$2" | sha256sum`, "sh", strconv.FormatInt(c.Size, 10), string(cardOf(t)))
		return err
	})
	if err != nil {
		return false, err
	}
	path := filepath.Join(d.ImgDir, c.File)
	if got, _, _ := strings.Cut(strings.TrimSpace(out), " "); got != c.SHA256 {
		os.Remove(path)
		return false, engine.Permanent(fmt.Errorf("the image received differs from the card: sha256 %s, the node reads %s", c.SHA256, got))
	}
	stored, err := image.Measure(ctx, path, c.Format)
	if err != nil {
		return false, err
	}
	if stored != (image.Sum{Size: c.Size, SHA256: c.SHA256}) {
		os.Remove(path)
		return false, engine.Permanent(fmt.Errorf("the image file %s does not hold what was received", c.File))
	}
	src := t.D.Environment
	desc := t.D.CaptureDescription
	if desc == "" {
		desc = fmt.Sprintf("Saved from %s (environment %s) on %s.", t.D.Node.Name, src.Name, time.Now().UTC().Format("2006-01-02"))
	}
	// A deployed system's first boot is behind it: a Raspberry Pi OS card no longer runs
	// firstboot nor reads userconf.txt (userconfig.service disables itself), so it is plain
	// now; cloud-init configures again for a new instance-id, so it stays cloud-init.
	family := image.FamilyPlain
	if src.OSFamily == image.FamilyCloudInit {
		family = image.FamilyCloudInit
	}
	env := store.Environment{Name: t.D.CaptureName, Type: store.EnvUser, Description: desc, ImageName: c.File,
		ImageSize: c.Size, ImageFormat: c.Format, ImageSHA256: c.SHA256, DecompressOn: "node",
		SectorStart: c.RootStart, SSHUser: src.SSHUser, Shell: src.Shell, OSFamily: family, Web: src.Web,
		ScriptTest: src.ScriptTest, OwnerID: t.D.UserID}
	if err := es.CreateCapturedEnvironment(ctx, &env); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			return false, engine.Permanent(fmt.Errorf("an environment named %s appeared meanwhile; the image is kept as %s", t.D.CaptureName, c.File))
		}
		return false, err
	}
	t.Log.Info("environment saved", "environment", env.Name, "id", env.ID, "owner", env.OwnerID)
	return true, nil
}
