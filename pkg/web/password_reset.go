package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

// How long a password reset link works, and how long its e-mail may take to send.
const (
	resetTTL         = time.Hour
	resetSendTimeout = time.Minute
)

type resetData struct {
	// Mail: e-mail is configured, so the form is offered (otherwise the page says to ask an admin).
	Mail  bool
	Email string
	// Token is the link's token, on the page that chooses the new password.
	Token string
}

func (s *Server) resetPage(c echo.Context, code int, p *page) error {
	p.Title = "Forgotten password"
	return s.render(c, code, "password_reset", p)
}

func (s *Server) showPasswordReset(c echo.Context) error {
	if vis(c).User != nil {
		return c.Redirect(http.StatusSeeOther, "/account")
	}
	st, err := s.settings(c.Request().Context())
	if err != nil {
		return err
	}
	return s.resetPage(c, http.StatusOK, &page{Data: resetData{Mail: st.SMTP.Configured()}})
}

// savePasswordReset asks for a reset link. The answer is the same, and comes as fast, whether
// an account has that address or not: looking the account up, making the link and sending it
// happen after the answer (sendPasswordReset).
func (s *Server) savePasswordReset(c echo.Context) error {
	ctx := c.Request().Context()
	st, err := s.settings(ctx)
	if err != nil {
		return err
	}
	data := resetData{Mail: st.SMTP.Configured(), Email: strings.TrimSpace(c.FormValue("email"))}
	if !data.Mail {
		return s.resetPage(c, http.StatusConflict, &page{Error: "Passwords are not reset by e-mail here: ask an admin for a one-time password.", Data: data})
	}
	now := s.now()
	addr := clientAddr(c)
	if b, until := s.resetByIP.Blocked(addr, now); b {
		return s.resetPage(c, http.StatusTooManyRequests, &page{Error: "Too many reset requests from your address. Try again in " +
			humanDuration(until.Sub(now)) + ".", Data: data})
	}
	email, err := auth.ParseEmail(data.Email)
	if err != nil {
		return s.resetPage(c, http.StatusBadRequest, &page{Error: upperFirst(err.Error()) + ".", Data: data})
	}
	s.resetByIP.Fail(addr, now)
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resetSendTimeout)
		defer cancel()
		s.sendPasswordReset(ctx, email, st.SMTP)
	}()
	return s.redirect(c, "/login", "If an account uses "+email+", we sent it a link to choose a new password. It works for an hour.")
}

// sendPasswordReset e-mails a reset link to the account with that address, if there is one
// that can log in; at most resetByAccount's number an hour. Nobody waits for it: what happens
// is only logged (never the address of an unknown account).
func (s *Server) sendPasswordReset(ctx context.Context, email string, smtp auth.SMTPSettings) {
	u, err := s.store.UserByEmail(ctx, email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.log.Info("password reset asked for an unknown address")
		return
	case err != nil:
		s.log.Error("password reset: user lookup", "err", err)
		return
	case !canLogIn(u):
		s.log.Info("password reset asked for an account that cannot log in", "user", u.ID)
		return
	}
	now := s.now()
	if b, _ := s.resetByAccount.Blocked(email, now); b {
		s.log.Info("password reset: too many links sent to this account this hour", "user", u.ID)
		return
	}
	s.resetByAccount.Fail(email, now)
	tok := auth.NewToken("")
	t := &store.EmailToken{Hash: auth.HashToken(tok), UserID: u.ID, Purpose: store.TokenResetPassword, ExpiresAt: now.Add(resetTTL).UTC()}
	if err := s.store.CreateEmailToken(ctx, t); err != nil {
		s.log.Error("password reset: store the link", "user", u.ID, "err", err)
		return
	}
	link := strings.TrimRight(s.cfg.Frontend.PublicAddress, "/") + "/password-reset/" + tok
	body := fmt.Sprintf("Hello %s,\n\nsomeone (hopefully you) asked to reset the password of your PiSeduce account.\n"+
		"Open this link within an hour to choose a new password:\n\n%s\n\n"+
		"Choosing it logs you out everywhere and revokes your API tokens. If it was not you, ignore this message:\n"+
		"your password stays as it is.\n", u.FirstName, link)
	if err := s.mailer.Send(ctx, smtp, auth.Message{To: u.Email, Subject: "Reset your PiSeduce password", Body: body}); err != nil {
		s.log.Error("password reset e-mail failed", "user", u.ID, "err", err)
		return
	}
	s.log.Info("password reset link sent", "user", u.ID)
}

// showPasswordResetToken is the page the e-mail links to; it changes nothing (link previewers
// must not use the token up): choosing the password is a POST.
func (s *Server) showPasswordResetToken(c echo.Context) error {
	return s.resetPage(c, http.StatusOK, &page{Data: resetData{Token: c.Param("token")}})
}

// saveNewPassword uses a reset link: the new password replaces the old one, as a password
// change does (every session ends, every API token is revoked).
func (s *Server) saveNewPassword(c echo.Context) error {
	tok := c.FormValue("token")
	data := resetData{Token: tok}
	fail := func(code int, msg string) error { return s.resetPage(c, code, &page{Error: msg, Data: data}) }
	pw := c.FormValue("new_password")
	if err := auth.ValidatePassword(pw); err != nil {
		return fail(http.StatusBadRequest, upperFirst(err.Error())+".")
	}
	if pw != c.FormValue("new_password_confirm") {
		return fail(http.StatusBadRequest, "The two passwords differ.")
	}
	hash, err := s.hashNewPassword(c, pw)
	if msg, code, ok := userMessage(err); ok {
		return fail(code, msg)
	} else if err != nil {
		return err
	}
	u, err := s.store.ResetPassword(c.Request().Context(), auth.HashToken(tok), hash, s.now())
	if errors.Is(err, store.ErrTokenInvalid) {
		return s.resetPage(c, http.StatusBadRequest, &page{Error: "This link is invalid, already used or expired. Ask for a new one.",
			Data: resetData{Mail: true}})
	}
	if err != nil {
		return err
	}
	s.log.Info("password reset by e-mail link: sessions ended, API tokens revoked", "user", u.ID)
	return s.redirect(c, "/login", "Your password is changed: log in with it. Your sessions were logged out and your API tokens revoked.")
}

// WaitBackground waits for the work still running after its answer was sent (password reset
// e-mails): pifrontend calls it when it stops, tests before they look.
func (s *Server) WaitBackground() { s.background.Wait() }
