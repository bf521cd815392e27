// Package remote drives the nodes over SSH (golang.org/x/crypto/ssh): host keys are checked
// against pinned ones (never trusted blindly) and every remote command is an argv whose
// elements are each shell-quoted by construction, so no form field can become shell syntax.
package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults for the Dialer's zero fields.
const (
	DefaultTimeout   = 15 * time.Second
	DefaultKeepAlive = 15 * time.Second
	// keepAliveMisses is how many keepalive intervals may pass without an answer before the
	// node is considered dead and the connection closed.
	keepAliveMisses = 3
)

// Dialer opens SSH connections to nodes. It is safe for concurrent use.
type Dialer struct {
	Signer  ssh.Signer    // the pimaster's key (LoadOrCreateKey)
	Timeout time.Duration // TCP connect + SSH handshake; 0 = DefaultTimeout
	Keys    HostKeyStore  // pinned host keys
	// KeepAlive is the interval between keepalive requests; a node that answers none for three
	// intervals is considered dead and the connection is closed, which fails running commands.
	// 0 = DefaultKeepAlive; negative = no keepalives.
	KeepAlive time.Duration
	// Ciphers is the cipher preference, fastest first; nil = Ciphers(), chosen for this CPU.
	Ciphers []string
}

// Target names one SSH endpoint of a node.
type Target struct {
	Addr   string // host:port
	User   string // "" = root
	Role   string // RoleNFS or RoleSystem: which pinned key applies
	NodeID uint   // the node (its key is stored under 0 for RoleNFS)
}

func (t Target) user() string {
	if t.User == "" {
		return "root"
	}
	return t.User
}

// String names the target in errors: user@host:port (role R, node N).
func (t Target) String() string {
	return fmt.Sprintf("%s@%s (role %s, node %d)", t.user(), t.Addr, t.Role, t.NodeID)
}

// Client is one SSH connection to a node. Run may be called concurrently (one session each).
type Client struct {
	conn   *ssh.Client
	target Target

	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	deadErr   error // why the connection was closed by us (keepalive), if it was
}

// Target returns the target the client is connected to.
func (c *Client) Target() Target { return c.target }

// Cipher names the cipher negotiated for what the client sends (the image, on a copy).
func (c *Client) Cipher() string {
	if m, ok := c.conn.Conn.(ssh.AlgorithmsConnMetadata); ok {
		return m.Algorithms().Write.Cipher
	}
	return ""
}

// Close closes the connection; running commands fail.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		err = c.conn.Close()
	})
	return err
}

// closeDead closes the connection and remembers why.
func (c *Client) closeDead(reason error) {
	c.mu.Lock()
	if c.deadErr == nil {
		c.deadErr = reason
	}
	c.mu.Unlock()
	c.Close()
}

// dead returns why the connection was closed by the keepalive, or nil.
func (c *Client) dead() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadErr
}

// Dial connects and authenticates to t, which must present the host key pinned for its role
// and node: with no key pinned the dial is refused before any connection is made (nothing is
// trusted on first use), and another key is refused (*MismatchError) before any command runs.
// ctx and d.Timeout both bound the TCP connect and the SSH handshake.
func (d *Dialer) Dial(ctx context.Context, t Target) (*Client, error) {
	if d.Signer == nil {
		return nil, fmt.Errorf("remote: dial %s: the dialer has no key", t)
	}
	if d.Keys == nil {
		return nil, fmt.Errorf("remote: dial %s: the dialer has no host-key store", t)
	}
	if t.Role != RoleNFS && t.Role != RoleSystem {
		return nil, fmt.Errorf("remote: dial %s: unknown host-key role %q", t, t.Role)
	}
	stored, found, err := d.Keys.HostKey(ctx, t.Role, keyNode(t.Role, t.NodeID))
	if err != nil {
		return nil, fmt.Errorf("remote: dial %s: look up host key: %w", t, err)
	}
	if !found {
		return nil, fmt.Errorf("%w for %s: refusing to connect (nothing is trusted on first use)", ErrNoHostKey, t)
	}
	pinned, err := ParseKey(stored)
	if err != nil {
		return nil, fmt.Errorf("remote: dial %s: the stored host key is unusable: %w", t, err)
	}

	chk := &hostKeyCheck{target: t, pinned: pinned}
	cfg := &ssh.ClientConfig{
		User:              t.user(),
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(d.Signer)},
		HostKeyCallback:   chk.check,
		HostKeyAlgorithms: hostKeyAlgorithms(pinned),
	}
	cfg.Ciphers = d.Ciphers
	if cfg.Ciphers == nil {
		cfg.Ciphers = Ciphers()
	}

	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nd net.Dialer
	conn, err := nd.DialContext(dctx, "tcp", t.Addr)
	if err != nil {
		return nil, d.dialError(ctx, dctx, t, "connect", timeout, err)
	}
	deadline, _ := dctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(dctx, func() { conn.Close() }) // ctx cancelled mid-handshake
	sconn, chans, reqs, err := ssh.NewClientConn(conn, t.Addr, cfg)
	if !stop() {
		// ctx ended: the connection is (being) closed whatever the handshake said.
		if err == nil {
			sconn.Close()
			err = dctx.Err()
		}
	}
	if err != nil {
		conn.Close()
		if keyErr := chk.err(); keyErr != nil {
			return nil, keyErr
		}
		return nil, d.dialError(ctx, dctx, t, "ssh handshake", timeout, err)
	}
	conn.SetDeadline(time.Time{})
	c := &Client{conn: ssh.NewClient(sconn, chans, reqs), target: t, done: make(chan struct{})}
	if interval := d.keepAlive(); interval > 0 {
		go c.keepAlive(interval)
	}
	return c, nil
}

func (d *Dialer) keepAlive() time.Duration {
	if d.KeepAlive == 0 {
		return DefaultKeepAlive
	}
	return d.KeepAlive
}

// dialError explains a failed connect or handshake: cancelled, timed out, or err.
func (d *Dialer) dialError(ctx, dctx context.Context, t Target, step string, timeout time.Duration, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("remote: %s to %s: %w", step, t, context.Cause(ctx))
	case dctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return withKind(fmt.Errorf("remote: %s to %s: no answer within %s: %w", step, t, timeout, context.DeadlineExceeded),
			ErrUnreachable, ErrTimeout)
	}
	return withKind(fmt.Errorf("remote: %s to %s: %w", step, t, err), ErrUnreachable)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hostKeyCheck is the HostKeyCallback of one connection; it runs again at every re-key.
type hostKeyCheck struct {
	target Target
	pinned ssh.PublicKey
	mu     sync.Mutex
	failed error
}

func (h *hostKeyCheck) check(_ string, _ net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !keysEqual(key, h.pinned) {
		h.failed = &MismatchError{Target: h.target, Presented: key, Pinned: h.pinned}
		return h.failed
	}
	return nil
}

func (h *hostKeyCheck) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failed
}

// MismatchError is Dial's error when the node presents a host key other than the pinned one;
// errors.Is(err, ErrHostKeyMismatch) holds. No command was run. Presented lets the caller tell
// a node still running its other system (whose key it knows too) from a stranger.
type MismatchError struct {
	Target    Target
	Presented ssh.PublicKey
	Pinned    ssh.PublicKey
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%v: %s presented %s %s but %s %s is pinned; refusing to connect",
		ErrHostKeyMismatch, e.Target, e.Presented.Type(), ssh.FingerprintSHA256(e.Presented),
		e.Pinned.Type(), ssh.FingerprintSHA256(e.Pinned))
}

// Is makes errors.Is(err, ErrHostKeyMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == ErrHostKeyMismatch }

// keepAlive sends a keepalive request every interval and closes the connection when none is
// answered for keepAliveMisses intervals (a powered-off node never sends a TCP reset).
func (c *Client) keepAlive(interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ticker.C:
		}
		answered := make(chan error, 1)
		go func() {
			// OpenSSH answers unknown global requests with a failure: still an answer.
			_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		timer := time.NewTimer(keepAliveMisses * interval)
		select {
		case <-c.done:
			timer.Stop()
			return
		case err := <-answered:
			timer.Stop()
			if err != nil {
				c.closeDead(fmt.Errorf("keepalive failed: %w", err))
				return
			}
		case <-timer.C:
			c.closeDead(fmt.Errorf("the node answered no keepalive for %s", keepAliveMisses*interval))
			return
		}
	}
}
