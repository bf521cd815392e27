// Command piseduce is PiSeduce's command line for users: it reserves nodes, deploys them,
// logs in to them and releases them through the site's public API (/api/v1), as the web
// pages do.
//
//	piseduce login [--url URL] [--email E]      get an API token with your password, keep it
//	piseduce logout                              revoke the token, forget it
//	piseduce nodes|envs|reservations [--json]    what there is
//	piseduce reserve [-n N|--nodes a,b] [--model M] --for 2h [--start T]
//	piseduce deploy RESERVATION|--nodes a,b --env ENV [--ssh-key FILE] [--password-from-stdin] [--wait]
//	piseduce ssh NODE [-- COMMAND…]              the system ssh, the node's pinned host key
//	piseduce release NODE…                       end the reservation of these nodes
//	piseduce extend RESERVATION --by 1h
//	piseduce destroy NODE…|--all
//
// piseduce -h and piseduce COMMAND -h print the usage (see pkg/cli for the conventions).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/piseduce/piseduce/pkg/cli"
	"github.com/piseduce/piseduce/pkg/client"
	"github.com/piseduce/piseduce/pkg/version"
)

func main() {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, pollEvery: time.Second,
		eventsWait: 5 * time.Second, execSSH: execSSH}
	os.Exit(cli.Exit("piseduce", a.run(os.Args[1:]), os.Stdout, os.Stderr))
}

// app is one run of the command, with its input, output and environment.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// pollEvery is how often deploy --wait asks the site when its event stream is not to be had.
	pollEvery time.Duration
	// eventsWait is how long the site's event stream may take to open before polling instead.
	eventsWait time.Duration
	// execSSH replaces the process with ssh and argv (see ssh.go).
	execSSH func(argv []string) error
}

// subcommand is a command's usage and flags, and what it does once its arguments are parsed.
type subcommand struct {
	cmd *cli.Command
	run func(ctx context.Context, args []string) error
}

type command struct {
	name, summary string
	make          func(a *app) subcommand
}

// commands are piseduce's commands in the order the usage lists them.
var commands = []command{
	{"login", "get an API token with your e-mail and password, and keep it", (*app).loginCmd},
	{"logout", "revoke the kept token and forget it", (*app).logoutCmd},
	{"nodes", "the nodes: model, free or busy, state", (*app).nodesCmd},
	{"envs", "the environments you may deploy", (*app).envsCmd},
	{"reservations", "your current and future reservations", (*app).reservationsCmd},
	{"reserve", "reserve nodes for a time", (*app).reserveCmd},
	{"deploy", "deploy an environment on reserved nodes", (*app).deployCmd},
	{"ssh", "log in to a deployed node with ssh", (*app).sshCmd},
	{"release", "end the reservation of nodes now", (*app).releaseCmd},
	{"extend", "make a reservation longer", (*app).extendCmd},
	{"destroy", "destroy the deployments of nodes", (*app).destroyCmd},
}

func rootCommand() *cli.Command {
	var help strings.Builder
	help.WriteString("commands (piseduce COMMAND -h says more):\n")
	tw := tabwriter.NewWriter(&help, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	help.WriteString("\nlogin keeps the site's address and your token in $XDG_CONFIG_HOME/piseduce/ (~/.config/piseduce/).")
	return cli.New("piseduce", "COMMAND [ARGS…]", help.String(), 0, -1)
}

func (a *app) run(args []string) error {
	root := rootCommand()
	showVersion := root.Flags.Bool("version", false, "print the version, commit and build date, and exit")
	args, err := root.ParseHead(args)
	if err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(a.stdout, "piseduce", version.Get())
		return nil
	}
	if len(args) == 0 {
		return root.Errorf("missing command")
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		sc := c.make(a)
		pos, err := sc.cmd.Parse(args[1:])
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return sc.run(ctx, pos)
	}
	return root.Errorf("unknown command %q", args[0])
}

// newCommand is the command "piseduce name".
func newCommand(name, args, help string, minArgs, maxArgs int) *cli.Command {
	return cli.New("piseduce "+name, args, help, minArgs, maxArgs)
}

// client is a client of the site the user logged in to.
func (a *app) client() (*client.Client, error) {
	l, _, err := a.loadLogin()
	if err != nil {
		return nil, err
	}
	c := client.New(l.URL, l.Token)
	c.UserAgent = "piseduce/" + version.Get().Version
	return c, nil
}

// isTerminal says whether f is a terminal.
func isTerminal(f any) bool {
	fd, ok := f.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(fd.Fd()))
}

// printJSON writes v as the API gives it, indented.
func (a *app) printJSON(v any) error {
	return writeJSON(a.stdout, v)
}
