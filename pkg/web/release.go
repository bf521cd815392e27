package web

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

// endedNoticeFor: how long "ended by an admin" stays on the holder's deployments page.
const endedNoticeFor = 7 * 24 * time.Hour

// adminEnd ends reservation id for reason (the page and the API): its holder sees the reason
// on their pages and, when mail is set up, gets it by e-mail (queued with the end; pitasks sends it).
func (s *Server) adminEnd(c echo.Context, id uint, reason string) error {
	switch reason = strings.TrimSpace(reason); {
	case reason == "":
		return badInput("Give a reason: the holder of the reservation sees it.")
	case utf8.RuneCountInString(reason) > store.MaxEndReason:
		return badInput("The reason must have at most %d characters.", store.MaxEndReason)
	}
	ctx := c.Request().Context()
	st, err := s.settings(ctx)
	if err != nil {
		return err
	}
	if err := s.store.AdminEndReservation(ctx, id, currentUser(c).ID, reason, s.now(), st.SMTP.Configured()); err != nil {
		return err
	}
	s.log.Info("reservation ended by an admin", "reservation", id, "admin", currentUser(c).ID)
	return nil
}

// adminEndReservation is the End button of the admin's "All deployments" page.
func (s *Server) adminEndReservation(c echo.Context) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	if err := s.adminEnd(c, id, c.FormValue("reason")); err != nil {
		return s.redirectUserError(c, "/admin/deployments", err)
	}
	return s.redirect(c, "/admin/deployments", fmt.Sprintf("Reservation #%d ended: its nodes are being destroyed, and its holder sees why.", id))
}

func (s *Server) apiAdminEndReservation(c echo.Context) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	if err := s.adminEnd(c, id, in.Reason); err != nil {
		return httpError(err)
	}
	return s.replyReservation(c, http.StatusOK, id)
}

// releaseOwnNode gives node :node of the visitor's reservation :id back now (the page and
// the API); someone else's reservation is not found.
func (s *Server) releaseOwnNode(c echo.Context) (*store.Reservation, error) {
	r, err := s.paramReservation(c, false)
	if err != nil {
		return nil, err
	}
	nodeID, err := paramID(c, "node")
	if err != nil {
		return nil, err
	}
	return r, s.store.ReleaseNode(c.Request().Context(), r.ID, nodeID, s.now())
}

// releaseNode is the Release button of a node on "My deployments".
func (s *Server) releaseNode(c echo.Context) error {
	r, err := s.releaseOwnNode(c)
	if r == nil {
		return err
	}
	if err != nil {
		return s.redirectUserError(c, "/deployments", err)
	}
	return s.redirect(c, "/deployments", "Node released: it is destroyed, then free for others; the rest of the reservation stays yours.")
}

func (s *Server) apiReleaseNode(c echo.Context) error {
	r, err := s.releaseOwnNode(c)
	if r == nil {
		return err
	}
	if err != nil {
		return httpError(err)
	}
	return s.replyReservation(c, http.StatusOK, r.ID)
}

// saveNotify turns the visitor's e-mail notifications on or off (the Account page).
func (s *Server) saveNotify(c echo.Context) error {
	on := c.FormValue("notify") == "true"
	if err := s.store.SetNotify(c.Request().Context(), currentUser(c).ID, on, s.now()); err != nil {
		return err
	}
	if on {
		return s.redirect(c, "/account", "You will be notified by e-mail.")
	}
	return s.redirect(c, "/account", "No more e-mail notifications.")
}
