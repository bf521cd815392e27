package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/piseduce/piseduce/pkg/client"
)

func (a *app) loginCmd() subcommand {
	c := newCommand("login", "", `Logs in to a PiSeduce site with your e-mail and password and keeps the API token it
gets (valid 90 days, listed on your Account page) for the other commands. The password is
read from the terminal without echo, or from the first line of stdin when it is not a
terminal. Without --url, the site logged in to before.`, 0, 0)
	siteURL := c.Flags.String("url", "", "the site, e.g. http://pimaster:9000")
	email := c.Flags.String("email", "", "your e-mail (asked when not given)")
	return subcommand{c, func(ctx context.Context, _ []string) error {
		site := *siteURL
		if site == "" {
			old, _, err := a.loadLogin()
			if err != nil {
				return c.Errorf("give the site with --url http://PIMASTER:9000")
			}
			site = old.URL
		}
		site, err := client.URL(site)
		if err != nil {
			return c.Errorf("%v", err)
		}
		in := bufio.NewReader(a.stdin)
		tty := isTerminal(a.stdin)
		if *email == "" {
			if !tty {
				return c.Errorf("give --email when stdin is not a terminal")
			}
			fmt.Fprint(a.stderr, "E-mail: ")
			if *email, err = readLine(in); err != nil {
				return err
			}
		}
		var pw string
		if tty {
			fmt.Fprint(a.stderr, "Password: ")
			b, err := term.ReadPassword(int(a.stdin.(interface{ Fd() uintptr }).Fd()))
			fmt.Fprintln(a.stderr)
			if err != nil {
				return fmt.Errorf("reading the password: %w", err)
			}
			pw = string(b)
		} else if pw, err = readLine(in); err != nil {
			return fmt.Errorf("reading the password from stdin: %w", err)
		}
		host, _ := os.Hostname()
		cl := client.New(site, "")
		tok, err := cl.CreateToken(ctx, client.TokenRequest{Email: *email, Password: pw, Name: "piseduce on " + host})
		if err != nil {
			return err
		}
		path, err := a.saveLogin(login{URL: site, Token: tok.Token})
		if err != nil {
			return fmt.Errorf("keeping the token: %w", err)
		}
		fmt.Fprintf(a.stdout, "Logged in to %s as %s until %s (token kept in %s).\n", site, strings.TrimSpace(*email),
			tok.ExpiresAt.Local().Format("2006-01-02 15:04"), path)
		return nil
	}}
}

// readLine reads one line without its end; an empty input is an error.
func readLine(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && s != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("nothing to read")
		}
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

func (a *app) logoutCmd() subcommand {
	c := newCommand("logout", "", "Revokes the kept API token on the site and forgets it.", 0, 0)
	return subcommand{c, func(ctx context.Context, _ []string) error {
		l, path, err := a.loadLogin()
		if err != nil {
			return err
		}
		err = client.New(l.URL, l.Token).RevokeToken(ctx)
		switch {
		case client.IsStatus(err, http.StatusUnauthorized):
			// Already revoked or expired: nothing left to revoke.
		case err != nil:
			return fmt.Errorf("the site did not revoke the token (%w); it is still kept in %s", err, path)
		}
		if err := os.Remove(path); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Logged out of %s.\n", l.URL)
		return nil
	}}
}
