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
	// OneTime is the one-time password just given, shown once, in this answer only.
	OneTime *oneTimePassword
}

type oneTimePassword struct {
	User     *store.User
	Password string
}

func (s *Server) showAdminUsers(c echo.Context) error {
	return s.adminUsersPage(c, nil)
}

func (s *Server) adminUsersPage(c echo.Context, otp *oneTimePassword) error {
	ctx := c.Request().Context()
	if _, err := s.store.PurgeDeletedUsers(ctx); err != nil {
		s.log.Warn("purge deleted users", "err", err)
	}
	us, err := s.store.Users(ctx)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_users", &page{Title: "Users", Nav: "admin",
		Data: adminUsersData{Users: us, Me: currentUser(c).ID, OneTime: otp}})
}

// newOneTimePassword gives the user named by :id a random password that they must change at
// their next login; their sessions end and their API tokens are revoked. An admin changes
// their own password on the Account page.
func (s *Server) newOneTimePassword(c echo.Context) (*oneTimePassword, error) {
	id, err := paramID(c, "id")
	if err != nil {
		return nil, err
	}
	ctx := c.Request().Context()
	me := currentUser(c)
	u, err := s.store.User(ctx, id)
	if err != nil || u.IsDeleted() {
		return nil, store.ErrNotFound
	}
	if id == me.ID {
		return nil, conflict("Change your own password on your Account page.")
	}
	var pw, hash string
	var hashErr error
	if err := s.withHashing(c, func() { pw, hash, hashErr = auth.OneTimePassword() }); err != nil {
		return nil, err
	}
	if hashErr != nil {
		return nil, hashErr
	}
	if err := s.store.SetOneTimePassword(ctx, id, hash); err != nil {
		return nil, err
	}
	s.log.Info("one-time password given by admin: sessions ended, API tokens revoked", "admin", me.ID, "user", id)
	return &oneTimePassword{User: u, Password: pw}, nil
}

// giveOneTimePassword shows the new one-time password on the Users page, once (the answer is
// not cached; a reload asks to send the form again, which makes another password).
func (s *Server) giveOneTimePassword(c echo.Context) error {
	otp, err := s.newOneTimePassword(c)
	if err != nil {
		return s.redirectUserError(c, "/admin/users", err)
	}
	return s.adminUsersPage(c, otp)
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
