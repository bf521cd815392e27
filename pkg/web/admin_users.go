package web

import (
	"context"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

type adminUsersData struct {
	Users []store.User
	Me    uint
}

func (s *Server) showAdminUsers(c echo.Context) error {
	ctx := c.Request().Context()
	if _, err := s.store.PurgeDeletedUsers(ctx); err != nil {
		s.log.Warn("purge deleted users", "err", err)
	}
	us, err := s.store.Users(ctx)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_users", &page{Title: "Users", Nav: "admin", Data: adminUsersData{Users: us, Me: currentUser(c).ID}})
}

// userAction applies an admin's decision to the user named by :id; it returns the message to show.
func (s *Server) userAction(c echo.Context, action string) (string, error) {
	id, err := paramID(c, "id")
	if err != nil {
		return "", err
	}
	ctx := c.Request().Context()
	me := currentUser(c)
	u, err := s.store.User(ctx, id)
	if err != nil || u.IsDeleted() {
		return "", store.ErrNotFound
	}
	if id == me.ID && (action == "revoke" || action == "delete") {
		return "", conflict("You cannot %s your own account.", action)
	}
	var msg string
	switch action {
	case "approve":
		err = s.store.SetUserAuthorized(ctx, id, true)
		msg = u.DisplayName() + " can now log in."
		if err == nil && !u.Authorized {
			s.notifyApproved(ctx, u)
		}
	case "revoke":
		err = s.store.SetUserAuthorized(ctx, id, false)
		msg = u.DisplayName() + " can no longer log in."
	case "admin":
		err = s.store.SetUserAdmin(ctx, id, true)
		msg = u.DisplayName() + " is now an admin."
	case "unadmin":
		err = s.store.SetUserAdmin(ctx, id, false)
		msg = u.DisplayName() + " is no longer an admin."
	case "delete":
		var deleted bool
		deleted, err = s.store.DeleteUser(ctx, id, s.now())
		msg = u.DisplayName() + " is deleted."
		if !deleted {
			msg = u.DisplayName() + " is deleted; their nodes are being destroyed."
		}
	default:
		return "", echo.ErrNotFound
	}
	if err != nil {
		return "", err
	}
	s.log.Info("user changed by admin", "admin", me.ID, "user", id, "action", action)
	return msg, nil
}

// notifyApproved tells the user by e-mail, when e-mail is configured; a failure is only logged.
func (s *Server) notifyApproved(ctx context.Context, u *store.User) {
	st, err := s.settings(ctx)
	if err != nil || !st.SMTP.Configured() {
		return
	}
	link := strings.TrimRight(s.cfg.Frontend.PublicAddress, "/") + "/login"
	err = s.mailer.Send(ctx, st.SMTP, auth.Message{To: u.Email, Subject: "Your PiSeduce account is approved",
		Body: "Hello " + u.FirstName + ",\n\nan admin approved your account. You can log in at:\n\n" + link + "\n"})
	if err != nil {
		s.log.Warn("approval e-mail failed", "user", u.ID, "err", err)
	}
}

func (s *Server) adminUserPage(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		msg, err := s.userAction(c, action)
		if err != nil {
			return s.redirectUserError(c, "/admin/users", err)
		}
		return s.redirect(c, "/admin/users", msg)
	}
}

func (s *Server) approveUser(c echo.Context) error { return s.adminUserPage("approve")(c) }
func (s *Server) revokeUser(c echo.Context) error  { return s.adminUserPage("revoke")(c) }
func (s *Server) makeAdmin(c echo.Context) error   { return s.adminUserPage("admin")(c) }
func (s *Server) unmakeAdmin(c echo.Context) error { return s.adminUserPage("unadmin")(c) }
func (s *Server) deleteUser(c echo.Context) error  { return s.adminUserPage("delete")(c) }
