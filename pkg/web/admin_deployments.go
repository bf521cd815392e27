package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// showAdminDeployments is every user's current reservations and deployments.
func (s *Server) showAdminDeployments(c echo.Context) error {
	d, err := s.deploymentsData(c, 0)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "deployments", &page{Title: "All deployments", Nav: "admin", Data: d})
}
