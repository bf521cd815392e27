package web

import (
	"context"
	"errors"
	"fmt"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

// DefaultAdminEmail is the first admin's e-mail unless pifrontend is told another.
const DefaultAdminEmail = "admin@piseduce.local"

// EnsureFirstAdmin creates an admin with a random password when the database has no user at
// all, and returns that password (to be shown once); created is false when users exist.
// There is no well-known default password.
func EnsureFirstAdmin(ctx context.Context, st *store.Store, email string) (password string, created bool, err error) {
	n, err := st.CountUsers(ctx)
	if err != nil {
		return "", false, err
	}
	if n > 0 {
		return "", false, nil
	}
	if email != DefaultAdminEmail {
		if email, err = auth.ParseEmail(email); err != nil {
			return "", false, fmt.Errorf("web: first admin: %w", err)
		}
	}
	password, hash, err := auth.OneTimePassword()
	if err != nil {
		return "", false, err
	}
	u := &store.User{Email: email, PasswordHash: hash, FirstName: "Admin", EmailConfirmed: true, Authorized: true, Admin: true}
	if err := st.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrDuplicate) { // another pifrontend made it first
			return "", false, nil
		}
		return "", false, err
	}
	return password, true, nil
}
