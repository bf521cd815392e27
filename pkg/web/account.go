package web

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

type accountData struct {
	Tokens []store.APIToken
	// NewToken is shown once, right after it was created.
	NewToken string
	SSHKey   string
	// TokenDays are the lifetimes a new token may have, in days; DefaultDays is preselected.
	TokenDays   []int
	DefaultDays int
	Now         time.Time
	// Quota: the quotas and what the user holds against them.
	Quota store.QuotaUse
	// Mail: e-mail is set up, so notifications are offered; Notify: the user asked for them.
	Mail, Notify bool
}

// tokenDays are the lifetimes offered for a new API token, in days.
func tokenDays() []int { return []int{7, 30, 90, 180, 365} }

func (s *Server) accountPage(c echo.Context, code int, p *page) error {
	u := currentUser(c)
	toks, err := s.store.APITokens(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	d, _ := p.Data.(*accountData)
	if d == nil {
		d = &accountData{SSHKey: u.SSHKey}
	}
	d.Tokens, d.TokenDays, d.DefaultDays, d.Now = toks, tokenDays(), int(store.APITokenTTL/(24*time.Hour)), s.now()
	if d.Quota, err = s.store.UserQuotaUse(c.Request().Context(), u, d.Now); err != nil {
		return err
	}
	st, err := s.settings(c.Request().Context())
	if err != nil {
		return err
	}
	d.Mail, d.Notify = st.SMTP.Configured(), u.NotifySince != nil
	p.Title, p.Nav, p.Data = "Account", "account", d
	return s.render(c, code, "account", p)
}

func (s *Server) showAccount(c echo.Context) error {
	return s.accountPage(c, http.StatusOK, &page{})
}

func (s *Server) accountError(c echo.Context, err error) error {
	msg, code, ok := userMessage(err)
	if !ok {
		return err
	}
	return s.accountPage(c, code, &page{Error: msg})
}

// saveAccountPassword changes the password: the old one is asked; every other session of the
// user ends and all their API tokens are revoked. Wrong old passwords slow the account's
// password changes down like failed logins.
func (s *Server) saveAccountPassword(c echo.Context) error {
	u := currentUser(c)
	key := "password change " + strconv.Itoa(int(u.ID))
	if d := s.loginByAccount.Wait(key, s.now()); d > 0 {
		return s.accountPage(c, http.StatusTooManyRequests, &page{Error: "Too many wrong passwords. Try again in " + humanDuration(d) + "."})
	}
	pw := c.FormValue("new_password")
	if err := auth.ValidatePassword(pw); err != nil {
		return s.accountPage(c, http.StatusBadRequest, &page{Error: upperFirst(err.Error()) + "."})
	}
	if pw != c.FormValue("new_password_confirm") {
		return s.accountPage(c, http.StatusBadRequest, &page{Error: "The two new passwords differ."})
	}
	var oldOK bool
	var hash string
	var hashErr error
	err := s.withHashing(c, func() {
		if oldOK = auth.CheckPassword(u.PasswordHash, c.FormValue("old_password")); oldOK {
			hash, hashErr = auth.HashPassword(pw)
		}
	})
	switch {
	case err != nil:
		return s.accountError(c, err)
	case hashErr != nil:
		return hashErr
	case !oldOK:
		s.loginByAccount.Fail(key, s.now())
		return s.accountPage(c, http.StatusBadRequest, &page{Error: "The current password is wrong."})
	}
	if err := s.store.SetUserPassword(c.Request().Context(), u.ID, hash, vis(c).SessionHash); err != nil {
		return err
	}
	s.loginByAccount.Reset(key)
	s.log.Info("password changed: other sessions ended, API tokens revoked", "user", u.ID)
	return s.redirect(c, "/account", "Password changed. Your other sessions were logged out and your API tokens revoked.")
}

// saveAccountSSHKey stores the account's SSH public key (copied to every node deployed).
func (s *Server) saveAccountSSHKey(c echo.Context) error {
	key, err := normalizeSSHKey(c.FormValue("ssh_key"))
	if err != nil {
		return s.accountPage(c, http.StatusBadRequest, &page{Error: err.Error(), Data: &accountData{SSHKey: c.FormValue("ssh_key")}})
	}
	if err := s.store.SetUserSSHKey(c.Request().Context(), currentUser(c).ID, key); err != nil {
		return err
	}
	if key == "" {
		return s.redirect(c, "/account", "SSH key removed.")
	}
	return s.redirect(c, "/account", "SSH key saved.")
}

// createToken makes an API token with the lifetime chosen (one of tokenDays) and, when asked,
// read-only. It is shown once, in this response; only its SHA-256 is kept.
func (s *Server) createToken(c echo.Context) error {
	u := currentUser(c)
	name, err := oneLine("The token name", c.FormValue("name"), 1, 100)
	if err != nil {
		return s.accountError(c, err)
	}
	days, err := strconv.Atoi(c.FormValue("days"))
	if err != nil || !slices.Contains(tokenDays(), days) {
		return s.accountError(c, badInput("Choose how long the token lasts: %s days.", joinInts(tokenDays())))
	}
	readOnly := c.FormValue("read_only") == "true"
	tok := auth.NewToken("psd_")
	t := &store.APIToken{UserID: u.ID, Name: name, Hash: auth.HashToken(tok), ReadOnly: readOnly,
		ExpiresAt: s.now().UTC().Add(time.Duration(days) * 24 * time.Hour)}
	if err := s.store.CreateAPIToken(c.Request().Context(), t); err != nil {
		return err
	}
	s.log.Info("API token created", "user", u.ID, "days", days, "read_only", readOnly)
	return s.accountPage(c, http.StatusOK, &page{Flash: "Token created. Copy it now: it will not be shown again.",
		Data: &accountData{NewToken: tok, SSHKey: u.SSHKey}})
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func (s *Server) revokeToken(c echo.Context) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	if err := s.store.DeleteAPIToken(c.Request().Context(), currentUser(c).ID, id); err != nil {
		return err
	}
	return s.redirect(c, "/account", "Token revoked.")
}
