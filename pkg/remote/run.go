package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/errkind"
)

// stderrTail is how much of a command's stderr an ExitError keeps.
const stderrTail = 4 << 10

// cancelGrace is how long Run waits for the session to wind down after ctx ends.
const cancelGrace = 500 * time.Millisecond

// RunOptions connects a remote command's standard streams. Nil Stdin is empty; nil writers
// discard. Stdin is streamed (never buffered whole), so it may carry a disk image, or a secret
// that must not appear in a command line: Run never logs nor reports it.
type RunOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// ExitError is a remote command that ended with a non-zero status (or a signal).
type ExitError struct {
	Command string // argv[0]
	Target  string // the node, as Target.String
	Status  int
	Signal  string // set when the command was killed by a signal
	Stderr  string // last 4 KiB of its stderr
}

func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "remote: %q on %s exited with status %d", e.Command, e.Target, e.Status)
	if e.Signal != "" {
		fmt.Fprintf(&b, " (signal %s)", e.Signal)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(": ")
		b.WriteString(s)
	}
	return b.String()
}

// Is makes errors.Is(err, errkind.CommandFailed) true.
func (e *ExitError) Is(target error) bool { return target == errkind.CommandFailed }

// Run runs argv on the node and waits for it. Every element of argv is single-quoted, so it
// reaches the remote program literally whatever it holds (spaces, quotes, $(…), ;, newlines):
// to use shell syntax, run {"sh", "-c", script, "sh", arg1, …} with the data in the args.
// When ctx ends the remote process is sent SIGTERM, the session is closed and Run returns
// ctx's error promptly. A non-zero exit is an *ExitError.
func (c *Client) Run(ctx context.Context, argv []string, o RunOptions) error {
	cmd, err := commandLine(argv)
	if err != nil {
		return err
	}
	name := argv[0]
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remote: %q on %s: %w", name, c.target, context.Cause(ctx))
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		return withKind(fmt.Errorf("remote: %q on %s: open session: %w", name, c.target, c.explain(err)), ErrUnreachable)
	}
	defer sess.Close()

	tail := &tailBuffer{max: stderrTail}
	stdout := &guardedWriter{w: o.Stdout}
	stderr := &guardedWriter{w: tail}
	if o.Stderr != nil {
		stderr.w = io.MultiWriter(o.Stderr, tail)
	}
	group := &groupSniffer{next: stderr}
	// After Run returns the caller's writers are never written again, even if a copy
	// goroutine of an abandoned session is still draining.
	defer stdout.close()
	defer stderr.close()
	var stdin io.WriteCloser
	if o.Stdin != nil {
		if stdin, err = sess.StdinPipe(); err != nil {
			return fmt.Errorf("remote: %q on %s: %w", name, c.target, err)
		}
	}
	sess.Stdout = stdout
	sess.Stderr = group
	if err := sess.Start(cmd); err != nil {
		return withKind(fmt.Errorf("remote: %q on %s: start: %w", name, c.target, c.explain(err)), ErrUnreachable)
	}
	fed := make(chan error, 1)
	if stdin != nil {
		go feed(stdin, o.Stdin, fed)
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
		if err == nil {
			// feed reports a read error before the command can see its stdin end, so a
			// command that exited on a stream cut short finds it here. A command that exited
			// without reading all of its stdin is not an error.
			select {
			case ferr := <-fed:
				if ferr != nil {
					return fmt.Errorf("remote: %q on %s: reading its stdin: %w", name, c.target, ferr)
				}
			default:
			}
		}
	case <-ctx.Done():
		// OpenSSH honours the signal request for non-root users only (root sessions are run by
		// its monitor, which refuses): also kill the command's process group from a second
		// session, in the background so Run returns promptly.
		_ = sess.Signal(ssh.SIGTERM)
		if pgid := group.pgid(); pgid > 1 {
			go c.killGroup(pgid)
		}
		sess.Close()
		select {
		case <-waited:
		case <-time.After(cancelGrace):
		}
		return fmt.Errorf("remote: %q on %s: %w", name, c.target, context.Cause(ctx))
	}
	if err == nil {
		return nil
	}
	stderr.close() // the tail is complete: Wait returned
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Command: name, Target: c.target.String(), Status: ee.ExitStatus(),
			Signal: ee.Signal(), Stderr: tail.String()}
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return withKind(fmt.Errorf("remote: %q on %s: the connection ended before the command reported its status: %w",
			name, c.target, c.explain(err)), ErrUnreachable)
	}
	return withKind(fmt.Errorf("remote: %q on %s: %w", name, c.target, c.explain(err)), ErrUnreachable)
}

// copyBufferSize is how much of a command's stdin each read takes, and so each SSH packet
// carries: one packet of OpenSSH's sessions. x/crypto/ssh sizes a channel's packet buffer and
// its cipher's output buffer by the largest write, so this size sets all three buffers of a copy
// in flight, one per node: 16 KiB would hold ~80 KiB a node instead of ~140 for ~1.15-1.35 x the
// CPU per GB, which xz's later copies, at the CPU goal already, cannot afford (BENCHMARKS.md,
// "Smaller packets").
const copyBufferSize = 32 << 10

// copyBuffers are the buffers feed reads into, reused from one command to the next.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// feed copies r to the command's stdin w, sends r's error (nil at its end) on fed, then
// closes w: the command reads its end. It reads r itself, into a pooled buffer, instead of setting
// ssh.Session.Stdin, which passes the stream through an io.Pipe between two goroutines, each
// copying it with a 32 KiB buffer of its own: one buffer and one copy per command less (one
// image copy per node in flight).
func feed(w io.WriteCloser, r io.Reader, fed chan<- error) {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	var rerr error
	for {
		n, err := r.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				break // the session ended: Wait says why
			}
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	fed <- rerr
	w.Close()
}

// drain copies a command's output r to w. It reads into a small buffer, which holds most
// commands' whole output, and takes a pooled copy buffer only once a read fills it (a large
// output: a card read back). Left to io.Copy, each of stdout and stderr would hold a 32 KiB
// buffer for as long as the command runs, an image copy's included.
func drain(w io.Writer, r io.Reader) (int64, error) {
	const small = 512
	buf := make([]byte, small)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if n == small && len(buf) == small {
			big := copyBuffers.Get().(*[]byte)
			defer copyBuffers.Put(big)
			buf = *big
		}
	}
}

// Output runs argv and returns its standard output; stderr goes into an *ExitError on failure.
func (c *Client) Output(ctx context.Context, argv ...string) (string, error) {
	var out bytes.Buffer
	err := c.Run(ctx, argv, RunOptions{Stdout: &out})
	return out.String(), err
}

// Upload writes r to the absolute path on the node with mode (permission and setuid, setgid,
// sticky bits), replacing any file there atomically (written beside it, then renamed: a
// symlink at path is replaced, not followed). It needs only sh, cat, chmod and mv on the node.
func (c *Client) Upload(ctx context.Context, path string, r io.Reader, mode os.FileMode) error {
	if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") {
		return fmt.Errorf("remote: upload to %s: %q is not an absolute file path", c.target, path)
	}
	const script = `set -e
umask 077
if [ -d "$1" ]; then echo "upload: $1 is a directory" >&2; exit 1; fi
tmp="$1.upload-$$"
trap 'rm -f "$tmp"' EXIT
trap 'rm -f "$tmp"; exit 143' HUP INT TERM
cat > "$tmp"
chmod "$2" "$tmp"
mv -f "$tmp" "$1"
trap - EXIT`
	err := c.Run(ctx, []string{"sh", "-c", script, "sh", path, octalMode(mode)}, RunOptions{Stdin: r})
	if err != nil {
		return fmt.Errorf("remote: upload %s: %w", path, err)
	}
	return nil
}

func octalMode(m os.FileMode) string {
	v := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}

// newSession opens a session, giving up when ctx ends (a session opened late is closed).
func (c *Client) newSession(ctx context.Context) (*ssh.Session, error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := c.conn.NewSession()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, context.Cause(ctx)
	}
}

// explain adds why the connection was closed by the keepalive, if it was.
func (c *Client) explain(err error) error {
	if dead := c.dead(); dead != nil {
		return fmt.Errorf("%w (connection closed: %v)", err, dead)
	}
	return err
}

// killTimeout bounds the session that kills a cancelled command.
const killTimeout = 5 * time.Second

// killGroup sends SIGTERM to a remote process group, best effort.
func (c *Client) killGroup(pgid int) {
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	_ = c.Run(ctx, []string{"kill", "-TERM", "--", "-" + strconv.Itoa(pgid)}, RunOptions{})
}

// groupMarker starts the line the wrapper writes on stderr to report its process group.
const groupMarker = "\x1episeduce-pgid="

// wrapper runs before every command: it reports its process group (the session's: sshd makes
// each session a process group) on stderr, where Run takes it out, then execs the argv it is
// given. Run kills that group when its ctx ends.
const wrapper = `g=; read -r _ _ _ _ g _ 2>/dev/null </proc/$$/stat; printf '\036piseduce-pgid=%s\n' "$g" >&2; exec "$@"`

// commandLine quotes every argv element for a POSIX shell and joins them, behind the wrapper.
func commandLine(argv []string) (string, error) {
	if len(argv) == 0 || argv[0] == "" {
		return "", errors.New("remote: empty command")
	}
	var b strings.Builder
	b.WriteString("sh -c " + quote(wrapper) + " sh ")
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			// Name the program only: arguments may hold data the caller did not mean to show.
			return "", fmt.Errorf("remote: %q: argument %d holds a NUL byte, which no remote command can receive", path.Base(argv[0]), i)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quote(a))
	}
	return b.String(), nil
}

// quote single-quotes s for a POSIX shell: inside '…' nothing is special but ' itself,
// written as '\”.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// groupSniffer takes the wrapper's first stderr line out of the stream and keeps the process
// group it reports; anything else passes through unchanged.
type groupSniffer struct {
	next io.Writer

	mu    sync.Mutex
	done  bool // the first line has been seen (or is not the marker)
	head  []byte
	group int
}

func (g *groupSniffer) Write(p []byte) (int, error) {
	n := len(p)
	g.mu.Lock()
	if g.done {
		g.mu.Unlock()
		_, err := g.next.Write(p)
		return n, err
	}
	g.head = append(g.head, p...)
	line, rest, complete := bytes.Cut(g.head, []byte("\n"))
	if !complete && len(g.head) < 64 && bytes.HasPrefix([]byte(groupMarker), g.head) {
		g.mu.Unlock() // maybe the marker, not whole yet
		return n, nil
	}
	g.done = true
	out := g.head
	if complete && bytes.HasPrefix(line, []byte(groupMarker)) {
		g.group, _ = strconv.Atoi(string(line[len(groupMarker):]))
		out = rest
	}
	g.head = nil
	g.mu.Unlock()
	if len(out) > 0 {
		if _, err := g.next.Write(out); err != nil {
			return n, err
		}
	}
	return n, nil
}

// ReadFrom is how x/crypto/ssh copies the command's stderr in: see drain.
func (g *groupSniffer) ReadFrom(r io.Reader) (int64, error) { return drain(g, r) }

// pgid returns the reported process group, or 0.
func (g *groupSniffer) pgid() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.group
}

// guardedWriter forwards writes to w until closed, then discards them.
type guardedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.w == nil {
		return len(p), nil
	}
	return g.w.Write(p)
}

// ReadFrom is how x/crypto/ssh copies the command's stdout in: see drain.
func (g *guardedWriter) ReadFrom(r io.Reader) (int64, error) { return drain(g, r) }

func (g *guardedWriter) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max       int
	buf       []byte
	truncated bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.truncated = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	if t.truncated {
		return "…" + string(t.buf)
	}
	return string(t.buf)
}
