package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/store"
)

// environmentInput is the environment form.
type environmentInput struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	Description  string `json:"description"`
	ImageName    string `json:"image_name"`
	ImageSize    int64  `json:"image_size"`
	ImageFormat  string `json:"image_format"`
	ImageSHA256  string `json:"image_sha256"`
	DecompressOn string `json:"decompress_on"`
	SectorStart  int64  `json:"sector_start"`
	SSHUser      string `json:"ssh_user"`
	Shell        string `json:"shell"`
	OSFamily     string `json:"os_family"` // "": plain
	Web          bool   `json:"web"`
	ScriptTest   string `json:"script_test"`
}

// apply writes in over e; the store validates the result.
func (in environmentInput) apply(e *store.Environment) {
	e.Name, e.Type, e.Description, e.ImageName, e.ImageSize = in.Name, in.Type, strings.ReplaceAll(in.Description, "\r\n", "\n"), in.ImageName, in.ImageSize
	e.ImageFormat, e.ImageSHA256, e.DecompressOn, e.SectorStart = in.ImageFormat, in.ImageSHA256, in.DecompressOn, in.SectorStart
	e.SSHUser, e.Shell, e.Web, e.ScriptTest = in.SSHUser, in.Shell, in.Web, strings.ReplaceAll(in.ScriptTest, "\r\n", "\n")
	e.OSFamily = in.OSFamily
}

func (s *Server) showAdminEnvironments(c echo.Context) error {
	es, err := s.store.Environments(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_environments", &page{Title: "Environments", Nav: "admin", Data: es})
}

type environmentFormData struct {
	Form     environmentInput
	ID       uint
	Types    []string
	Formats  []string
	Families []string
}

func (s *Server) environmentFormPage(c echo.Context, code int, d environmentFormData, msg string) error {
	d.Types, d.Formats, d.Families = store.EnvTypes(), store.ImageFormats(), image.Families()
	return s.render(c, code, "admin_environment_form", &page{Title: "Environment", Nav: "admin", Error: msg, Data: d})
}

func environmentForm(e *store.Environment) environmentInput {
	return environmentInput{Name: e.Name, Type: e.Type, Description: e.Description, ImageName: e.ImageName,
		ImageSize: e.ImageSize, ImageFormat: e.ImageFormat, ImageSHA256: e.ImageSHA256, DecompressOn: e.DecompressOn,
		SectorStart: e.SectorStart, SSHUser: e.SSHUser, Shell: e.Shell, OSFamily: e.OSFamily, Web: e.Web, ScriptTest: e.ScriptTest}
}

func (s *Server) showEnvironmentForm(c echo.Context) error {
	d := environmentFormData{Form: environmentInput{Type: store.EnvDefault, SSHUser: "root", Shell: "bash", ImageFormat: "gz", SectorStart: 532480}}
	if c.Param("id") != "" {
		e, err := byID(c, s.store.Environment)
		if err != nil {
			return err
		}
		d.ID, d.Form = e.ID, environmentForm(e)
	}
	return s.environmentFormPage(c, http.StatusOK, d, "")
}

func (s *Server) saveEnvironment(c echo.Context) error {
	ctx := c.Request().Context()
	e, err := formRecord(c, s.store.Environment)
	if err != nil {
		return err
	}
	atoi := func(k string) int64 { n, _ := strconv.ParseInt(strings.TrimSpace(c.FormValue(k)), 10, 64); return n }
	in := environmentInput{Name: strings.TrimSpace(c.FormValue("name")), Type: c.FormValue("type"),
		Description: c.FormValue("description"), ImageName: strings.TrimSpace(c.FormValue("image_name")),
		ImageSize: atoi("image_size"), ImageFormat: c.FormValue("image_format"), ImageSHA256: c.FormValue("image_sha256"),
		DecompressOn: c.FormValue("decompress_on"), SectorStart: atoi("sector_start"),
		SSHUser: strings.TrimSpace(c.FormValue("ssh_user")), Shell: strings.TrimSpace(c.FormValue("shell")),
		OSFamily: c.FormValue("os_family"), Web: c.FormValue("web") == "true", ScriptTest: c.FormValue("script_test")}
	in.apply(e)
	if _, err = createOrUpdate(ctx, e.ID == 0, e, s.store.CreateEnvironment, s.store.UpdateEnvironment); err != nil {
		msg, code, ok := userMessage(err)
		if !ok {
			return err
		}
		return s.environmentFormPage(c, code, environmentFormData{Form: in, ID: e.ID}, msg)
	}
	return s.redirect(c, "/admin/environments", "Environment "+e.Name+" saved.")
}

func (s *Server) deleteEnvironment(c echo.Context) error {
	return s.deleteByID(c, s.store.DeleteEnvironment, "/admin/environments", "Environment deleted.")
}
