package deploy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/process"
)

// TestFakeCardFailsTheCheck deploys a good card and a fake-capacity one, which stores only its
// first 48 MiB of the 76 MiB image and wraps the rest over it, silently, as cheap fake cards
// do: the copy goes through on both, and env_check, reading back a sample of the card, fails
// the fake one, saying where, while the good card deploys.
func TestFakeCardFailsTheCheck(t *testing.T) {
	h := deploytest.Start(t, lab.Options{Nodes: 2, Specs: []lab.NodeSpec{{}, {FakeCardMiB: 48}}})
	good, fake := h.Nodes[0], h.Nodes[1]
	t0 := time.Now()
	ds := h.Deploy(h.Nodes, deploytest.Request{SizeMiB: 100})
	end := h.WaitEnd(ds, 8*time.Minute) // generous: 3m14s seen at load average 44
	t.Logf("both ended in %s", time.Since(t0).Round(100*time.Millisecond))
	if d := end[ds[0].ID]; d.State != process.Deployed {
		t.Errorf("%s (good card): %s in %s, %q", good.Name, d.State, d.ResumeState, d.LastError)
	}
	d := end[ds[1].ID]
	if d.State != process.Failed || d.ResumeState != process.EnvCheck || !strings.Contains(d.LastError, "the card does not hold the image: block at offset ") {
		t.Fatalf("%s (fake card): %s in %s, %q; want failed in env_check, the card not holding the image", fake.Name, d.State, d.ResumeState, d.LastError)
	}
	t.Logf("fake card: %s", d.LastError)
	var copied bool
	for _, ev := range h.Events(ds[1].ID) {
		copied = copied || (ev.State == process.EnvCopy && ev.Outcome == "done")
	}
	if !copied {
		t.Errorf("%s: the copy onto the fake card did not go through: the check proved nothing", fake.Name)
	}
}
