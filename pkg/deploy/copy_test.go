package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/testenv"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

// TestWriteCardSparse runs writeCard as a node would, onto a "card" file full of garbage:
// the first copy of the image file writes all of it; the second, its used ranges known,
// writes those only. The card then equals the image over every used range, still holds its
// garbage elsewhere, and both its file systems pass fsck; the node's sha256 is the whole
// image's both times.
func TestWriteCardSparse(t *testing.T) {
	testenv.NeedRoot(t) // a private /run for the script's first sector
	testenv.NeedCommand(t, "unshare", "e2fsck", "fsck.fat", "gzip", "sfdisk", "mkfs.vfat", "mkfs.ext4", "debugfs", "mcopy")
	im, err := lab.BuildImage(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(im.Img)
	if err != nil {
		t.Fatal(err)
	}
	card := filepath.Join(t.TempDir(), "card")
	garbage := make([]byte, len(raw)+1<<20)
	rand.New(rand.NewSource(1)).Read(garbage)

	var gotUsed []usedmap.Range
	node := func(stdin io.Reader, used []usedmap.Range) (string, error) {
		gotUsed = used
		args := append([]string{"--mount", "--propagation", "private", "sh", "-c", `mount -t tmpfs tmpfs /run && exec "$@"`, "sh",
			"bash", "-c", writeCard, "bash", card}, cardArgs(used)...)
		cmd := exec.Command("unshare", append(args, image.NodeInflater(image.Gzip)...)...)
		cmd.Stdin = stdin
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("%v: %s", err, stderr.Bytes())
		}
		sum, _, _ := strings.Cut(string(out), " ")
		return sum, nil
	}
	for copyN, sparse := range []bool{false, true} {
		if err := os.WriteFile(card, garbage, 0o644); err != nil {
			t.Fatal(err)
		}
		sum, err := image.Send(context.Background(), im.Gz, image.Gzip, false, image.Sum{}, node, nil)
		if err != nil {
			t.Fatalf("copy %d: %v", copyN+1, err)
		}
		if sum.Size != int64(len(raw)) {
			t.Fatalf("copy %d: measured %d bytes, the image has %d", copyN+1, sum.Size, len(raw))
		}
		got, err := os.ReadFile(card)
		if err != nil {
			t.Fatal(err)
		}
		if !sparse {
			if gotUsed != nil || !bytes.Equal(got[:len(raw)], raw) {
				t.Fatalf("the first copy (map %v) did not write the whole image", gotUsed)
			}
			continue
		}
		if !usedmap.Valid(gotUsed, int64(len(raw))) {
			t.Fatalf("the second copy got no valid map: %v", gotUsed)
		}
		pos := int64(0)
		for _, r := range gotUsed {
			if !bytes.Equal(got[r.Start:r.End], raw[r.Start:r.End]) {
				t.Errorf("the card differs from the image in the used range %v", r)
			}
			if r.Start > pos && bytes.Equal(got[pos:r.Start], raw[pos:r.Start]) {
				t.Errorf("the skipped range [%d, %d) holds the image, not the card's garbage", pos, r.Start)
			}
			pos = r.End
		}
		skipped := int64(len(raw)) - usedmap.Bytes(gotUsed)
		if skipped < int64(len(raw))/2 {
			t.Errorf("only %d of %d bytes skipped", skipped, len(raw))
		}
		t.Logf("sparse copy: %d ranges, %d of %d bytes written", len(gotUsed), usedmap.Bytes(gotUsed), len(raw))
		for _, p := range []struct {
			start, sectors int64
			fsck           []string
		}{
			{int64(im.BootStart), lab.ImageBootSectors, []string{"fsck.fat", "-n"}},
			{int64(im.SectorStart), lab.ImageRootSectors, []string{"e2fsck", "-fn"}},
		} {
			part := filepath.Join(t.TempDir(), "part")
			os.WriteFile(part, got[p.start*512:(p.start+p.sectors)*512], 0o644)
			if out, err := exec.Command(p.fsck[0], append(p.fsck[1:], part)...).CombinedOutput(); err != nil {
				t.Errorf("%v on the card's partition at sector %d: %v\n%s", p.fsck, p.start, err, out)
			}
		}
	}
}
