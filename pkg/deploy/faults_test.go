package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/pkg/deploy/deploytest"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/store"
)

// TestFaultsOnTheLab deploys four nodes at once, each with its own trouble: a node that hangs
// at its first boot, one that never boots, a power cut in the middle of the image copy, and a
// truncated image.
func TestFaultsOnTheLab(t *testing.T) {
	h := deploytest.Start(t, lab.Options{Nodes: 4})
	desc := h.Lab.Desc

	// The raw image, inflated by the pimaster: 76 MiB at the Pi 3B+'s 10 MB/s, time enough to
	// cut the power in the middle.
	raw := store.Environment{Name: "raw", Type: store.EnvDefault, ImageName: filepath.Base(desc.Image.Img),
		ImageFormat: image.Raw, DecompressOn: "pimaster", SSHUser: lab.ImageUser, Shell: "bash"}
	// A truncated copy of the compressed image.
	gz, err := os.ReadFile(desc.Image.Gz)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(filepath.Dir(desc.Image.Gz), "truncated.img.gz")
	if err := os.WriteFile(short, gz[:len(gz)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	broken := store.Environment{Name: "broken", Type: store.EnvDefault, ImageName: "truncated.img.gz",
		ImageFormat: image.Gzip, SSHUser: lab.ImageUser, Shell: "bash"}
	for _, e := range []*store.Environment{&raw, &broken} {
		if err := h.Store.DB.Create(e).Error; err != nil {
			t.Fatal(err)
		}
	}
	hangOnce, dead, cut, trunc := h.Nodes[0], h.Nodes[1], h.Nodes[2], h.Nodes[3]
	if err := h.Lab.InjectFault(hangOnce.Name, lab.FaultHangOnce); err != nil {
		t.Fatal(err)
	}
	if err := h.Lab.InjectFault(dead.Name, lab.FaultHang); err != nil {
		t.Fatal(err)
	}
	ds := h.Deploy([]store.Node{hangOnce, dead}, deploytest.Request{})
	ds = append(ds, h.Deploy([]store.Node{cut}, deploytest.Request{Env: &raw})...)
	ds = append(ds, h.Deploy([]store.Node{trunc}, deploytest.Request{Env: &broken})...)

	// Cut the power of one node while its image is on the way, once.
	cutDone := make(chan float64, 1)
	go func() {
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var d store.Deployment
			if h.Store.DB.First(&d, ds[2].ID).Error != nil || d.State != "env_copy" || d.BytesTotal == 0 {
				continue
			}
			if frac := float64(d.BytesDone) / float64(d.BytesTotal); frac > 0.2 {
				h.Lab.Switch().SetPort(cut.Port, false)
				time.Sleep(300 * time.Millisecond)
				h.Lab.Switch().SetPort(cut.Port, true)
				cutDone <- frac
				return
			}
		}
		close(cutDone)
	}()

	end := h.WaitEnd(ds, 4*time.Minute)
	frac, ok := <-cutDone
	if !ok {
		t.Fatal("the copy was never seen in progress: no power cut happened")
	}
	t.Logf("power cut at %.0f%% of the copy", frac*100)

	outcomes := func(id uint, state string) []string {
		var out []string
		for _, ev := range h.Events(id) {
			if ev.State == state {
				out = append(out, ev.Outcome)
			}
		}
		return out
	}
	if d := end[ds[0].ID]; d.State != "deployed" {
		t.Errorf("%s (hangs once): %s, %s", hangOnce.Name, d.State, d.LastError)
	} else if got := outcomes(ds[0].ID, "ssh_nfs"); strings.Join(got, ",") != "reboot,done" {
		t.Errorf("%s: ssh_nfs outcomes %v, want a hard reboot then done", hangOnce.Name, got)
	}
	if d := end[ds[1].ID]; d.State != store.StateLost || d.ResumeState != "ssh_nfs" || !strings.Contains(d.LastError, "no progress in ssh_nfs") {
		t.Errorf("%s (never boots): %s in %s, %q", dead.Name, d.State, d.ResumeState, d.LastError)
	} else if got := outcomes(ds[1].ID, "ssh_nfs"); strings.Join(got, ",") != "reboot,lost" {
		t.Errorf("%s: ssh_nfs outcomes %v, want reboot then lost", dead.Name, got)
	}
	if d := end[ds[2].ID]; d.State != "deployed" {
		t.Errorf("%s (power cut): %s, %s", cut.Name, d.State, d.LastError)
	} else if got := outcomes(ds[2].ID, "env_copy"); len(got) < 2 || got[0] != "retry" || got[len(got)-1] != "done" {
		t.Errorf("%s: env_copy outcomes %v, want a failed attempt then done", cut.Name, got)
	}
	if d := end[ds[3].ID]; d.State != store.StateFailed || !strings.Contains(d.LastError, "truncated or corrupt") {
		t.Errorf("%s (truncated image): %s, %q", trunc.Name, d.State, d.LastError)
	} else {
		t.Logf("truncated image: %s", d.LastError)
	}
}
