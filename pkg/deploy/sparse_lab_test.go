package deploy_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

// TestSparseDeployOntoGarbage deploys, onto a card first filled with garbage, an image whose
// used ranges are known (measured before, as a registration would): the copy writes only
// those. Between env_check and partition the card, read from the pimaster's side, equals the
// image over every range written, still holds the garbage everywhere else, and both its file
// systems pass a read-only fsck (fsck.vfat -n, e2fsck -fn) before partition's e2fsck -y could
// mend them: what was not written is nothing they use. The node then boots the system from
// its card, and once it is off the deployed file systems pass the same fsck.
func TestSparseDeployOntoGarbage(t *testing.T) {
	var h *deploytest.Harness
	seen := make(chan string, 1) // what the look at the card between the states found wrong, "" if nothing
	var raw, garbage []byte
	tmp := t.TempDir()
	look := func(st process.StateName, task *engine.Task) {
		if st != process.Partition {
			return
		}
		select {
		case seen <- checkSparseCard(h, task, raw, garbage, tmp):
		default: // a later attempt: the card was looked at before the first
		}
	}
	h = deploytest.StartWith(t, lab.Options{Nodes: 1}, deploytest.Config{BeforeExec: look})
	n := h.Nodes[0]
	nd := h.Lab.Desc.Node(n.Name)

	var err error
	raw, err = os.ReadFile(h.Lab.Desc.Image.Img)
	if err != nil {
		t.Fatal(err)
	}
	hr := image.NewHasher()
	hr.Write(raw)
	sum := hr.Sum()
	// The image's measure and map, taken before the first deployment as a registration would;
	// BlockSums also proves the environment's image file holds raw.
	path, err := image.Locate(h.Deployer.ImgDir, h.Env.ImageName)
	if err != nil {
		t.Fatal(err)
	}
	format := cmp.Or(h.Env.ImageFormat, image.FormatOf(h.Env.ImageName)) // as env_copy reads it
	if _, err := image.BlockSums(context.Background(), path, format, sum); err != nil {
		t.Fatalf("%s against the raw image %s: %v", path, h.Lab.Desc.Image.Img, err)
	}

	// Garbage over the image's extent and beyond, where the root partition grows.
	garbage = make([]byte, len(raw)+32<<20)
	rand.NewChaCha8([32]byte{'g', 'a', 'r', 'b', 'a', 'g', 'e'}).Read(garbage)
	if err := writeSynced(nd.Card, garbage); err != nil {
		t.Fatal(err)
	}
	// The loop device's own cache may still hold the blank card.
	if out, err := exec.Command("blockdev", "--flushbufs", nd.LoopDev).CombinedOutput(); err != nil {
		t.Fatalf("blockdev --flushbufs %s: %v: %s", nd.LoopDev, err, out)
	}

	ds := h.Deploy(h.Nodes, deploytest.Request{SizeMiB: 100})
	h.RunUntil(ds, 5*time.Minute, process.Deployed) // 1m10s seen at load average 10
	select {
	case msg := <-seen:
		if msg != "" {
			t.Fatal(msg)
		}
	default:
		t.Fatal("partition ran without the card being looked at")
	}
	boots, err := nd.Boots()
	if err != nil || len(boots) == 0 || boots[len(boots)-1].Mode != "card" {
		t.Fatalf("%s did not boot from its card last: %v %v", n.Name, boots, err)
	}

	if err := h.Store.RequestProcess(context.Background(), ds[0].ID, process.Destroy); err != nil {
		t.Fatal(err)
	}
	h.RunUntil(ds, time.Minute, process.Destroyed)
	if !nd.WaitCardReleased(time.Minute) {
		t.Fatalf("%s: its card's file systems are still mounted a minute after it was powered off", n.Name)
	}
	out, err := fsckCard(nd.Card, t.TempDir())
	if err != nil {
		t.Fatalf("the deployed card: %v", err)
	}
	t.Logf("the deployed card's file systems are clean:\n%s", out)
}

// checkSparseCard looks at the card of task's node after env_check: the copy wrote only some
// ranges, the card equals the image raw over them and still holds garbage elsewhere. It says
// what is wrong, "" if nothing.
func checkSparseCard(h *deploytest.Harness, task *engine.Task, raw, garbage []byte, tmp string) string {
	data, err := engine.Data[process.DeployData](task)
	if err != nil {
		return err.Error()
	}
	size := int64(len(raw))
	if data.Size != size {
		return fmt.Sprintf("the copy recorded %d bytes, the image has %d", data.Size, size)
	}
	w := data.Written
	if !usedmap.Valid(w, size) || usedmap.Bytes(w) >= size {
		return fmt.Sprintf("the copy did not write the used ranges alone: %v", w)
	}
	card, err := os.Open(h.Lab.Desc.Node(task.D.Node.Name).Card)
	if err != nil {
		return err.Error()
	}
	defer card.Close()
	got := make([]byte, size)
	if _, err := io.ReadFull(card, got); err != nil {
		return fmt.Sprintf("reading the card: %v", err)
	}
	var unwritten int64
	pos := int64(0)
	for _, r := range append(w, usedmap.Range{Start: size, End: size}) {
		if !bytes.Equal(got[pos:r.Start], garbage[pos:r.Start]) {
			return fmt.Sprintf("bytes %d to %d, not in a used range, were written", pos, r.Start)
		}
		unwritten += r.Start - pos
		if i := mismatch(got[r.Start:r.End], raw[r.Start:r.End]); i >= 0 {
			return fmt.Sprintf("the card differs from the image at byte %d, in the used range %d to %d", r.Start+int64(i), r.Start, r.End)
		}
		pos = r.End
	}
	// As the copy left them, before partition's e2fsck -y could mend anything.
	out, err := fsckCard(card.Name(), tmp)
	if err != nil {
		return fmt.Sprintf("the card as copied: %v", err)
	}
	task.Log.Info("test: the card holds the image's used ranges, its garbage elsewhere, and clean file systems",
		"written", usedmap.Bytes(w), "ranges", len(w), "unwritten", unwritten, "fsck", out)
	return ""
}

// mismatch is the first index where a and b (of one length) differ, -1 if nowhere.
func mismatch(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fsckCard checks read-only the file systems of a card file, which no one may have mounted:
// its first partition with fsck.vfat -n (on a copy in dir: it reads a whole file), its
// second with e2fsck -fn. It returns their output; an error if either found anything.
func fsckCard(card, dir string) (string, error) {
	layout, err := image.LayoutOf(card, image.Raw)
	if err != nil || len(layout.Partitions) < 2 {
		return "", fmt.Errorf("the card's partitions: %+v, %v", layout, err)
	}
	boot, root := layout.Partitions[0], layout.Partitions[1]
	f, err := os.Open(card)
	if err != nil {
		return "", err
	}
	defer f.Close()
	part := filepath.Join(dir, "boot.vfat")
	w, err := os.Create(part)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(w, io.NewSectionReader(f, boot.Start*image.SectorSize, boot.Sectors*image.SectorSize))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	var all []string
	for _, c := range [][]string{{"fsck.vfat", "-n", part}, {"e2fsck", "-fn", fmt.Sprintf("%s?offset=%d", card, root.Start*image.SectorSize)}} {
		out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s: %v:\n%s", strings.Join(c, " "), err, out)
		}
		all = append(all, strings.Join(c, " ")+":\n"+string(bytes.TrimSpace(out)))
	}
	return strings.Join(all, "\n"), nil
}
