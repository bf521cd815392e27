// Package cli gives PiSeduce's commands and subcommands one convention, the one Debian and Go
// users expect:
//   - -h, -help and --help print the usage on stdout and exit 0;
//   - wrong arguments (an unknown flag, a missing or extra argument, an unknown subcommand)
//     print the error, then the usage, on stderr and exit 2;
//   - any other error is printed on stderr and exits 1.
//
// Flags may come before, between or after the arguments ("--" ends them), as in
// "pitasks nodes node-1 --json".
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Command is one command or subcommand: its name as typed ("pitasks nodes"), the synopsis of
// its arguments ("[NAME]"), what it does, how many arguments it takes and its flags.
type Command struct {
	Name string
	Args string
	Help string
	// MinArgs and MaxArgs bound the number of arguments; MaxArgs < 0: no upper bound.
	MinArgs, MaxArgs int
	Flags            *flag.FlagSet
}

// New is a command without flags yet; add them to its Flags.
func New(name, args, help string, minArgs, maxArgs int) *Command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package would print its error and the usage where it likes: Exit prints them.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &Command{Name: name, Args: args, Help: help, MinArgs: minArgs, MaxArgs: maxArgs, Flags: fs}
}

// Usage writes the usage: synopsis, help and flags.
func (c *Command) Usage(w io.Writer) {
	hasFlags := false
	c.Flags.VisitAll(func(*flag.Flag) { hasFlags = true })
	syn := "usage: " + c.Name
	if hasFlags {
		syn += " [flags]"
	}
	if c.Args != "" {
		syn += " " + c.Args
	}
	fmt.Fprintln(w, syn)
	if c.Help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(c.Help, "\n"))
	}
	if hasFlags {
		fmt.Fprintln(w, "\nflags:")
		c.Flags.SetOutput(w)
		c.Flags.PrintDefaults()
		c.Flags.SetOutput(io.Discard)
	}
}

// Parse parses args, flags anywhere among the arguments, and checks the number of arguments.
// The error is an *Error: help asked for, or wrong arguments.
func (c *Command) Parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.Flags.Parse(args); err != nil {
			return nil, &Error{Cmd: c, Err: err}
		}
		rest := c.Flags.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	switch {
	case len(pos) < c.MinArgs:
		return nil, c.Errorf("missing argument: %s", c.Args)
	case c.MaxArgs >= 0 && len(pos) > c.MaxArgs:
		return nil, c.Errorf("unexpected argument %q", pos[c.MaxArgs])
	}
	return pos, nil
}

// ParseHead parses the flags before the first argument only, for a command whose first
// argument names a subcommand with flags of its own.
func (c *Command) ParseHead(args []string) ([]string, error) {
	if err := c.Flags.Parse(args); err != nil {
		return nil, &Error{Cmd: c, Err: err}
	}
	return c.Flags.Args(), nil
}

// Errorf is a wrong-arguments error of c: Exit prints it with c's usage and exits 2.
func (c *Command) Errorf(format string, a ...any) error {
	return &Error{Cmd: c, Err: fmt.Errorf(format, a...)}
}

// Error is help asked for (Err is flag.ErrHelp) or wrong arguments given to Cmd.
type Error struct {
	Cmd *Command
	Err error
}

func (e *Error) Error() string { return e.Cmd.Name + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Exit prints what err calls for and returns the exit status: 0 when err is nil or help was
// asked for (the usage on stdout), 2 for wrong arguments (the error and the usage on stderr),
// 1 for any other error (printed on stderr after name).
func Exit(name string, err error, stdout, stderr io.Writer) int {
	var ce *Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce) && errors.Is(ce.Err, flag.ErrHelp):
		ce.Cmd.Usage(stdout)
		return 0
	case ce != nil:
		fmt.Fprintln(stderr, ce.Error())
		ce.Cmd.Usage(stderr)
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}
