package main

// The account subcommands, for the pimaster's admin when nobody can log in to the web:
//
//	pitasks user create-admin EMAIL     a new admin account; prints its one-time password
//	pitasks user reset-password EMAIL   a new one-time password for an account
//
// A one-time password must be changed at the next login; giving one ends every session and
// revokes every API token of the account.

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/cli"
	"github.com/piseduce/piseduce/pkg/store"
)

const userHelp = `  create-admin EMAIL     create an approved admin account and print its one-time password
  reset-password EMAIL   give the account a new one-time password and print it

A one-time password must be changed at the next login; the account's sessions end and its
API tokens are revoked.`

func userCommand() *cli.Command {
	return cli.New("pitasks user", "create-admin EMAIL | reset-password EMAIL", userHelp, 2, 2)
}

// userArgs is a parsed "user" command line.
type userArgs struct{ action, email string }

// parseUserArgs reads the arguments of "user" (before any configuration is read): anything
// wrong is a wrong-arguments error (exit status 2).
func parseUserArgs(args []string) (userArgs, error) {
	c := userCommand()
	args, err := c.Parse(args)
	if err != nil {
		return userArgs{}, err
	}
	a := userArgs{action: args[0]}
	switch a.action {
	case "create-admin", "reset-password":
	default:
		return userArgs{}, c.Errorf("unknown user command %q", a.action)
	}
	if a.email, err = auth.ParseEmail(args[1]); err != nil {
		return userArgs{}, c.Errorf("%q: %v", args[1], err)
	}
	return a, nil
}

// userCmd runs "user create-admin|reset-password EMAIL" and prints the one-time password to w.
func userCmd(ctx context.Context, st *store.Store, args []string, w io.Writer) error {
	a, err := parseUserArgs(args)
	if err != nil {
		return err
	}
	pw, hash, err := auth.OneTimePassword()
	if err != nil {
		return err
	}
	switch a.action {
	case "create-admin":
		u := &store.User{Email: a.email, PasswordHash: hash, FirstName: "Admin", EmailConfirmed: true, Authorized: true,
			Admin: true, MustChangePassword: true}
		err := st.CreateUser(ctx, u)
		if errors.Is(err, store.ErrDuplicate) {
			return fmt.Errorf("%s already has an account: pitasks user reset-password %s gives it a one-time password, "+
				"and an admin makes it an admin on the Users page", a.email, a.email)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "admin %s created (user %d)\n", u.Email, u.ID)
	case "reset-password":
		u, err := st.UserByEmail(ctx, a.email)
		if errors.Is(err, store.ErrNotFound) || (err == nil && u.IsDeleted()) {
			return fmt.Errorf("no account has the e-mail %s (pitasks user create-admin %s makes an admin)", a.email, a.email)
		}
		if err != nil {
			return err
		}
		if err := st.SetOneTimePassword(ctx, u.ID, hash); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s has a new password; their sessions ended and their API tokens were revoked\n", u.Email)
		if !u.Authorized || !u.EmailConfirmed {
			fmt.Fprintf(w, "note: the account is not approved or its e-mail not confirmed: it cannot log in until an admin approves it\n")
		}
	}
	fmt.Fprintf(w, "one-time password: %s\n(shown once; it must be changed at the first login)\n", pw)
	return nil
}
