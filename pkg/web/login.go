package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

type loginData struct {
	Email string
	Next  string
}

// safeNext keeps only local paths as a place to go after login (no open redirect).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return ""
	}
	return next
}

func (s *Server) showLogin(c echo.Context) error {
	if vis(c).User != nil {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	return s.render(c, http.StatusOK, "login", &page{Title: "Log in", Data: loginData{Next: safeNext(c.QueryParam("next"))}})
}

// checkLogin logs in with e-mail and password. Failures are counted per address+e-mail and per
// e-mail; past the limit, even the right password is refused until the window passes.
func (s *Server) checkLogin(c echo.Context) error {
	ctx := c.Request().Context()
	email := store.NormalizeEmail(c.FormValue("email"))
	pw := c.FormValue("password")
	data := loginData{Email: email, Next: safeNext(c.FormValue("next"))}
	fail := func(code int, msg string) error {
		return s.render(c, code, "login", &page{Title: "Log in", Error: msg, Data: data})
	}
	now := s.now()
	ipKey := c.RealIP() + "|" + email
	if b, until := s.loginByIP.Blocked(ipKey, now); b {
		return fail(http.StatusTooManyRequests, fmt.Sprintf("Too many failed attempts. Try again in %s.", humanDuration(until.Sub(now))))
	}
	if b, until := s.loginByEmail.Blocked(email, now); b {
		return fail(http.StatusTooManyRequests, fmt.Sprintf("Too many failed attempts. Try again in %s.", humanDuration(until.Sub(now))))
	}
	u, err := s.store.UserByEmail(ctx, email)
	hash := ""
	switch {
	case err == nil:
		hash = u.PasswordHash
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if !auth.CheckPassword(hash, pw) {
		s.loginByIP.Fail(ipKey, now)
		s.loginByEmail.Fail(email, now)
		return fail(http.StatusUnauthorized, "Wrong e-mail or password.")
	}
	switch {
	case u.IsDeleted():
		return fail(http.StatusUnauthorized, "Wrong e-mail or password.")
	case !u.EmailConfirmed:
		return fail(http.StatusForbidden, "Please confirm your e-mail address first: open the link we sent you.")
	case !u.Authorized:
		return fail(http.StatusForbidden, "Your account is waiting for an admin's approval.")
	}
	s.loginByIP.Reset(ipKey)
	if old := s.cookie(c, sessionCookie); old != "" {
		_ = s.store.DeleteSession(ctx, auth.HashToken(old))
	}
	tok := auth.NewToken("")
	se := &store.Session{Hash: auth.HashToken(tok), UserID: u.ID, IP: c.RealIP(),
		UserAgent: truncate(c.Request().UserAgent(), 255), ExpiresAt: now.Add(sessionTTL).UTC(), LastSeenAt: now.UTC()}
	if err := s.store.CreateSession(ctx, se); err != nil {
		return err
	}
	s.setCookie(c, sessionCookie, tok, int(sessionTTL.Seconds()))
	s.setCookie(c, csrfCookie, "", -1)
	to := data.Next
	if to == "" {
		to = "/resources"
	}
	return c.Redirect(http.StatusSeeOther, to)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (s *Server) logout(c echo.Context) error {
	if err := s.store.DeleteSession(c.Request().Context(), vis(c).SessionHash); err != nil {
		return err
	}
	s.setCookie(c, sessionCookie, "", -1)
	return s.redirect(c, "/login", "You are logged out.")
}

func (s *Server) home(c echo.Context) error {
	return c.Redirect(http.StatusSeeOther, "/resources")
}
