package powerconf

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Command configures the command driver (Driver "command"): the programs an admin gives to
// switch a port on and off and to read its state, such as uhubctl for a USB hub, a PDU's
// command-line tool or a script that drives home-made relays.
//
// Each action is an argv: the program (an absolute path) and its arguments, in which
// {port}, {switch} and {host} are replaced by the port number, the switch's name and its
// address. The program is run directly, never by a shell, with LANG=C and a plain PATH.
// Arguments show in ps to every local user: a password belongs in a root-only file the
// program reads, not in argv.
type Command struct {
	On     []string `json:"on"`
	Off    []string `json:"off"`
	Status []string `json:"status"`
	// Cycle is optional: when empty, a power cycle is off, a wait, and on.
	Cycle []string `json:"cycle,omitempty"`
	// StatusOn and StatusOff are regular expressions (RE2, {port}, {switch} and {host}
	// replaced) that the status command's standard output matches when the port is on,
	// and off: exactly one of them must match. Both empty: the exit code says, 0 on, 1 off.
	StatusOn  string `json:"status_on,omitempty"`
	StatusOff string `json:"status_off,omitempty"`
	// Timeout bounds each run of a program, in seconds [DefaultCommandTimeout]. The program
	// and its children are killed when it is over.
	Timeout int `json:"timeout,omitempty"`
}

// DefaultCommandTimeout bounds a power command when its switch sets no timeout; a busy
// machine or a PDU reached over the network may take seconds.
const DefaultCommandTimeout = 30 * time.Second

// maxArgs and maxArg bound an argv.
const (
	maxArgs = 64
	maxArg  = 1024
)

var placeholderRE = regexp.MustCompile(`\{[A-Za-z_]+\}`)

// commandPrograms names the programs of c, without their arguments (which may hold secrets).
func (c Command) String() string {
	prog := func(argv []string) string {
		if len(argv) == 0 {
			return `""`
		}
		return fmt.Sprintf("%s(%d args)", argv[0], len(argv)-1)
	}
	return fmt.Sprintf("{On:%s Off:%s Status:%s Cycle:%s StatusOn:%q StatusOff:%q Timeout:%d}",
		prog(c.On), prog(c.Off), prog(c.Status), prog(c.Cycle), c.StatusOn, c.StatusOff, c.Timeout)
}

// normalizeCommand checks the command settings of c; Host is optional.
func (c *Config) normalizeCommand(bad func(field, f string, a ...any)) {
	if c.Host = strings.TrimSpace(c.Host); c.Host != "" {
		checkHost(c.Host, bad)
	}
	k := &c.Command
	for _, a := range []struct {
		field    string
		argv     []string
		optional bool
	}{{"command.on", k.On, false}, {"command.off", k.Off, false}, {"command.status", k.Status, false}, {"command.cycle", k.Cycle, true}} {
		if len(a.argv) == 0 {
			if !a.optional {
				bad(a.field, "the command driver needs this command (an absolute program path, then its arguments)")
			}
			continue
		}
		checkArgv(a.field, a.argv, bad)
	}
	switch {
	case (k.StatusOn == "") != (k.StatusOff == ""):
		bad("command.status_on", "give both status_on and status_off (output that matches neither is then an error), or neither to go by the exit code")
	case k.StatusOn != "":
		for field, re := range map[string]string{"command.status_on": k.StatusOn, "command.status_off": k.StatusOff} {
			if _, err := regexp.Compile(c.Expand(re, 1, regexp.QuoteMeta)); err != nil {
				bad(field, "%q is not a regular expression: %v", re, err)
			} else if p := unknownPlaceholder(re); p != "" {
				bad(field, "unknown placeholder %s (want {port}, {switch} or {host})", p)
			}
		}
	}
	if k.Timeout < 0 || k.Timeout > 3600 {
		bad("command.timeout", "timeout must be from 0 (the default, %s) to 3600 seconds (got %d)", DefaultCommandTimeout, k.Timeout)
	}
}

func checkArgv(field string, argv []string, bad func(field, f string, a ...any)) {
	if len(argv) > maxArgs {
		bad(field, "at most %d arguments (got %d)", maxArgs, len(argv))
		return
	}
	for i, a := range argv {
		if len(a) > maxArg || !utf8.ValidString(a) || strings.IndexFunc(a, unicode.IsControl) >= 0 {
			bad(field, "argument %d must be one line of text, at most %d bytes", i, maxArg)
			return
		}
		if p := unknownPlaceholder(a); p != "" {
			bad(field, "argument %d: unknown placeholder %s (want {port}, {switch} or {host})", i, p)
			return
		}
	}
	if p := argv[0]; !filepath.IsAbs(p) || placeholderRE.MatchString(p) || filepath.Clean(p) != p {
		bad(field, "the program %q must be an absolute, clean path without placeholders (e.g. /usr/sbin/uhubctl)", p)
	}
}

func unknownPlaceholder(s string) string {
	for _, p := range placeholderRE.FindAllString(s, -1) {
		if p != "{port}" && p != "{switch}" && p != "{host}" {
			return p
		}
	}
	return ""
}

// Expand replaces the placeholders of s for port; quote escapes the switch's name and host
// (regexp.QuoteMeta in a regular expression).
func (c *Config) Expand(s string, port int, quote func(string) string) string {
	return strings.NewReplacer("{port}", strconv.Itoa(port), "{switch}", quote(c.Name), "{host}", quote(c.Host)).Replace(s)
}
