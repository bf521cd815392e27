package discovery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"time"
)

var errTimeout = errors.New("timed out")

// logTail reads the lines appended to dnsmasq's log after it was made. A log that shrank was
// rotated or truncated: it is read again from its start.
type logTail struct {
	path    string
	off     int64
	partial []byte
}

func newLogTail(path string) *logTail {
	t := &logTail{path: path}
	if fi, err := os.Stat(path); err == nil {
		t.off = fi.Size()
	}
	return t
}

// lines returns the complete lines appended since the last call.
func (t *logTail) lines() ([]string, error) {
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		t.off, t.partial = 0, nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < t.off {
		t.off, t.partial = 0, nil
	}
	if fi.Size() == t.off {
		return nil, nil
	}
	b, err := io.ReadAll(io.NewSectionReader(f, t.off, min(fi.Size()-t.off, 16<<20)))
	if err != nil {
		return nil, err
	}
	t.off += int64(len(b))
	b = append(t.partial, b...)
	var out []string
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	t.partial = append([]byte(nil), b...)
	return out, nil
}

// wait returns the first event that match accepts, or errTimeout after timeout.
func (t *logTail) wait(ctx context.Context, timeout time.Duration, match func(LogEvent) bool) (LogEvent, error) {
	deadline := time.Now().Add(timeout)
	for {
		lines, err := t.lines()
		if err != nil {
			return LogEvent{}, err
		}
		for _, l := range lines {
			if ev, ok := ParseLogLine(l); ok && match(ev) {
				return ev, nil
			}
		}
		if time.Now().After(deadline) {
			return LogEvent{}, errTimeout
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return LogEvent{}, err
		}
	}
}
