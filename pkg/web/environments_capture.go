package web

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

// saveAsEnvironment is the owner's "save as environment" button: pitasks reboots the node into
// the NFS system, copies its card into a new environment of theirs, and boots it again.
func (s *Server) saveAsEnvironment(c echo.Context) error {
	d, err := s.paramDeployment(c, false)
	if err != nil {
		return err
	}
	back := "/deployments/" + strconv.Itoa(int(d.ID))
	name := strings.TrimSpace(c.FormValue("name"))
	desc := strings.TrimSpace(strings.ReplaceAll(c.FormValue("description"), "\r\n", "\n"))
	if r := process.Allowed(d.Situation(s.now()), process.ActSave); r != nil {
		return s.redirectError(c, back, r.Reason)
	}
	if len(desc) > store.MaxDescription {
		return s.redirectError(c, back, fmt.Sprintf("The description may have at most %d characters.", store.MaxDescription))
	}
	if err := s.store.RequestCapture(c.Request().Context(), d.ID, name, desc); err != nil {
		return s.redirectUserError(c, back, err)
	}
	s.log.Info("capture requested", "user", currentUser(c).ID, "deployment", d.ID, "environment", name)
	return s.redirect(c, back, d.Node.Name+": saving its card as environment "+name+"; the node reboots twice.")
}

// Registering an image that is already in img_dir (copied there by the admin, e.g. with scp):
// it is measured in the request, at most registerTimeout long and registerMaxFile big; larger
// or slower images are registered with "pitasks env-register".
const (
	registerTimeout = 40 * time.Second
	registerMaxFile = 8 << 30
)

type registerData struct {
	Form    environmentInput
	Files   []string
	Types   []string
	ImgDir  string
	Timeout time.Duration
}

// imageCandidates lists the image files in img_dir no environment uses yet.
func (s *Server) imageCandidates(ctx context.Context) []string {
	ents, err := os.ReadDir(s.cfg.Cluster.ImgDir)
	if err != nil {
		return nil
	}
	used := map[string]bool{}
	if es, err := s.store.Environments(ctx); err == nil {
		for _, e := range es {
			used[e.ImageName] = true
		}
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && !used[e.Name()] && image.CheckName(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	if len(out) > 500 {
		out = out[:500]
	}
	return out
}

func (s *Server) registerPage(c echo.Context, code int, in environmentInput, msg string) error {
	d := registerData{Form: in, Files: s.imageCandidates(c.Request().Context()), Types: store.EnvTypes(),
		ImgDir: s.cfg.Cluster.ImgDir, Timeout: registerTimeout}
	return s.render(c, code, "admin_environment_register", &page{Title: "Register an image", Nav: "admin", Error: msg, Data: d})
}

func (s *Server) showRegisterEnvironment(c echo.Context) error {
	return s.registerPage(c, http.StatusOK, environmentInput{Type: store.EnvDefault, SSHUser: "pi", Shell: "bash", DecompressOn: "node"}, "")
}

// registerEnvironment measures an image file of img_dir (format, size, sha256, where its root
// partition starts, its OS family and name) and records the environment.
func (s *Server) registerEnvironment(c echo.Context) error {
	in := environmentInput{Name: strings.TrimSpace(c.FormValue("name")), Type: c.FormValue("type"),
		Description: c.FormValue("description"), ImageName: strings.TrimSpace(c.FormValue("image_name")),
		DecompressOn: c.FormValue("decompress_on"), SSHUser: strings.TrimSpace(c.FormValue("ssh_user")),
		Shell: strings.TrimSpace(c.FormValue("shell")), Web: c.FormValue("web") == "true"}
	fail := func(err error) error {
		msg, code, ok := userMessage(err)
		if !ok {
			return err
		}
		return s.registerPage(c, code, in, msg)
	}
	var e store.Environment
	in.apply(&e)
	if e.DecompressOn == "" {
		e.DecompressOn = "node"
	}
	ctx := c.Request().Context()
	if e.ImageName == "" {
		return fail(badInput("Choose the image file to register."))
	}
	if err := s.store.CheckEnvironment(ctx, &e); err != nil { // every field but what measuring gives
		return fail(err)
	}
	path, err := image.Locate(s.cfg.Cluster.ImgDir, e.ImageName)
	if err != nil {
		return fail(badInput("This image cannot be registered: %s.", strings.TrimPrefix(err.Error(), "image: ")))
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() > registerMaxFile {
		return fail(badInput("This image is too big to be measured here: register it with pitasks env-register."))
	}
	mctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	info, osInfo, err := image.ExamineOS(mctx, path, "") // its partitions spill into the temporary folder
	switch {
	case ctx.Err() != nil:
		s.log.Info("image measuring stopped: the request was cancelled", "file", e.ImageName)
		return fail(badInput("Measuring stopped: the request was cancelled."))
	case mctx.Err() != nil:
		return fail(badInput("Measuring this image takes too long here: register it with pitasks env-register."))
	case err != nil:
		s.log.Warn("image refused", "file", e.ImageName, "err", err)
		return fail(badInput("This file is not a disk image PiSeduce can deploy: %s.", strings.TrimPrefix(err.Error(), "image: ")))
	}
	if _, ok := info.Layout.Root(); !ok {
		return fail(badInput("This image has no Linux (0x83) root partition."))
	}
	e.ImageFormat, e.ImageSize, e.ImageSHA256, e.SectorStart = info.Format, info.Size, info.SHA256, info.Layout.RootStart
	e.OSFamily = osInfo.Family
	if e.Description == "" {
		e.Description = osInfo.Name
	}
	if err := s.store.CreateEnvironment(ctx, &e); err != nil {
		return fail(err)
	}
	s.log.Info("environment registered", "admin", currentUser(c).ID, "environment", e.Name, "file", e.ImageName,
		"format", e.ImageFormat, "bytes", e.ImageSize)
	return s.redirect(c, "/admin/environments", "Environment "+e.Name+" registered: "+e.ImageFormat+", "+
		strconv.FormatInt(e.ImageSize, 10)+" bytes, root partition at sector "+strconv.FormatInt(e.SectorStart, 10)+
		", OS family "+e.OSFamily+" ("+osInfo.Why+").")
}
