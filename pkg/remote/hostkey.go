package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Host-key roles.
const (
	// RoleNFS is the NFS system every node netboots: one key shared by all nodes, stored
	// under node 0 whatever Target.NodeID says.
	RoleNFS = "nfs"
	// RoleSystem is the system deployed on one node: learned on first contact after a
	// deployment, forgotten by the deploy engine before each new deployment.
	RoleSystem = "system"
)

// ErrNoHostKey is returned (wrapped) by Dial when the Pinned policy finds no stored key.
var ErrNoHostKey = errors.New("remote: no host key stored")

// ErrHostKeyMismatch is returned (wrapped, with host, role and both fingerprints) by Dial when
// the node presents a key other than the stored one. No command is run.
var ErrHostKeyMismatch = errors.New("remote: host key mismatch")

// HostKeyStore keeps the pinned host keys. It is defined here, by its consumer, and
// implemented by store.(*Store) without either package importing the other: a missing key is
// reported as found == false with a nil error rather than as a sentinel error, so no error
// value has to be shared or adapted between the packages. err is for real failures only.
//
// Keys are exchanged in authorized_keys format ("ssh-ed25519 AAAA…", no comment).
// SetHostKey stores a key only when none is stored (first writer wins; the existing key is
// kept without error): Dial reads the key back after learning it, so two connections learning
// at once agree on one key. Replacing a key means forgetting it first.
type HostKeyStore interface {
	HostKey(ctx context.Context, role string, nodeID uint) (key string, found bool, err error)
	SetHostKey(ctx context.Context, role string, nodeID uint, key string) error
}

// Policy says what Dial does with the host key a node presents. The zero value is Pinned:
// nothing is ever trusted blindly.
type Policy int

const (
	// Pinned accepts only the stored key; with no stored key the dial is refused
	// (ErrNoHostKey) before any connection is made.
	Pinned Policy = iota
	// TrustOnFirstUse stores the presented key when none is stored (after a successful
	// handshake) and then behaves as Pinned.
	TrustOnFirstUse
)

func (p Policy) String() string {
	switch p {
	case Pinned:
		return "pinned"
	case TrustOnFirstUse:
		return "trust-on-first-use"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// StaticHostKey is a read-only HostKeyStore holding one known key (authorized_keys format) for
// every role and node: with Pinned it is a static policy, meant for tests and one-off tools.
type StaticHostKey string

// HostKey returns the static key.
func (s StaticHostKey) HostKey(context.Context, string, uint) (string, bool, error) {
	return string(s), s != "", nil
}

// SetHostKey refuses: a static key cannot learn.
func (s StaticHostKey) SetHostKey(context.Context, string, uint, string) error {
	return errors.New("remote: static host key store is read-only")
}

// MemoryHostKeys is a HostKeyStore in memory, safe for concurrent use; the zero value is
// ready. For tests and tools without a database.
type MemoryHostKeys struct {
	mu   sync.Mutex
	keys map[memKey]string
}

type memKey struct {
	role string
	node uint
}

// HostKey returns the stored key.
func (m *MemoryHostKeys) HostKey(_ context.Context, role string, nodeID uint) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[memKey{role, nodeID}]
	return k, ok, nil
}

// SetHostKey stores a key when none is stored (first writer wins, as the interface says).
func (m *MemoryHostKeys) SetHostKey(_ context.Context, role string, nodeID uint, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = make(map[memKey]string)
	}
	if _, ok := m.keys[memKey{role, nodeID}]; !ok {
		m.keys[memKey{role, nodeID}] = key
	}
	return nil
}

// ForgetHostKey removes a key.
func (m *MemoryHostKeys) ForgetHostKey(_ context.Context, role string, nodeID uint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, memKey{role, nodeID})
	return nil
}

// keyNode is the node a role's key is stored under.
func keyNode(role string, nodeID uint) uint {
	if role == RoleNFS {
		return 0
	}
	return nodeID
}

func keysEqual(a, b ssh.PublicKey) bool {
	return a.Type() == b.Type() && bytes.Equal(a.Marshal(), b.Marshal())
}

// hostKeyAlgorithms lists the algorithms that make a server present a key of the pinned key's
// type, so a node with several host keys (RSA, ECDSA, ed25519) shows the one we know.
func hostKeyAlgorithms(key ssh.PublicKey) []string {
	switch key.Type() {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	default:
		return []string{key.Type()}
	}
}
