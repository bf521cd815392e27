// Package logging makes a daemon's slog logger from its -log-level and -log-format flags:
// text (key=value, for a terminal) or json (one object a line, for journald or a log shipper).
package logging

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// Flags are the logging flags of one command line.
type Flags struct {
	level, format *string
}

// AddFlags adds -log-level and -log-format to fs.
func AddFlags(fs *flag.FlagSet) Flags {
	return Flags{
		level:  fs.String("log-level", "info", "log level: debug, info, warn or error"),
		format: fs.String("log-format", "text", "log format: text (key=value) or json (one object a line)"),
	}
}

// Logger is the logger the parsed flags ask for, writing to w.
func (f Flags) Logger(w io.Writer) (*slog.Logger, error) {
	return New(w, *f.level, *f.format)
}

// New returns a logger of level (debug, info, warn, error) and format (text, json) on w.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}
