// Package sshdtest starts a real OpenSSH sshd on a free 127.0.0.1 port for tests, as root,
// with a fresh ed25519 host key and one authorized client key. It skips (or fails in CI, see
// testenv) when not root or when sshd is missing.
package sshdtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/testenv"
)

// Server is a running sshd, stopped by t.Cleanup.
type Server struct {
	Addr       string        // 127.0.0.1:port
	HostKey    string        // its host public key, authorized_keys format, no comment
	HostPublic ssh.PublicKey // the same, parsed
	Signer     ssh.Signer    // a client key allowed to log in (as root)
	Dir        string        // its files: config, keys, log

	cmd *exec.Cmd
	log *syncBuffer
}

// Config adjusts Start. The zero value is what Start uses.
type Config struct {
	// Signer is the client key to authorize; nil = a new ed25519 key.
	Signer ssh.Signer
	// HostSigner is the host key to serve; nil = a new ed25519 key. Reuse one to restart
	// "the same node".
	HostSigner ssh.Signer
	// HostKeyPEM is HostSigner's private key in OpenSSH PEM form (needed with HostSigner).
	HostKeyPEM []byte
	// ExtraConfig lines are appended to sshd_config.
	ExtraConfig []string
}

// Start starts an sshd with fresh keys.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Config{})
}

// StartWith starts an sshd as cfg says.
func StartWith(t testing.TB, cfg Config) *Server {
	t.Helper()
	testenv.NeedRoot(t)
	sshd := testenv.NeedCommand(t, "sshd")
	if abs, err := filepath.Abs(sshd); err == nil {
		sshd = abs // sshd re-executes itself and wants an absolute path
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation folder
		t.Fatalf("sshdtest: %v", err)
	}
	dir := t.TempDir()
	s := &Server{Dir: dir, log: &syncBuffer{}}

	hostPEM := cfg.HostKeyPEM
	if cfg.HostSigner == nil {
		var signer ssh.Signer
		signer, hostPEM = NewKey(t)
		cfg.HostSigner = signer
	} else if hostPEM == nil {
		t.Fatal("sshdtest: Config.HostSigner needs Config.HostKeyPEM")
	}
	s.HostPublic = cfg.HostSigner.PublicKey()
	s.HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostPublic)))
	if cfg.Signer == nil {
		cfg.Signer, _ = NewKey(t)
	}
	s.Signer = cfg.Signer

	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	authPath := filepath.Join(dir, "authorized_keys")
	mustWrite(t, hostKeyPath, hostPEM, 0o600)
	mustWrite(t, authPath, ssh.MarshalAuthorizedKey(s.Signer.PublicKey()), 0o600)
	conf := []string{
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKeyPath,
		"AuthorizedKeysFile " + authPath,
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"StrictModes no",
		"UsePAM no",
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"LogLevel VERBOSE",
		// Sessions get a home of their own: bash run by sshd reads ~/.bashrc, and what the
		// machine's root keeps there (a pyenv init, say) must not speak in the tests' output.
		"SetEnv HOME=" + dir,
	}
	conf = append(conf, cfg.ExtraConfig...)
	confPath := filepath.Join(dir, "sshd_config")
	mustWrite(t, confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o600)

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("sshdtest: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.log.Reset()
		cmd := exec.Command(sshd, "-D", "-e", "-f", confPath, "-p", strconv.Itoa(port))
		cmd.Stdout, cmd.Stderr = s.log, s.log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its session children too
		if err := cmd.Start(); err != nil {
			t.Fatalf("sshdtest: start sshd: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if lastErr = waitReady(s.Addr, exited); lastErr == nil {
			s.cmd = cmd
			t.Cleanup(func() {
				// Its sessions too, even those a test froze or left running.
				for _, pid := range descendants(cmd.Process.Pid) {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				<-exited
				if t.Failed() {
					t.Logf("sshd log (%s):\n%s", s.Addr, s.log.String())
				}
			})
			return s
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	t.Fatalf("sshdtest: sshd did not start: %v\n%s", lastErr, s.log.String())
	return nil
}

// Log returns what sshd logged so far.
func (s *Server) Log() string { return s.log.String() }

// Stop freezes (SIGSTOP) sshd and all its descendants (its connection processes and their
// commands, which sshd puts in sessions of their own), as a node that lost power without a
// TCP reset; Continue resumes them.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.signalAll(t, syscall.SIGSTOP)
}

// Continue resumes a stopped sshd.
func (s *Server) Continue(t testing.TB) {
	t.Helper()
	s.signalAll(t, syscall.SIGCONT)
}

func (s *Server) signalAll(t testing.TB, sig syscall.Signal) {
	t.Helper()
	for _, pid := range descendants(s.cmd.Process.Pid) {
		if err := syscall.Kill(pid, sig); err != nil && err != syscall.ESRCH {
			t.Fatalf("sshdtest: signal %d: %v", pid, err)
		}
	}
}

// descendants returns pid and every process below it, read from /proc.
func descendants(root int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// NewKey returns a fresh ed25519 signer and its private key in OpenSSH PEM form.
func NewKey(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "sshdtest")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

func mustWrite(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady waits until addr sends an SSH banner, or sshd exits.
func waitReady(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited")
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 8)
			n, _ := conn.Read(buf)
			conn.Close()
			if bytes.HasPrefix(buf[:n], []byte("SSH-")) {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no SSH banner on %s after 10s", addr)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}
