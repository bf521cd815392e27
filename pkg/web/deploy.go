package web

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

type deployData struct {
	Reservation  *store.Reservation
	Environments []store.Environment
	Sizes        []sizeChoice
	Form         deployInput
	MaxScriptKiB int
}

func (s *Server) deployData(c echo.Context) (*deployData, error) {
	r, err := s.paramReservation(c, false)
	if err != nil {
		return nil, err
	}
	u := currentUser(c)
	envs, err := s.store.VisibleEnvironments(c.Request().Context(), u.ID, u.Admin)
	if err != nil {
		return nil, err
	}
	d := &deployData{Reservation: r, Environments: envs, Sizes: systemSizes, MaxScriptKiB: maxInitScript >> 10,
		Form: deployInput{Name: "deployment-" + strconv.Itoa(int(r.ID))}}
	if len(envs) > 0 {
		d.Form.EnvironmentID = envs[0].ID
	}
	return d, nil
}

// showDeploy is the deploy form of one reservation: its settings go to all its nodes.
func (s *Server) showDeploy(c echo.Context) error {
	d, err := s.deployData(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "deploy", &page{Title: "Deploy", Nav: "deployments", Data: d})
}

func (s *Server) saveDeploy(c echo.Context) error {
	d, err := s.deployData(c)
	if err != nil {
		return err
	}
	envID, _ := strconv.ParseUint(c.FormValue("environment"), 10, 32)
	size, _ := strconv.ParseInt(c.FormValue("system_size"), 10, 64)
	d.Form = deployInput{Name: c.FormValue("name"), EnvironmentID: uint(envID), OSUpdate: c.FormValue("os_update") == "true",
		SystemSize: size, Password: c.FormValue("os_password"), PublicKey: c.FormValue("public_key"),
		InitScript: c.FormValue("init_script")}
	ds, err := s.deploy(c.Request().Context(), currentUser(c), d.Reservation, d.Form)
	if err != nil {
		msg, code, ok := userMessage(err)
		if !ok {
			return err
		}
		d.Form.Password = ""
		return s.render(c, code, "deploy", &page{Title: "Deploy", Nav: "deployments", Error: msg, Data: d})
	}
	return s.redirect(c, "/deployments", "Deploying "+plural(len(ds), "node")+". Follow the progress below.")
}
