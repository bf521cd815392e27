package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

// How long an e-mail confirmation link works.
const confirmTTL = 24 * time.Hour

type signupData struct {
	Email, FirstName, LastName string
	Domains                    []string
}

func (s *Server) showSignup(c echo.Context) error {
	if vis(c).User != nil {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	st, err := s.settings(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "signup", &page{Title: "Sign up", Data: signupData{Domains: st.SignupDomains}})
}

// saveSignup creates an account: e-mail confirmation when SMTP is configured, then the admin's
// approval unless automatic approval is on. An address already registered gets the same answer
// as a new one, so the form does not tell who has an account.
func (s *Server) saveSignup(c echo.Context) error {
	ctx := c.Request().Context()
	st, err := s.settings(ctx)
	if err != nil {
		return err
	}
	data := signupData{Email: strings.TrimSpace(c.FormValue("email")), FirstName: c.FormValue("first_name"),
		LastName: c.FormValue("last_name"), Domains: st.SignupDomains}
	fail := func(code int, msg string) error {
		return s.render(c, code, "signup", &page{Title: "Sign up", Error: msg, Data: data})
	}
	now := s.now()
	addr := clientAddr(c)
	if b, _ := s.signupByIP.Blocked(addr, now); b {
		return fail(http.StatusTooManyRequests, "Too many sign-ups from your address. Try again later.")
	}
	email, err := auth.ParseEmail(data.Email)
	if err != nil {
		return fail(http.StatusBadRequest, upperFirst(err.Error())+".")
	}
	if !auth.EmailAllowed(email, st.SignupDomains) {
		return fail(http.StatusBadRequest, "Sign-up is open to addresses at "+strings.Join(st.SignupDomains, ", ")+" only.")
	}
	first, err := oneLine("First name", data.FirstName, 1, 100)
	if err != nil {
		return fail(http.StatusBadRequest, err.Error())
	}
	last, err := oneLine("Last name", data.LastName, 0, 100)
	if err != nil {
		return fail(http.StatusBadRequest, err.Error())
	}
	pw := c.FormValue("password")
	if err := auth.ValidatePassword(pw); err != nil {
		return fail(http.StatusBadRequest, upperFirst(err.Error())+".")
	}
	if pw != c.FormValue("password_confirm") {
		return fail(http.StatusBadRequest, "The two passwords differ.")
	}
	s.signupByIP.Fail(addr, now)
	hash, err := s.hashNewPassword(c, pw)
	if msg, code, ok := userMessage(err); ok {
		return fail(code, msg)
	} else if err != nil {
		return err
	}
	mail := st.confirmByMail()
	u := &store.User{Email: email, PasswordHash: hash, FirstName: first, LastName: last,
		EmailConfirmed: !mail, Authorized: st.AutoApprove && !mail}
	var done string
	switch {
	case mail:
		done = "Almost there: open the link we sent to " + email + " to confirm your address."
	case u.Authorized:
		done = "Your account is ready: you can log in."
	default:
		done = "Your account is created. An admin must approve it before you can log in."
	}
	err = s.store.CreateUser(ctx, u)
	if errors.Is(err, store.ErrDuplicate) {
		s.log.Info("sign-up with a registered e-mail", "addr", addr)
		return s.redirect(c, "/login", done)
	}
	if err != nil {
		return err
	}
	s.log.Info("user signed up", "user", u.ID)
	if mail {
		if err := s.sendConfirmation(c, u, st.SMTP); err != nil {
			s.log.Error("confirmation e-mail failed", "user", u.ID, "err", err)
			if _, derr := s.store.DeleteUser(ctx, u.ID, now); derr != nil {
				s.log.Error("undo sign-up", "user", u.ID, "err", derr)
			}
			return fail(http.StatusServiceUnavailable, "We could not send the confirmation e-mail. Please try again later.")
		}
	}
	return s.redirect(c, "/login", done)
}

func (s *Server) sendConfirmation(c echo.Context, u *store.User, smtp auth.SMTPSettings) error {
	ctx := c.Request().Context()
	tok := auth.NewToken("")
	t := &store.EmailToken{Hash: auth.HashToken(tok), UserID: u.ID, Purpose: store.TokenConfirmEmail,
		ExpiresAt: s.now().Add(confirmTTL).UTC()}
	if err := s.store.CreateEmailToken(ctx, t); err != nil {
		return err
	}
	link := strings.TrimRight(s.cfg.Frontend.PublicAddress, "/") + "/confirm/" + tok
	body := fmt.Sprintf("Hello %s,\n\nsomeone (hopefully you) signed up to PiSeduce with this address.\n"+
		"Open this link within 24 hours to confirm it:\n\n%s\n\nIf it was not you, ignore this message.\n", u.FirstName, link)
	return s.mailer.Send(ctx, smtp, auth.Message{To: u.Email, Subject: "Confirm your PiSeduce account", Body: body})
}

type confirmData struct{ Token string }

// showConfirm is the page the e-mail links to. It changes nothing: confirming takes a POST
// (link previewers and prefetchers must not use the token up).
func (s *Server) showConfirm(c echo.Context) error {
	return s.render(c, http.StatusOK, "confirm", &page{Title: "Confirm your e-mail", Data: confirmData{Token: c.Param("token")}})
}

func (s *Server) saveConfirm(c echo.Context) error {
	ctx := c.Request().Context()
	st, err := s.settings(ctx)
	if err != nil {
		return err
	}
	u, err := s.store.ConfirmEmail(ctx, auth.HashToken(c.FormValue("token")), s.now(), st.AutoApprove)
	if errors.Is(err, store.ErrTokenInvalid) {
		return s.render(c, http.StatusBadRequest, "confirm", &page{Title: "Confirm your e-mail",
			Error: "This link is invalid, already used or expired."})
	}
	if err != nil {
		return err
	}
	if u.Authorized {
		return s.redirect(c, "/login", "Your e-mail is confirmed: you can log in.")
	}
	return s.redirect(c, "/login", "Your e-mail is confirmed. An admin must now approve your account.")
}
