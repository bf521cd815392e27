package web

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

func TestSaveAsEnvironmentButton(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	path := fmt.Sprintf("/deployments/%d", f.d1.ID)
	load := func(id uint) *store.Deployment {
		d, err := f.st.Deployment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	// The owner sees the button on a deployed node; another user or an admin does not.
	alice, bob, admin := f.as("user"), f.as("other"), f.as("admin")
	if body := alice.get(path).Body.String(); !strings.Contains(body, `action="`+path+`/save"`) {
		t.Error("the owner does not see the save button")
	}
	if body := admin.get(path).Body.String(); strings.Contains(body, `/save"`) {
		t.Error("an admin sees the owner's save button")
	}

	// Only the owner may press it.
	before := f.fingerprint()
	for name, b := range map[string]*browser{"other": bob, "admin": admin} {
		if res := b.post(path+"/save", url.Values{"name": {"stolen"}}); res.Code != http.StatusNotFound {
			t.Errorf("%s: status %d", name, res.Code)
		}
	}
	// Refused: a bad name, a taken name, a node that is not deployed.
	for _, name := range []string{"", "../etc", "zero\u200bwidth", strings.Repeat("x", 64), f.env.Name, strings.ToUpper(f.env.Name)} {
		if res := alice.post(path+"/save", url.Values{"name": {name}}); res.Code != http.StatusSeeOther {
			t.Errorf("%q: status %d", name, res.Code)
		}
	}
	if f.fingerprint() != before {
		t.Error("a refused save changed the database")
	}
	if err := storetest.DB(f.st).Model(&store.Deployment{}).Where("id = ?", f.d2.ID).Update("state", "env_copy").Error; err != nil {
		t.Fatal(err)
	}
	before = f.fingerprint()
	alice.post(fmt.Sprintf("/deployments/%d/save", f.d2.ID), url.Values{"name": {"mine"}})
	if f.fingerprint() != before {
		t.Error("a refused save changed the database")
	}
	if page := alice.get(fmt.Sprintf("/deployments/%d", f.d2.ID)).Body.String(); strings.Contains(page, `/save"`) {
		t.Error("the save button is shown on a node that is not deployed")
	}

	// Accepted.
	res := alice.post(path+"/save", url.Values{"name": {"my-env"}, "description": {"with my tools"}})
	if res.Code != http.StatusSeeOther {
		t.Fatalf("status %d: %s", res.Code, res.Body.String())
	}
	d := load(f.d1.ID)
	if d.Process != process.SaveEnv || d.State != "img_netboot" {
		t.Errorf("after the request: %s/%s", d.Process, d.State)
	}
	if d.CaptureName != "my-env" || d.CaptureDescription != "with my tools" || d.StepData != "" {
		t.Errorf("capture request %q %q, step data %q (the web writes none)", d.CaptureName, d.CaptureDescription, d.StepData)
	}
	if page := alice.get(path).Body.String(); !strings.Contains(page, "saving its card as environment my-env") {
		t.Error("no confirmation shown")
	}
	// While it runs, no second one.
	if err := f.st.RequestCapture(ctx, f.d1.ID, "again", ""); err == nil {
		t.Error("a second capture was accepted while the first one runs")
	}
}

func TestRegisterEnvironmentFromImgDir(t *testing.T) {
	testenv.NeedCommand(t, "sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs", "gzip", "zstd", "openssl")
	imgDir := t.TempDir()
	im, err := lab.BuildImage(imgDir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(imgDir, "notes.txt"), []byte("not an image"), 0o644)
	f := newFixture(t, func(c *config.Config) { c.Cluster.ImgDir = imgDir })
	admin := f.as("admin")
	page := admin.get("/admin/environments/register").Body.String()
	for _, name := range []string{"test-os.img.zst", "test-os.img.gz", "notes.txt"} {
		if !strings.Contains(page, ">"+name+"<") {
			t.Errorf("the form does not offer %s", name)
		}
	}
	form := func(name, file string) url.Values {
		return url.Values{"name": {name}, "type": {"default"}, "image_name": {file}, "ssh_user": {"pi"}, "shell": {"bash"},
			"description": {"lab image"}, "decompress_on": {"node"}}
	}
	before := f.fingerprint()
	for _, file := range []string{"notes.txt", "missing.img", "../etc/passwd"} {
		if res := admin.post("/admin/environments/register", form("bad", file)); res.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d", file, res.Code)
		}
	}
	if res := admin.post("/admin/environments/register", form(f.env.Name, filepath.Base(im.Zst))); res.Code != http.StatusConflict {
		t.Errorf("taken name: status %d", res.Code)
	}
	if f.fingerprint() != before {
		t.Error("a refused registration changed the database")
	}
	res := admin.post("/admin/environments/register", form("pilab", filepath.Base(im.Zst)))
	if res.Code != http.StatusSeeOther {
		t.Fatalf("status %d: %.500s", res.Code, res.Body.String())
	}
	e, err := f.st.EnvironmentByName(context.Background(), "pilab")
	if err != nil {
		t.Fatal(err)
	}
	want, err := image.Measure(context.Background(), im.Img, image.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if e.ImageFormat != image.Zstd || e.ImageSize != lab.ImageSize || e.ImageSHA256 != want.SHA256 ||
		e.SectorStart != lab.ImageRootStart || e.SSHUser != "pi" || e.Type != store.EnvDefault || e.Description != "lab image" ||
		e.OSFamily != image.FamilyPlain {
		t.Errorf("registered %+v", e)
	}
	// Registered files are no longer offered.
	if page := admin.get("/admin/environments/register").Body.String(); strings.Contains(page, ">test-os.img.zst<") {
		t.Error("a registered file is still offered")
	}
	// Users may not register.
	if res := f.as("user").post("/admin/environments/register", form("x", filepath.Base(im.Gz))); res.Code != http.StatusForbidden {
		t.Errorf("user: status %d", res.Code)
	}
}

// TestRegisterRefusesWhatIsNotAnImage: the image registered from the web is a regular file
// inside img_dir, and measuring it stops when the request is cancelled.
func TestRegisterRefusesWhatIsNotAnImage(t *testing.T) {
	root := t.TempDir()
	imgDir := filepath.Join(root, "img")
	os.Mkdir(imgDir, 0o755)
	os.WriteFile(filepath.Join(root, "secret.img"), []byte("outside"), 0o644)
	os.Symlink("../secret.img", filepath.Join(imgDir, "out.img"))
	os.Symlink("gone.img", filepath.Join(imgDir, "dangling.img"))
	if err := syscall.Mkfifo(filepath.Join(imgDir, "pipe.img"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *config.Config) { c.Cluster.ImgDir = imgDir })
	admin := f.as("admin")
	admin.get("/admin/environments/register")
	form := func(file string) url.Values {
		return url.Values{"name": {"x"}, "type": {"default"}, "image_name": {file}, "ssh_user": {"pi"}, "shell": {"bash"},
			"decompress_on": {"node"}, "csrf_token": {admin.csrf}}
	}
	before := f.fingerprint()
	for file, says := range map[string]string{
		"out.img":      "This image cannot be registered: out.img in img_dir " + imgDir + " is a symbolic link leading out of it",
		"dangling.img": "This image cannot be registered: dangling.img in img_dir " + imgDir + " is a symbolic link to nothing",
		"pipe.img":     "This image cannot be registered: pipe.img in img_dir " + imgDir + " is a FIFO, not a regular file",
	} {
		res := admin.post("/admin/environments/register", form(file))
		if body := html.UnescapeString(res.Body.String()); res.Code != http.StatusBadRequest || !strings.Contains(body, says) {
			t.Errorf("%s: status %d; want 400 saying %q", file, res.Code, says)
		}
	}

	// A large image, measured in a request that is cancelled: the measuring stops.
	big, err := os.Create(filepath.Join(imgDir, "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(registerMaxFile - 1); err != nil { // sparse: no disk space
		testenv.Need(t, false, "a file system with sparse files of 8 GiB ("+err.Error()+")")
	}
	big.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodPost, "/admin/environments/register", strings.NewReader(form("big.img").Encode())).WithContext(ctx)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- admin.do(req) }()
	time.Sleep(200 * time.Millisecond) // let it start reading; the test holds without it too
	cancel()
	select {
	case res := <-done:
		if !strings.Contains(res.Body.String(), "Measuring stopped: the request was cancelled.") {
			t.Errorf("status %d: %.300s", res.Code, res.Body.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("measuring went on a minute after the request was cancelled")
	}
	if f.fingerprint() != before {
		t.Error("a refused registration changed the database")
	}
}
