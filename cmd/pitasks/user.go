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
	"flag"
	"fmt"
	"io"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

const userUsage = `usage: pitasks user create-admin EMAIL | reset-password EMAIL

  create-admin EMAIL     create an approved admin account and print its one-time password
  reset-password EMAIL   give the account a new one-time password and print it

A one-time password must be changed at the next login; the account's sessions end and its
API tokens are revoked.`

// usageError is a command line that cannot mean anything: pitasks exits with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// userArgs is a parsed "user" command line.
type userArgs struct{ action, email string }

// parseUserArgs reads the arguments of "user" (before any configuration is read): -h prints
// the usage to w and returns flag.ErrHelp; anything wrong is a usageError.
func parseUserArgs(args []string, w io.Writer) (userArgs, error) {
	fs := flag.NewFlagSet("pitasks user", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(w, userUsage)
		return userArgs{}, err
	} else if err != nil {
		return userArgs{}, usageError{fmt.Sprintf("%v\n%s", err, userUsage)}
	}
	if fs.NArg() != 2 {
		return userArgs{}, usageError{userUsage}
	}
	a := userArgs{action: fs.Arg(0)}
	switch a.action {
	case "create-admin", "reset-password":
	default:
		return userArgs{}, usageError{fmt.Sprintf("unknown user command %q\n%s", a.action, userUsage)}
	}
	email, err := auth.ParseEmail(fs.Arg(1))
	if err != nil {
		return userArgs{}, usageError{fmt.Sprintf("%q: %v\n%s", fs.Arg(1), err, userUsage)}
	}
	a.email = email
	return a, nil
}

// userCmd runs a parsed "user" command and prints the one-time password to w.
func userCmd(ctx context.Context, st *store.Store, a userArgs, w io.Writer) error {
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
