package remote_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/remote/internal/sshdtest"
)

// connect starts an sshd and dials it with its host key pinned.
func connect(t *testing.T) (*sshdtest.Server, *remote.Client) {
	t.Helper()
	srv := sshdtest.Start(t)
	d := &remote.Dialer{Signer: srv.Signer, Timeout: 5 * time.Second, Keys: remote.StaticHostKey(srv.HostKey)}
	c, err := d.Dial(context.Background(), remote.Target{Addr: srv.Addr, Role: remote.RoleSystem, NodeID: 1})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

func TestRunAndOutput(t *testing.T) {
	_, c := connect(t)
	ctx := context.Background()
	out, err := c.Output(ctx, "echo", "hello")
	if err != nil || out != "hello\n" {
		t.Fatalf("Output = %q, %v", out, err)
	}
	var stdout, stderr bytes.Buffer
	err = c.Run(ctx, []string{"sh", "-c", `echo out; echo err >&2`}, remote.RunOptions{Stdout: &stdout, Stderr: &stderr})
	if err != nil || stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Fatalf("Run: stdout %q stderr %q err %v", stdout.String(), stderr.String(), err)
	}
	if err := c.Run(ctx, nil, remote.RunOptions{}); err == nil {
		t.Fatal("empty argv accepted")
	}
	if err := c.Run(ctx, []string{"echo", "a\x00b"}, remote.RunOptions{}); err == nil {
		t.Fatal("NUL byte accepted")
	}
}

func TestArgvArrivesLiterally(t *testing.T) {
	_, c := connect(t)
	args := []string{
		"plain",
		"with spaces  and\ttab",
		"it's",
		`"double"`,
		`'single'`,
		"$(touch /tmp/pwned-remote-test)",
		"`id`",
		"$HOME ${PATH}",
		"a; echo injected",
		"x && y || z | w & v",
		"line1\nline2",
		`back\slash\`,
		"*",
		"-n",
		"",
		"'\\''",
		"#not a comment",
		"> /tmp/pwned-remote-test",
	}
	os.Remove("/tmp/pwned-remote-test")
	out, err := c.Output(context.Background(), append([]string{"printf", `%s\n`}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join(args, "\n") + "\n"
	if out != want {
		t.Fatalf("round trip differs:\n got %q\nwant %q", out, want)
	}
	if _, err := os.Stat("/tmp/pwned-remote-test"); err == nil {
		os.Remove("/tmp/pwned-remote-test")
		t.Fatal("an argument was interpreted by the shell")
	}
}

func TestExitError(t *testing.T) {
	_, c := connect(t)
	err := c.Run(context.Background(), []string{"sh", "-c", `cat >/dev/null; echo "boom: it failed" >&2; exit 3`},
		remote.RunOptions{Stdin: strings.NewReader("s3cr3t-password\n")})
	var ee *remote.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v (%T), want *ExitError", err, err)
	}
	if ee.Status != 3 || !strings.Contains(ee.Stderr, "boom: it failed") {
		t.Fatalf("ExitError = %+v", ee)
	}
	msg := err.Error()
	for _, want := range []string{`"sh"`, "status 3", "boom: it failed", "127.0.0.1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "s3cr3t") {
		t.Errorf("message shows the secret given on stdin: %q", msg)
	}

	// Only the last 4 KiB of stderr are kept.
	err = c.Run(context.Background(), []string{"sh", "-c", `i=0; while [ $i -lt 2000 ]; do echo "line $i" >&2; i=$((i+1)); done; exit 1`}, remote.RunOptions{})
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v", err)
	}
	if len(ee.Stderr) > 4096+len("…") || !strings.HasSuffix(ee.Stderr, "line 1999\n") || !strings.HasPrefix(ee.Stderr, "…") {
		t.Fatalf("stderr tail: %d bytes, ends %q", len(ee.Stderr), ee.Stderr[len(ee.Stderr)-20:])
	}
}

// patternReader yields n pseudo-random-looking bytes without holding them.
type patternReader struct {
	n, off int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rem := p.n - p.off; int64(len(b)) > rem {
		b = b[:rem]
	}
	for i := range b {
		x := p.off + int64(i)
		b[i] = byte(x*2654435761>>13) ^ byte(x)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func TestStdinStreaming(t *testing.T) {
	_, c := connect(t)
	const size = 64 << 20
	h := sha256.New()
	if _, err := io.Copy(h, &patternReader{n: size}); err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	// A bound for a hang, not a speed test: under -race on a busy machine it took 113 s once.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := c.Run(ctx, []string{"sha256sum"}, remote.RunOptions{Stdin: &patternReader{n: size}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := strings.Cut(out.String(), " "); got != want {
		t.Fatalf("remote sha256 %q, want %q", got, want)
	}
}

// A large stdin and a large stdout come through whole, the command's stderr beside them.
func TestStdinToStdout(t *testing.T) {
	_, c := connect(t)
	const size = 8 << 20
	want := sha256.New()
	io.Copy(want, &patternReader{n: size})
	got := sha256.New()
	var stderr bytes.Buffer
	err := c.Run(context.Background(), []string{"sh", "-c", "cat; echo done >&2"},
		remote.RunOptions{Stdin: &patternReader{n: size}, Stdout: got, Stderr: &stderr})
	if err != nil || !bytes.Equal(got.Sum(nil), want.Sum(nil)) || stderr.String() != "done\n" {
		t.Fatalf("cat: %v, stdout sha256 %x want %x, stderr %q", err, got.Sum(nil), want.Sum(nil), stderr.String())
	}
}

// A stdin cut short by a read error fails Run, even though the command saw an end and
// exited 0.
func TestStdinReadErrorFails(t *testing.T) {
	_, c := connect(t)
	broken := errors.New("disk read error")
	stdin := io.MultiReader(&patternReader{n: 1 << 20}, iotest.ErrReader(broken))
	var out bytes.Buffer
	err := c.Run(context.Background(), []string{"sha256sum"}, remote.RunOptions{Stdin: stdin, Stdout: &out})
	if !errors.Is(err, broken) {
		t.Fatalf("Run = %v (stdout %q), want the read error", err, out.String())
	}
}

// A command that exits without reading its stdin is not held up by it: Run returns its
// status while the stream still has data.
func TestCommandNotReadingStdin(t *testing.T) {
	_, c := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := c.Run(ctx, []string{"true"}, remote.RunOptions{Stdin: &patternReader{n: 1 << 40}})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestUpload(t *testing.T) {
	_, c := connect(t)
	dir := t.TempDir()
	path := filepath.Join(dir, `a dir with 'quote`, `file "x" $(y).conf`)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	content := "line one\nit's $(not) `run`\n"
	if err := c.Upload(ctx, path, strings.NewReader(content), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != content {
		t.Fatalf("content %q, %v", got, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %04o, want 0640", st.Mode().Perm())
	}
	// Replacing keeps nothing of the old file, and leaves no temporary file.
	if err := c.Upload(ctx, path, strings.NewReader("v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	st, _ = os.Stat(path)
	if string(got) != "v2" || st.Mode().Perm() != 0o755 {
		t.Fatalf("after replace: %q %04o", got, st.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("left files behind: %v", entries)
	}
	// Errors: a folder that does not exist, a directory, a relative path.
	if err := c.Upload(ctx, filepath.Join(dir, "missing", "f"), strings.NewReader("x"), 0o644); err == nil {
		t.Fatal("upload into a missing folder succeeded")
	}
	if err := c.Upload(ctx, dir, strings.NewReader("x"), 0o644); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("upload onto a directory: %v", err)
	}
	if err := c.Upload(ctx, "relative/file", strings.NewReader("x"), 0o644); err == nil {
		t.Fatal("relative path accepted")
	}
}

// TestHostKeyMismatchRefused: a node presenting another key than the pinned one is refused
// before any login, and the error carries the key it presented.
func TestHostKeyMismatchRefused(t *testing.T) {
	srv := sshdtest.Start(t)
	other, _ := sshdtest.NewKey(t)
	ctx := context.Background()
	keys := remote.StaticHostKey(remote.AuthorizedKey(other.PublicKey()))
	d := &remote.Dialer{Signer: srv.Signer, Timeout: 5 * time.Second, Keys: keys}
	c, err := d.Dial(ctx, remote.Target{Addr: srv.Addr, Role: remote.RoleSystem, NodeID: 4})
	if err == nil {
		c.Close()
		t.Fatal("dial with a wrong pinned key succeeded")
	}
	if !errors.Is(err, remote.ErrHostKeyMismatch) || errors.Is(err, remote.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrHostKeyMismatch (the node answered: not ErrUnreachable)", err)
	}
	var mm *remote.MismatchError
	if !errors.As(err, &mm) || remote.AuthorizedKey(mm.Presented) != srv.HostKey ||
		remote.AuthorizedKey(mm.Pinned) != remote.AuthorizedKey(other.PublicKey()) || mm.Target.NodeID != 4 {
		t.Fatalf("err = %#v, want a *MismatchError with the presented and pinned keys", err)
	}
	msg := err.Error()
	for _, want := range []string{srv.Addr, "system", "node 4",
		ssh.FingerprintSHA256(srv.HostPublic), ssh.FingerprintSHA256(other.PublicKey())} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	// No session was ever opened: sshd never authenticated us.
	if log := srv.Log(); strings.Contains(log, "Accepted publickey") {
		t.Fatalf("sshd accepted a login despite the mismatch:\n%s", log)
	}
}

// TestNoKeyNoConnection: with no key pinned nothing is trusted on first use, and no TCP
// connection is even opened.
func TestNoKeyNoConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	signer, _ := sshdtest.NewKey(t)
	for _, keys := range []remote.HostKeyStore{remote.StaticHostKey(""), &remote.MemoryHostKeys{}} {
		d := &remote.Dialer{Signer: signer, Timeout: 5 * time.Second, Keys: keys}
		_, err := d.Dial(context.Background(), remote.Target{Addr: l.Addr().String(), Role: remote.RoleNFS, NodeID: 2})
		if !errors.Is(err, remote.ErrNoHostKey) {
			t.Fatalf("%T: err = %v, want ErrNoHostKey", keys, err)
		}
		if !strings.Contains(err.Error(), "role nfs") || !strings.Contains(err.Error(), l.Addr().String()) ||
			!strings.Contains(err.Error(), "nothing is trusted on first use") {
			t.Fatalf("unclear error: %v", err)
		}
	}
	select {
	case <-accepted:
		t.Fatal("a connection was opened to a node whose key is unknown")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestNewHostKeyServedBySSHD: a key made by NewHostKey is a host key OpenSSH's sshd loads, and
// pinning its public half is all a dial needs.
func TestNewHostKeyServedBySSHD(t *testing.T) {
	private, public, err := remote.NewHostKey("root@node-3")
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.ParsePrivateKey(private)
	if err != nil {
		t.Fatal(err)
	}
	if remote.AuthorizedKey(hostSigner.PublicKey()) != remote.AuthorizedKey(public) || public.Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("public half %s does not match the private key", remote.AuthorizedKey(public))
	}
	srv := sshdtest.StartWith(t, sshdtest.Config{HostSigner: hostSigner, HostKeyPEM: private})
	keys := &remote.MemoryHostKeys{}
	keys.PinHostKey(context.Background(), remote.RoleSystem, 3, remote.AuthorizedKey(public))
	d := &remote.Dialer{Signer: srv.Signer, Timeout: 5 * time.Second, Keys: keys}
	c, err := d.Dial(context.Background(), remote.Target{Addr: srv.Addr, Role: remote.RoleSystem, NodeID: 3})
	if err != nil {
		t.Fatalf("dial with the pinned new key: %v", err)
	}
	c.Close()
	// Another new key is another key.
	_, again, _ := remote.NewHostKey("root@node-3")
	if remote.AuthorizedKey(again) == remote.AuthorizedKey(public) {
		t.Fatal("NewHostKey made the same key twice")
	}
}

func TestContextDeadlineStopsCommand(t *testing.T) {
	_, c := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Run(ctx, []string{"sleep", "61.25"}, remote.RunOptions{})
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if elapsed > 1500*time.Millisecond {
		t.Fatalf("Run returned after %v, deadline was 500ms", elapsed)
	}
	// The remote process was signalled.
	for deadline := time.Now().Add(3 * time.Second); ; {
		err := c.Run(context.Background(), []string{"pgrep", "-f", "sleep 61.25"}, remote.RunOptions{})
		var ee *remote.ExitError
		if errors.As(err, &ee) && ee.Status == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("remote sleep still running (pgrep: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The connection still works.
	if out, err := c.Output(context.Background(), "echo", "ok"); err != nil || out != "ok\n" {
		t.Fatalf("after cancel: %q %v", out, err)
	}
}

func TestDialClosedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	signer, _ := sshdtest.NewKey(t)
	d := &remote.Dialer{Signer: signer, Timeout: 5 * time.Second, Keys: remote.StaticHostKey(remote.AuthorizedKey(signer.PublicKey()))}
	start := time.Now()
	_, err = d.Dial(context.Background(), remote.Target{Addr: addr, Role: remote.RoleSystem, NodeID: 9})
	if err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	if time.Since(start) > time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("unclear error: %v", err)
	}
	if !errors.Is(err, remote.ErrUnreachable) || errors.Is(err, remote.ErrTimeout) {
		t.Fatalf("err = %v: want ErrUnreachable, not ErrTimeout", err)
	}
}

func TestDialHonoursTimeoutAndContext(t *testing.T) {
	// A listener that accepts but never speaks SSH.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	signer, _ := sshdtest.NewKey(t)
	keys := remote.StaticHostKey(remote.AuthorizedKey(signer.PublicKey()))
	target := remote.Target{Addr: l.Addr().String(), Role: remote.RoleSystem, NodeID: 1}

	d := &remote.Dialer{Signer: signer, Timeout: 300 * time.Millisecond, Keys: keys}
	start := time.Now()
	_, err = d.Dial(context.Background(), target)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("timeout: err = %v after %v", err, time.Since(start))
	}
	if !errors.Is(err, remote.ErrTimeout) || !errors.Is(err, remote.ErrUnreachable) {
		t.Fatalf("timeout: err = %v, want ErrTimeout and ErrUnreachable", err)
	}

	d.Timeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	_, err = d.Dial(ctx, target)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("cancel: err = %v after %v", err, time.Since(start))
	}
	if errors.Is(err, remote.ErrUnreachable) {
		t.Fatalf("cancel: err = %v is ours, not the node's: not ErrUnreachable", err)
	}
}

func TestKeepAliveNoticesDeadNode(t *testing.T) {
	srv := sshdtest.Start(t)
	d := &remote.Dialer{Signer: srv.Signer, Timeout: 5 * time.Second, Keys: remote.StaticHostKey(srv.HostKey),
		KeepAlive: 200 * time.Millisecond}
	c, err := d.Dial(context.Background(), remote.Target{Addr: srv.Addr, Role: remote.RoleSystem, NodeID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Keepalives answered: a command longer than the dead-node delay still succeeds.
	if err := c.Run(context.Background(), []string{"sleep", "1"}, remote.RunOptions{}); err != nil {
		t.Fatalf("with keepalives: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background(), []string{"sleep", "8"}, remote.RunOptions{}) }()
	time.Sleep(200 * time.Millisecond)
	srv.Stop(t)
	defer srv.Continue(t)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "keepalive") || !errors.Is(err, remote.ErrUnreachable) {
			t.Fatalf("err = %v, want a keepalive failure, ErrUnreachable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a frozen node was not noticed")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "id_ed25519")
	s1, err := remote.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if s1.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("type %s", s1.PublicKey().Type())
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v %v", st.Mode(), err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Fatalf("not an OpenSSH key: %.40q", data)
	}
	pub, _ := os.ReadFile(path + ".pub")
	k, err := remote.ParseKey(string(pub))
	if err != nil || remote.AuthorizedKey(k) != remote.AuthorizedKey(s1.PublicKey()) {
		t.Fatalf(".pub %q: %v", pub, err)
	}
	s2, err := remote.LoadOrCreateKey(path)
	if err != nil || remote.AuthorizedKey(s2.PublicKey()) != remote.AuthorizedKey(s1.PublicKey()) {
		t.Fatalf("reload gave another key: %v", err)
	}
	os.Remove(path + ".pub")
	if _, err := remote.LoadOrCreateKey(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".pub"); err != nil {
		t.Fatalf(".pub not rewritten: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := remote.LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("open key accepted: %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("garbage secret"), 0o600)
	if _, err := remote.LoadOrCreateKey(path); err == nil || strings.Contains(err.Error(), "garbage") {
		t.Fatalf("bad key: %v", err)
	}
}
