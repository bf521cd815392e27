package web

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

type loginData struct {
	Email string
	Next  string
}

// localPath returns next when it is a path on this site, "" otherwise (no open redirect).
// Browsers drop tabs and new lines from a URL and read a backslash as a slash, so a path that
// starts with two slashes once they are done with it leads to another host. next is refused
// when it, or what is left after percent-decoding it (a proxy or a second redirect may decode
// it), does not start with exactly one slash, or holds a backslash, a control character or a
// space.
func localPath(next string) string {
	odd := func(r rune) bool { return r == '\\' || unicode.IsControl(r) || unicode.IsSpace(r) }
	for s, i := next, 0; i < 3; i++ {
		if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.ContainsFunc(s, odd) {
			return ""
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return ""
		}
		if d == s {
			return next
		}
		s = d
	}
	return "" // encoded three times over: no page of ours needs that
}

func (s *Server) showLogin(c echo.Context) error {
	if vis(c).User != nil {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	return s.render(c, http.StatusOK, "login", &page{Title: "Log in", Data: loginData{Next: localPath(c.QueryParam("next"))}})
}

// clientAddr is the address the visitor is throttled by.
func clientAddr(c echo.Context) string { return auth.ClientKey(c.RealIP()) }

// checkLogin logs in with e-mail and password (see passwordLogin).
func (s *Server) checkLogin(c echo.Context) error {
	ctx := c.Request().Context()
	email := store.NormalizeEmail(c.FormValue("email"))
	data := loginData{Email: email, Next: localPath(c.FormValue("next"))}
	u, refused, err := s.passwordLogin(c, email, c.FormValue("password"))
	switch {
	case err != nil:
		return err
	case refused != nil:
		return s.render(c, refused.code, "login", &page{Title: "Log in", Error: refused.msg, Data: data})
	}
	now := s.now()
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
	if u.MustChangePassword {
		return s.redirect(c, "/account", mustChangeMessage)
	}
	to := data.Next
	if to == "" {
		to = "/resources"
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// loginRefusal is why a password login was refused: the status and the message for the visitor.
type loginRefusal struct {
	code int
	msg  string
}

// passwordLogin checks the e-mail and password of a login, for the login page and for the API
// token a command-line client asks for. Failures slow down the client's address and the
// account tried from it (loginByAddr, loginByAccount): while it must wait, no password is
// checked at all, the right one neither; the account's owner at another address is not slowed.
// A refusal is not an error; err is one of the server.
func (s *Server) passwordLogin(c echo.Context, email, pw string) (*store.User, *loginRefusal, error) {
	ctx := c.Request().Context()
	addr := clientAddr(c)
	account := addr + " " + email
	tooSoon := func() time.Duration {
		now := s.now()
		return max(s.loginByAddr.Wait(addr, now), s.loginByAccount.Wait(account, now))
	}
	throttled := func(d time.Duration) (*store.User, *loginRefusal, error) {
		secs := int(math.Ceil(d.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		return nil, &loginRefusal{http.StatusTooManyRequests, fmt.Sprintf("Too many failed attempts from your address. Try again in %s.",
			humanDuration(time.Duration(secs)*time.Second))}, nil
	}
	if d := tooSoon(); d > 0 {
		return throttled(d)
	}
	u, err := s.store.UserByEmail(ctx, email)
	hash := ""
	switch {
	case err == nil:
		hash = u.PasswordHash
	case !errors.Is(err, store.ErrNotFound):
		return nil, nil, err
	}
	var wait time.Duration
	good := false
	err = s.withHashing(c, func() {
		// Again in the client's turn: its other requests may have failed meanwhile.
		if wait = tooSoon(); wait > 0 {
			return
		}
		if good = auth.CheckPassword(hash, pw); !good {
			now := s.now()
			if d := max(s.loginByAddr.Fail(addr, now), s.loginByAccount.Fail(account, now)); d > 0 {
				s.log.Info("failed login: the client waits before its next attempt", "addr", addr, "wait", d)
			}
		}
	})
	switch msg, code, ok := userMessage(err); {
	case ok:
		return nil, &loginRefusal{code, msg}, nil
	case err != nil:
		return nil, nil, err
	case wait > 0:
		return throttled(wait)
	case !good || u.IsDeleted():
		return nil, &loginRefusal{http.StatusUnauthorized, "Wrong e-mail or password."}, nil
	case !u.EmailConfirmed:
		return nil, &loginRefusal{http.StatusForbidden, "Please confirm your e-mail address first: open the link we sent you."}, nil
	case !u.Authorized:
		return nil, &loginRefusal{http.StatusForbidden, "Your account is waiting for an admin's approval."}, nil
	}
	s.loginByAccount.Reset(account)
	return u, nil, nil
}

// withHashing runs f, which checks or computes a bcrypt hash for the visitor, in the
// visitor's turn at the hashing gate; an address with recent login failures waits behind the
// others. When no turn comes, the error is a 503 for the visitor.
func (s *Server) withHashing(c echo.Context, f func()) error {
	addr := clientAddr(c)
	if err := s.hashing.Do(c.Request().Context(), addr, !s.loginByAddr.Failed(addr, s.now()), f); err != nil {
		// ErrBusy, or the visitor left: either way nothing was checked.
		c.Response().Header().Set("Retry-After", "5")
		return &formError{msg: "The site is busy checking passwords. Try again in a few seconds.", code: http.StatusServiceUnavailable}
	}
	return nil
}

// hashNewPassword hashes a new password in the visitor's turn at the hashing gate; no turn is
// a *formError (503) for the visitor.
func (s *Server) hashNewPassword(c echo.Context, pw string) (string, error) {
	var hash string
	var hashErr error
	if err := s.withHashing(c, func() { hash, hashErr = auth.HashPassword(pw) }); err != nil {
		return "", err
	}
	return hash, hashErr
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
