package cli

import (
	"bytes"
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		args     []string
		pos      []string
		json     bool
		min, max int
		err      string
	}{
		{args: nil, max: 1},
		{args: []string{"a", "--json"}, pos: []string{"a"}, json: true, max: 1},
		{args: []string{"--json", "a"}, pos: []string{"a"}, json: true, max: 1},
		{args: []string{"a", "--", "--json"}, pos: []string{"a", "--json"}, max: 2},
		{args: []string{"a", "b"}, max: 1, err: `unexpected argument "b"`},
		{args: []string{"a", "b", "c"}, pos: []string{"a", "b", "c"}, max: -1},
		{args: nil, min: 1, max: 1, err: "missing argument: NAME"},
		{args: []string{"-x"}, max: 1, err: "flag provided but not defined: -x"},
	} {
		cmd := New("prog sub", "NAME", "", c.min, c.max)
		j := cmd.Flags.Bool("json", false, "JSON")
		pos, err := cmd.Parse(c.args)
		var ce *Error
		if c.err != "" {
			if !errors.As(err, &ce) || ce.Cmd != cmd || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want an *Error %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(pos, c.pos) || *j != c.json {
			t.Errorf("%q: %q json=%t %v, want %q json=%t", c.args, pos, *j, err, c.pos, c.json)
		}
	}
}

func TestExit(t *testing.T) {
	cmd := New("prog sub", "NAME", "Does things.", 1, 1)
	cmd.Flags.Bool("json", false, "print JSON")
	var out, errOut bytes.Buffer
	_, err := cmd.Parse([]string{"--help"})
	if code := Exit("prog", err, &out, &errOut); code != 0 || errOut.Len() != 0 ||
		out.String() != "usage: prog sub [flags] NAME\n\nDoes things.\n\nflags:\n  -json\n    \tprint JSON\n" {
		t.Errorf("help: %d %q %q", code, out.String(), errOut.String())
	}
	out.Reset()
	_, err = cmd.Parse(nil)
	if code := Exit("prog", err, &out, &errOut); code != 2 || out.Len() != 0 ||
		!strings.HasPrefix(errOut.String(), "prog sub: missing argument: NAME\nusage: prog sub [flags] NAME\n") {
		t.Errorf("missing argument: %d %q %q", code, out.String(), errOut.String())
	}
	errOut.Reset()
	if code := Exit("prog", errors.New("disk full"), &out, &errOut); code != 1 || errOut.String() != "prog: disk full\n" {
		t.Errorf("other error: %d %q", code, errOut.String())
	}
	if code := Exit("prog", nil, &out, &errOut); code != 0 {
		t.Errorf("nil: %d", code)
	}
	if !errors.Is(&Error{Cmd: cmd, Err: flag.ErrHelp}, flag.ErrHelp) {
		t.Error("an *Error does not unwrap")
	}
}
