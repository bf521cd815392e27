package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

const rootMount = "/mnt/piseduce"

// cardDev is the node's card as the NFS system sees it: its card_device setting (an SD card,
// an NVMe drive…). Scripts take it as an argument, never inside their text.
type cardDev string

func cardOf(t *engine.Task) cardDev {
	if d := t.D.Node.CardDevice; d != "" {
		return cardDev(d)
	}
	return store.DefaultCardDevice
}

func (c cardDev) boot() string { return store.CardPartition(string(c), 1) }
func (c cardDev) root() string { return store.CardPartition(string(c), 2) }

// writeCard is the node's side of the copy: the image (inflated by the program given as its
// last arguments) onto the card ($1), its partition table last, and the sha256 of the raw
// image received on stdout: the node hashes what it inflates, so the pimaster need not. The
// old table is wiped first, so a copy cut short leaves a card with no partitions: a Pi 3B+
// whose card still had bootcode.bin would try to boot that half-written card instead of the
// network, and be out of reach.
//
// $2 is a count n of used ranges, given as the next 2n arguments (start and end offsets in
// bytes, in order, the first from 0): the node then writes only those and reads the bytes in
// between to /dev/null, still hashing the whole image. n = 0 writes the whole image.
const writeCard = `set -eo pipefail
card=$1 n=$2; shift 2
ranges=("${@:1:2*n}"); shift $((2*n))
dd if=/dev/zero of="$card" bs=512 count=1 conv=fsync,notrunc status=none
place() {
	dd of=/run/piseduce-mbr bs=512 count=1 iflag=fullblock status=none
	if ((n == 0)); then
		dd of="$card" bs=4M seek=512 oflag=seek_bytes iflag=fullblock conv=fsync status=none
		return
	fi
	local pos=512 i start end
	for ((i = 0; i < n; i++)); do
		start=${ranges[2*i]} end=${ranges[2*i+1]}
		((start > pos)) && dd of=/dev/null bs=4M count=$((start - pos)) iflag=fullblock,count_bytes status=none
		((start < pos)) && start=$pos
		dd of="$card" bs=4M seek=$start count=$((end - start)) oflag=seek_bytes iflag=fullblock,count_bytes conv=notrunc status=none
		pos=$end
	done
	dd of=/dev/null bs=4M status=none
	sync "$card" # fsync: the card's cache, written by each dd above, before the table
}
{ "$@" | tee /proc/self/fd/3 | place; } 3>&1 | sha256sum
dd if=/run/piseduce-mbr of="$card" bs=512 count=1 conv=fsync,notrunc status=none`

// maxRanges bounds the used ranges given to writeCard as arguments: a finer map is coarsened
// (short gaps written) to fit.
const maxRanges = 512

// coarsen closes the shortest gaps of a map of more than maxRanges ranges.
func coarsen(used []usedmap.Range) []usedmap.Range {
	for gap := int64(image.BlockSize); len(used) > maxRanges; gap *= 2 {
		used = usedmap.Coarsen(used, gap)
	}
	return used
}

// cardArgs are writeCard's arguments after the card: the used ranges to write (none: all).
func cardArgs(used []usedmap.Range) []string {
	args := []string{strconv.Itoa(len(used))}
	for _, r := range used {
		args = append(args, strconv.FormatInt(r.Start, 10), strconv.FormatInt(r.End, 10))
	}
	return args
}

// imagePath is the environment's image file: a regular file of img_dir (see image.Locate).
func (d *Deployer) imagePath(t *engine.Task) (string, error) {
	p, err := image.Locate(d.ImgDir, t.D.Environment.ImageName)
	if err != nil {
		return "", engine.Permanent(fmt.Errorf("environment %s: %w", t.D.Environment.Name, err))
	}
	return p, nil
}

// envCopy streams the image over SSH into dd on the card, with byte-exact progress, and
// remembers the size and sha256 of the raw image for env_check. It waits for a copy slot.
func (d *Deployer) envCopy(ctx context.Context, t *engine.Task) error {
	env := t.D.Environment
	path, err := d.imagePath(t)
	if err != nil {
		return err
	}
	if !d.copies.acquire(t.D.NodeID) {
		return d.copies.wait
	}
	defer d.copies.release(t.D.NodeID)
	format := env.ImageFormat
	if format == "" {
		format = image.FormatOf(env.ImageName)
	}
	inflateHere := env.DecompressOn == "pimaster" || format == image.Raw
	inflater := []string{"cat"}
	if !inflateHere {
		inflater = image.NodeInflater(format)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var progressErr error
	progress := func(done, total int64) {
		if err := t.Progress(ctx, done, total); err != nil && progressErr == nil {
			progressErr = err // the deployment is no longer ours: stop sending
			cancel()
		}
	}
	var sum image.Sum
	var written []usedmap.Range
	err = d.withShell(ctx, t, remote.RoleNFS, func(sh Shell) error {
		var err error
		sum, err = image.Send(ctx, path, format, inflateHere, image.Sum{Size: env.ImageSize, SHA256: env.ImageSHA256}, func(stdin io.Reader, used []usedmap.Range) (string, error) {
			written = coarsen(used)
			argv := append(append([]string{"bash", "-c", writeCard, "bash", string(cardOf(t))}, cardArgs(written)...), inflater...)
			if written != nil {
				t.Log.Info("copying the used ranges of the image only", "ranges", len(written), "bytes", usedmap.Bytes(written))
			}
			var out strings.Builder
			if err := sh.Run(ctx, argv, remote.RunOptions{Stdin: stdin, Stdout: &out}); err != nil {
				return "", err
			}
			got, _, _ := strings.Cut(strings.TrimSpace(out.String()), " ")
			return got, nil
		}, progress)
		return err
	})
	switch {
	case progressErr != nil:
		return progressErr
	case errors.Is(err, image.ErrBadImage):
		return engine.Permanent(err)
	case err != nil:
		return err
	}
	data, err := engine.Data[process.DeployData](t)
	if err != nil {
		return err
	}
	data.Size, data.SHA256, data.Written = sum.Size, sum.SHA256, written
	t.Log.Info("image copied", "bytes", sum.Size, "sha256", sum.SHA256)
	return nil
}

// sampleBlocks is how many blocks env_check reads back at random, besides those of the partition
// table and of each partition's ends: 16 × 4 MiB, a few seconds at a card's read speed.
const sampleBlocks = 16

// readBlocks prints the sha256 of blocks of the card ($1), one line each: "B:N" is the first N
// bytes of the image.BlockSize block B. The card is read with O_DIRECT: blocks still in the page
// cache since the copy would prove nothing about what the card kept.
const readBlocks = `set -eo pipefail
card=$1; shift
for b; do
	dd if="$card" bs=4M skip="${b%:*}" count=1 iflag=direct,fullblock status=none | { head -c "${b#*:}" | sha256sum; cat >/dev/null; }
done`

// envCheck reads back a sample of the card's blocks (image.Sample) and compares them with the
// image's: the sha256 the node computed of the stream proves the transfer, the sample that the
// card kept it, whatever the image's size. A fake card, one that keeps only its first part and
// drops or wraps what is written beyond, differs at the end of the last partition at least.
func (d *Deployer) envCheck(ctx context.Context, t *engine.Task) (bool, error) {
	want, err := engine.Data[process.DeployData](t)
	if err != nil {
		return false, err
	}
	if want.Size <= 0 {
		return false, engine.Permanent(errors.New("no record of the image copy to check"))
	}
	path, err := d.imagePath(t)
	if err != nil {
		return false, err
	}
	format := t.D.Environment.ImageFormat
	if format == "" {
		format = image.FormatOf(t.D.Environment.ImageName)
	}
	blocks, err := image.BlockSums(ctx, path, format, image.Sum{Size: want.Size, SHA256: want.SHA256})
	if errors.Is(err, image.ErrBadImage) {
		return false, engine.Permanent(fmt.Errorf("cannot check the card: %w", err))
	}
	if err != nil {
		return false, err
	}
	layout, err := image.LayoutOf(path, format)
	if err != nil {
		layout = image.Layout{} // no partition table to follow: the table's block and random ones
	}
	sample := image.Sample(layout, want.Size, want.Written, sampleBlocks)
	args := []string{"bash", "-c", readBlocks, "bash", string(cardOf(t))}
	for _, b := range sample {
		args = append(args, fmt.Sprintf("%d:%d", b, min(image.BlockSize, want.Size-b*image.BlockSize)))
	}
	var out string
	err = d.withShell(ctx, t, remote.RoleNFS, func(sh Shell) error {
		var err error
		out, err = sh.Output(ctx, args...)
		return err
	})
	if err != nil {
		return false, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(sample) {
		return false, fmt.Errorf("reading the card back: %d block hashes for %d blocks", len(lines), len(sample))
	}
	for i, b := range sample {
		got, _, _ := strings.Cut(lines[i], " ")
		if got != blocks[b] {
			return false, engine.Permanent(fmt.Errorf("the card does not hold the image: block at offset %d (%d MiB) reads back sha256 %s, the image's is %s",
				b*image.BlockSize, b*image.BlockSize>>20, got, blocks[b]))
		}
	}
	t.Log.Info("card checked", "blocks", len(sample), "of", len(blocks))
	return true, nil
}
