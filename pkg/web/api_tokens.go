package web

import (
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

// API tokens for programs that log in with the user's password (the piseduce command line):
// the same checks, throttling included, as the login page; the token is answered once and
// only its SHA-256 is kept, as for the tokens made on the Account page.

func (s *Server) apiCreateToken(c echo.Context) error {
	var in apijson.TokenRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	name, err := oneLine("The token name", in.Name, 1, 100)
	if err != nil {
		return httpError(err)
	}
	if in.Days == 0 {
		in.Days = int(store.APITokenTTL / (24 * time.Hour))
	}
	if !slices.Contains(tokenDays(), in.Days) {
		return apiError(http.StatusBadRequest, "days: a token lasts "+joinInts(tokenDays())+" days")
	}
	u, refused, err := s.passwordLogin(c, store.NormalizeEmail(in.Email), in.Password)
	switch {
	case err != nil:
		return err
	case refused != nil:
		return apiError(refused.code, refused.msg)
	case u.MustChangePassword:
		return apiError(http.StatusForbidden, "this account has a one-time password: choose a new one on the Account page first")
	}
	tok := auth.NewToken("psd_")
	t := &store.APIToken{UserID: u.ID, Name: name, Hash: auth.HashToken(tok), ReadOnly: in.ReadOnly,
		ExpiresAt: s.now().UTC().Add(time.Duration(in.Days) * 24 * time.Hour)}
	if err := s.store.CreateAPIToken(c.Request().Context(), t); err != nil {
		return err
	}
	s.log.Info("API token created with a password", "user", u.ID, "days", in.Days, "read_only", in.ReadOnly)
	return c.JSON(http.StatusCreated, apijson.NewToken{ID: t.ID, Name: t.Name, Token: tok, ReadOnly: t.ReadOnly, ExpiresAt: t.ExpiresAt})
}

// apiRevokeCurrentToken revokes the token the request came with (logging out of the command
// line).
func (s *Server) apiRevokeCurrentToken(c echo.Context) error {
	if err := s.store.DeleteAPIToken(c.Request().Context(), currentUser(c).ID, vis(c).TokenID); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "revoked"})
}
