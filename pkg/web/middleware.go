package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

// visitor is who makes the request, set by the guard for every handler.
type visitor struct {
	User *store.User
	// SessionHash is the stored hash of the session cookie ("" when anonymous or API).
	SessionHash string
	// csrfSeed is what the CSRF token of this visitor's forms is derived from: the session
	// token when logged in, else the random anonymous cookie.
	csrfSeed string
	API      bool
	// TokenID is the API token the request came with (0 for pages).
	TokenID uint
}

const visitorKey = "piseduce.visitor"

// maxFormBody bounds what a page POST may send (the largest is a cluster_desc upload).
const maxFormBody = 8 << 20

// vis returns the visitor the guard set.
func vis(c echo.Context) *visitor {
	if v, ok := c.Get(visitorKey).(*visitor); ok {
		return v
	}
	return &visitor{}
}

// currentUser is the logged-in user (never nil behind a user, admin or API route).
func currentUser(c echo.Context) *store.User { return vis(c).User }

// Cookie names; behind TLS they carry the __Host- prefix (Secure, Path=/, no Domain).
const (
	sessionCookie = "piseduce_session"
	csrfCookie    = "piseduce_csrf"
	flashCookie   = "piseduce_flash"
)

func (s *Server) cookieName(base string) string {
	if s.cfg.Frontend.SecureCookies {
		return "__Host-" + base
	}
	return base
}

func (s *Server) setCookie(c echo.Context, base, value string, maxAge int) {
	c.SetCookie(&http.Cookie{Name: s.cookieName(base), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.cfg.Frontend.SecureCookies})
}

func (s *Server) cookie(c echo.Context, base string) string {
	ck, err := c.Cookie(s.cookieName(base))
	if err != nil {
		return ""
	}
	return ck.Value
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// guard is the one access check, deny by default: it finds the route's access level in
// s.access (a route without one is refused), authenticates the visitor (session cookie for
// pages, Bearer token for /api/v1), checks the CSRF token of every unsafe page request, and
// refuses admin routes to non-admins.
func (s *Server) guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		level := s.access[r.Method+" "+c.Path()]
		v := &visitor{}
		c.Set(visitorKey, v)
		switch level {
		case denied:
			if strings.HasPrefix(r.URL.Path, "/api/") {
				return apiError(http.StatusNotFound, "no such API route")
			}
			return echo.ErrNotFound
		case open:
			return next(c)
		case apiUser, apiAdmin:
			u, tok, err := s.bearerUser(c)
			if err != nil {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="piseduce"`)
				return err
			}
			if tok.ReadOnly && unsafeMethod(r.Method) {
				return apiError(http.StatusForbidden, "this API token is read-only: it may only GET")
			}
			if level == apiAdmin && !u.Admin {
				return apiError(http.StatusForbidden, "this route is for admins")
			}
			if u.MustChangePassword {
				return apiError(http.StatusForbidden, "this account has a one-time password: choose a new one on the Account page first")
			}
			v.User, v.API, v.TokenID = u, true, tok.ID
			return next(c)
		}
		if err := s.loadSession(c, v); err != nil {
			return err
		}
		if unsafeMethod(r.Method) {
			if err := readForm(c); err != nil {
				return err
			}
			if !s.csrfOK(c, v) {
				return echo.NewHTTPError(http.StatusForbidden, "This form has expired or did not come from this site. Go back, reload the page and try again.")
			}
		}
		switch level {
		case public:
			return next(c)
		case user, admin:
			if v.User == nil {
				if r.Method == http.MethodGet {
					to := "/login"
					if next := localPath(r.URL.RequestURI()); next != "" {
						to += "?next=" + url.QueryEscape(next)
					}
					return c.Redirect(http.StatusSeeOther, to)
				}
				return echo.NewHTTPError(http.StatusForbidden, "Please log in first.")
			}
			if v.User.MustChangePassword && !oneTimePasswordRoutes[r.Method+" "+c.Path()] {
				if r.Method == http.MethodGet {
					return c.Redirect(http.StatusSeeOther, "/account")
				}
				return echo.NewHTTPError(http.StatusForbidden, mustChangeMessage)
			}
			if level == admin && !v.User.Admin {
				return echo.NewHTTPError(http.StatusForbidden, "This page is for admins.")
			}
			return next(c)
		}
		return echo.ErrNotFound
	}
}

// oneTimePasswordRoutes are all a user logged in with a one-time password may use: choosing
// their own password, or leaving.
var oneTimePasswordRoutes = map[string]bool{"GET /account": true, "POST /account/password": true, "POST /logout": true}

const mustChangeMessage = "You logged in with a one-time password: choose your own password below before anything else."

// readForm reads the body of a page POST before anything looks at it: one larger than
// maxFormBody is refused with a 413 that says so (and not read past the limit), a malformed
// one with a 400.
func readForm(c echo.Context) error {
	r := c.Request()
	tooLarge := echo.NewHTTPError(http.StatusRequestEntityTooLarge,
		fmt.Sprintf("What you sent is too large: a form may send at most %d MiB.", maxFormBody>>20))
	if r.ContentLength > maxFormBody {
		return tooLarge
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxFormBody)
	var err error
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		err = r.ParseMultipartForm(maxFormBody)
	} else {
		err = r.ParseForm()
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge
	case err != nil:
		return echo.NewHTTPError(http.StatusBadRequest, "The form could not be read. Go back, reload the page and try again.")
	}
	return nil
}

// canLogIn reports whether u may use the site: confirmed, approved, not deleted.
func canLogIn(u *store.User) bool {
	return u != nil && u.EmailConfirmed && u.Authorized && !u.IsDeleted()
}

// loadSession finds the visitor's session from the cookie; anonymous visitors get a random
// CSRF cookie instead. A database that fails is an error, not a logout: the cookie stays.
func (s *Server) loadSession(c echo.Context, v *visitor) error {
	if tok := s.cookie(c, sessionCookie); tok != "" {
		se, err := s.live.session(c.Request().Context(), auth.HashToken(tok))
		switch {
		case err == nil && canLogIn(&se.User):
			u := se.User
			v.User, v.SessionHash, v.csrfSeed = &u, se.Hash, "session:"+tok
			return nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("session lookup: %w", err)
		}
		s.setCookie(c, sessionCookie, "", -1)
	}
	seed := s.cookie(c, csrfCookie)
	if len(seed) < 40 {
		seed = auth.NewToken("")
		s.setCookie(c, csrfCookie, seed, 0)
	}
	v.csrfSeed = "anon:" + seed
	return nil
}

// csrfToken is the token the visitor's forms carry.
func (s *Server) csrfToken(c echo.Context) string {
	return s.signer.Tag("csrf", vis(c).csrfSeed)
}

// csrfOK checks the token of the form's body (or of the X-CSRF-Token header; never of the
// URL, which ends up in logs and Referer headers), and the Origin header when the browser
// sends one.
func (s *Server) csrfOK(c echo.Context, v *visitor) bool {
	r := c.Request()
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !s.sameSite(u.Host, r.Host) {
			return false
		}
	}
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		tok = r.PostFormValue("csrf_token")
	}
	return tok != "" && v.csrfSeed != "" && s.signer.Check("csrf", v.csrfSeed, tok)
}

func (s *Server) sameSite(originHost, requestHost string) bool {
	if strings.EqualFold(originHost, requestHost) {
		return true
	}
	if pub, err := url.Parse(s.cfg.Frontend.PublicAddress); err == nil && pub.Host != "" {
		return strings.EqualFold(originHost, pub.Host)
	}
	return false
}

// bearerUser returns the request's API token and its active owner, or the 401 to answer.
func (s *Server) bearerUser(c echo.Context) (*store.User, *store.APIToken, error) {
	denied := apiError(http.StatusUnauthorized, "missing, invalid or revoked API token (send Authorization: Bearer <token>)")
	h := c.Request().Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return nil, nil, denied
	}
	u, t, err := s.live.apiUser(c.Request().Context(), auth.HashToken(strings.TrimSpace(tok)))
	switch {
	case errors.Is(err, store.ErrTokenExpired):
		return nil, nil, apiError(http.StatusUnauthorized, "this API token has expired: create a new one on your Account page")
	case errors.Is(err, store.ErrNotFound):
		return nil, nil, denied
	case err != nil:
		return nil, nil, err
	case !canLogIn(u):
		return nil, nil, denied
	}
	return u, t, nil
}

// securityHeaders: a strict CSP (no inline script or style, nothing from elsewhere), no
// framing, no sniffing, no caching of pages (they may show passwords).
func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		if s.cfg.Frontend.SecureCookies {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !strings.HasPrefix(c.Request().URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		} else {
			h.Set("Cache-Control", "public, max-age=3600")
		}
		return next(c)
	}
}

// recoverer turns a panic into a logged 500 with a reference; the stack goes to the log only.
func (s *Server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		return next(c)
	}
}

// errorPage is what the error page shows: the message and the request id to quote.
type errorPage struct {
	Message, RequestID string
}

// apiError is an error the API reports as {"error": msg} with status code.
func apiError(code int, msg string) error { return echo.NewHTTPError(code, msg) }

// handleError answers every error: JSON {"error": …} under /api/, an error page elsewhere.
// Internal errors are logged with the request id; the visitor sees only that id.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, ""
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		code = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		} else {
			msg = http.StatusText(code)
		}
		if he.Internal != nil {
			err = he.Internal
		}
	case errors.Is(err, store.ErrNotFound):
		code, msg = http.StatusNotFound, "Not found."
	}
	if code >= 500 {
		ref := requestID(c)
		level := slog.LevelError
		if errors.Is(c.Request().Context().Err(), context.Canceled) {
			// The visitor left before the answer, which cut short what served it (the error
			// may be the driver's, e.g. sqlite3's "interrupted"): nothing failed here.
			level = slog.LevelInfo
		}
		s.log.Log(context.Background(), level, "request failed", "request_id", ref, "method", c.Request().Method, "path", loggedPath(c), "err", err)
		msg = fmt.Sprintf("Something went wrong on our side (reference %s). Please try again later.", ref)
	}
	if strings.HasPrefix(c.Request().URL.Path, "/api/") || strings.HasSuffix(c.Path(), ".json") {
		_ = c.JSON(code, map[string]string{"error": msg})
		return
	}
	if rerr := s.render(c, code, "error", &page{Title: http.StatusText(code), Data: errorPage{msg, requestID(c)}}); rerr != nil {
		s.log.Error("error page failed", "err", rerr)
		_ = c.String(code, msg)
	}
}
