package deploy_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestCaptureAndRedeployOnTheLab saves a deployed node's card as a new environment (with a
// file the user wrote on it), and deploys that environment on another node: the file is
// there, the same.
func TestCaptureAndRedeployOnTheLab(t *testing.T) {
	h := deploytest.Start(t, lab.Options{Nodes: 2})
	ctx := context.Background()
	src, dst := h.Nodes[0], h.Nodes[1]
	const sizeMiB = 100
	ds := h.Deploy([]store.Node{src}, deploytest.Request{SizeMiB: sizeMiB})
	h.RunUntil(ds, 10*time.Minute, "deployed")

	// The user leaves a marker and a blob of random bytes on the node.
	b := make([]byte, 8)
	rand.Read(b)
	marker := "marker " + hex.EncodeToString(b)
	c, err := dialAs(h, src, lab.ImageUser, ssh.PublicKeys(h.UserKey))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := output(c, "echo '"+marker+"' > ~/marker.txt && head -c 3000000 /dev/urandom > ~/blob && sha256sum < ~/blob"); err != nil {
		t.Fatalf("writing the marker: %v %s", err, out)
	}
	blobSum, _ := output(c, "sha256sum < ~/blob")
	c.Close()

	if err := h.Store.RequestCapture(ctx, ds[0].ID, "captured-env", "saved by the test"); err != nil {
		t.Fatal(err)
	}
	if err := h.Store.RequestCapture(ctx, ds[0].ID, "other", ""); err == nil {
		t.Error("a second capture was accepted while the first one runs")
	}
	// Watch the copy's progress.
	seen := make(chan [2]int64, 1)
	go func() {
		var last [2]int64
		for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var d store.Deployment
			if storetest.DB(h.Store).First(&d, ds[0].ID).Error != nil {
				continue
			}
			if d.State == "img_copy" && d.BytesDone > 0 && d.BytesDone < d.BytesTotal && last[0] == 0 {
				last = [2]int64{d.BytesDone, d.BytesTotal}
			}
			if d.Process == process.SaveEnv && d.State == "deployed" {
				break
			}
		}
		seen <- last
	}()
	h.RunUntil(ds, 10*time.Minute, "deployed")
	d := h.Load(ds[0].ID)
	wantSize := int64(lab.ImageRootStart+sizeMiB*2048) * 512
	if d.Process != process.SaveEnv || d.BytesDone != wantSize || d.BytesTotal != wantSize {
		t.Errorf("after the capture: %s/%s, progress %d/%d, want %d", d.Process, d.State, d.BytesDone, d.BytesTotal, wantSize)
	}
	if mid := <-seen; mid[0] == 0 {
		t.Log("no intermediate progress seen (the copy was quick)")
	} else {
		t.Logf("progress seen in the middle of the copy: %d/%d", mid[0], mid[1])
	}

	env, err := h.Store.EnvironmentByName(ctx, "captured-env")
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != store.EnvUser || env.OwnerID != h.User.ID || env.SectorStart != lab.ImageRootStart ||
		env.ImageSize != wantSize || env.ImageFormat != image.Zstd || env.SSHUser != lab.ImageUser ||
		env.Description != "saved by the test" || !strings.HasPrefix(env.ImageName, "captured-env-") {
		t.Errorf("environment %+v", env)
	}
	path := filepath.Join(h.Deployer.ImgDir, env.ImageName)
	info, err := image.Examine(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != image.Zstd || info.Size != env.ImageSize || info.SHA256 != env.ImageSHA256 || info.Layout.RootStart != lab.ImageRootStart {
		t.Errorf("the image file: %+v", info)
	}
	fi, _ := os.Stat(path)
	t.Logf("captured %d card bytes into %s (%d bytes)", env.ImageSize, env.ImageName, fi.Size())
	if parts, _ := filepath.Glob(filepath.Join(h.Deployer.ImgDir, ".capture-*")); len(parts) > 0 {
		t.Errorf("left over: %v", parts)
	}
	// The user sees it among the environments they may deploy.
	vis, _ := h.Store.VisibleEnvironments(ctx, h.User.ID, false)
	found := false
	for _, e := range vis {
		found = found || e.ID == env.ID
	}
	if !found {
		t.Error("the owner does not see the captured environment")
	}

	// The source node is back on its card, unchanged.
	c, err = dialAs(h, src, lab.ImageUser, ssh.PublicKeys(h.UserKey))
	if err != nil {
		t.Fatalf("%s after the capture: %v", src.Name, err)
	}
	if got, _ := output(c, "cat ~/marker.txt; hostname"); got != marker+"\n"+src.Name {
		t.Errorf("%s after the capture: %q", src.Name, got)
	}
	c.Close()

	// Deploy it on another node.
	ds2 := h.Deploy([]store.Node{dst}, deploytest.Request{Env: env})
	h.RunUntil(ds2, 10*time.Minute, "deployed")
	c, err = dialAs(h, dst, lab.ImageUser, ssh.PublicKeys(h.UserKey))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Same content, not the same identity: the copy got SSH host keys of its own.
	k1, _, _ := h.Store.HostKey(ctx, remote.RoleSystem, src.ID)
	k2, _, _ := h.Store.HostKey(ctx, remote.RoleSystem, dst.ID)
	if k1 == "" || k1 == k2 {
		t.Errorf("%s presents %s's SSH host key", dst.Name, src.Name)
	}
	if got, _ := output(c, "cat ~/marker.txt"); got != marker {
		t.Errorf("%s: marker %q, want %q", dst.Name, got, marker)
	}
	if got, _ := output(c, "sha256sum < ~/blob"); got != blobSum || got == "" {
		t.Errorf("%s: blob sha256 %q, want %q", dst.Name, got, blobSum)
	}
	if got, _ := output(c, "hostname"); got != dst.Name {
		t.Errorf("%s: hostname %q", dst.Name, got)
	}
}
