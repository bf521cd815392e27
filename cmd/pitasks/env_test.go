package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/pkg/clusterdesc"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
	"github.com/piseduce/piseduce/pkg/units"
	"github.com/piseduce/piseduce/pkg/usedmap"
)

func TestEnvRegisterAndExport(t *testing.T) {
	testenv.NeedCommand(t, "sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs", "gzip", "zstd", "xz", "openssl")
	ctx := context.Background()
	im, err := lab.BuildImage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(im.Img)
	sum := sha256.Sum256(raw)
	st := storetest.Open(t, "sqlite")
	imgDir := t.TempDir()
	var out bytes.Buffer

	// Copied into img_dir.
	err = envRegisterCmd(ctx, st, imgDir, []string{"-name", "pilab", "-ssh-user", "pi", "-desc", "line 1\nline 2", im.Zst}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	e, err := st.EnvironmentByName(ctx, "pilab")
	if err != nil {
		t.Fatal(err)
	}
	if e.ImageName != filepath.Base(im.Zst) || e.ImageFormat != image.Zstd || e.ImageSize != lab.ImageSize ||
		e.ImageSHA256 != hex.EncodeToString(sum[:]) || e.SectorStart != lab.ImageRootStart || e.Type != store.EnvDefault ||
		e.SSHUser != "pi" || e.Shell != "bash" || e.DecompressOn != "node" || e.OSFamily != image.FamilyPlain {
		t.Errorf("registered %+v", e)
	}
	if want := fmt.Sprintf("%s (%d bytes) uncompressed", units.Bytes(lab.ImageSize), lab.ImageSize); !strings.Contains(out.String(), want) {
		t.Errorf("the size is not said as on the web (%s):\n%s", want, out.String())
	}
	if _, err := os.Stat(filepath.Join(imgDir, e.ImageName)); err != nil {
		t.Errorf("not copied into img_dir: %v", err)
	}
	if _, err := os.Stat(im.Zst); err != nil {
		t.Errorf("the source was not kept: %v", err)
	}
	// Its measure was kept for the copy: the first deployment is sent sparse, the file not
	// measured again.
	var used []usedmap.Range
	if _, err := image.Send(ctx, filepath.Join(imgDir, e.ImageName), e.ImageFormat, false, image.Sum{Size: e.ImageSize, SHA256: e.ImageSHA256},
		func(r io.Reader, u []usedmap.Range) (string, error) {
			used = u
			_, err := io.Copy(io.Discard, r)
			return e.ImageSHA256, err // the node's hash: the image's, as measured
		}, nil); err != nil || !usedmap.Valid(used, e.ImageSize) {
		t.Errorf("the first copy from img_dir: %v, used ranges %v; want the registration's", err, used)
	}
	// The family is measured (Raspberry Pi OS: init= in cmdline.txt), and the description is
	// the image's os-release name unless one is given; -family overrides the measure.
	rpi, err := lab.BuildFamilyImage(t.TempDir(), lab.ImageRaspiOS)
	if err != nil {
		t.Fatal(err)
	}
	if err := envRegisterCmd(ctx, st, imgDir, []string{"-name", "rpi", "-ssh-user", "pi", rpi.Xz}, &out); err != nil {
		t.Fatal(err)
	}
	if e, _ := st.EnvironmentByName(ctx, "rpi"); e == nil || e.OSFamily != image.FamilyFirstboot ||
		e.Description != "Raspbian GNU/Linux 12 (bookworm)" || e.ImageFormat != image.XZ {
		t.Errorf("measured family: %+v", e)
	}
	if err := envRegisterCmd(ctx, st, imgDir, []string{"-name", "rpi-plain", "-ssh-user", "pi", "-family", "plain", rpi.Gz}, &out); err != nil {
		t.Fatal(err)
	}
	if e, _ := st.EnvironmentByName(ctx, "rpi-plain"); e == nil || e.OSFamily != image.FamilyPlain {
		t.Errorf("-family plain: %+v", e)
	}
	// A file already in img_dir stays; a taken name or a bad field is refused.
	inDir := filepath.Join(imgDir, "raw-copy.img")
	os.WriteFile(inDir, raw, 0o644)
	if err := envRegisterCmd(ctx, st, imgDir, []string{"-name", "pilab-raw", "-ssh-user", "pi", "-type", "hidden", inDir}, &out); err != nil {
		t.Fatal(err)
	}
	if e, _ := st.EnvironmentByName(ctx, "pilab-raw"); e == nil || e.ImageFormat != image.Raw || e.ImageName != "raw-copy.img" {
		t.Errorf("raw in img_dir: %+v", e)
	}
	for _, args := range [][]string{
		{"-name", "pilab", "-ssh-user", "pi", im.Gz},
		{"-name", "bad/name", "-ssh-user", "pi", im.Gz},
		{"-name", "x", "-ssh-user", "pi; rm", im.Gz},
		{"-name", "x", "-ssh-user", "pi", "-type", "public", im.Gz},
		{"-name", "x", "-ssh-user", "pi", "-family", "windows", im.Gz},
		{"-name", "x", "-ssh-user", "pi", filepath.Join(t.TempDir(), "missing.img")},
		{"-name", "x", "-ssh-user", "pi"},
	} {
		if err := envRegisterCmd(ctx, st, imgDir, args, &out); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	// Same file name already in img_dir: never replaced.
	if err := envRegisterCmd(ctx, st, imgDir, []string{"-name", "other", "-ssh-user", "pi", im.Zst}, &out); err == nil ||
		!strings.Contains(err.Error(), "exists already") {
		t.Errorf("same file name: %v", err)
	}

	// Export, then import through a cluster_desc folder: the same environment.
	out.Reset()
	if err := envExportCmd(ctx, st, []string{"pilab"}, &out); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got["img_name"] != e.ImageName || got["sector_start"] != float64(lab.ImageRootStart) || got["type"] != "default" {
		t.Errorf("exported %s", out.String())
	}
	cd := t.TempDir()
	os.WriteFile(filepath.Join(cd, "main.json"), []byte(`{"pimaster": {"ip": "10.0.0.1", "user": "pi"}, "email_signup": false, "email_filters": []}`), 0o644)
	out.Reset()
	if err := envExportCmd(ctx, st, []string{"-o", cd, "pilab"}, &out); err != nil {
		t.Fatal(err)
	}
	d, err := clusterdesc.Read(cd)
	if err != nil {
		t.Fatal(err)
	}
	st2 := storetest.Open(t, "sqlite")
	if _, err := clusterdesc.Import(ctx, st2, d, imgDir); err != nil {
		t.Fatal(err)
	}
	e2, err := st2.EnvironmentByName(ctx, "pilab")
	if err != nil {
		t.Fatal(err)
	}
	if e2.ImageName != e.ImageName || e2.ImageSize != e.ImageSize || e2.SectorStart != e.SectorStart || e2.Description != e.Description ||
		e2.SSHUser != e.SSHUser || e2.Shell != e.Shell || e2.Type != e.Type || e2.ImageFormat != e.ImageFormat ||
		e2.OSFamily != e.OSFamily {
		t.Errorf("after export and import: %+v\nwant %+v", e2, e)
	}
	if err := envExportCmd(ctx, st, []string{"nope"}, &out); err == nil {
		t.Error("exported a missing environment")
	}
}
