package remote

import (
	"bytes"
	"context"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/errkind"
)

// Host-key roles.
const (
	// RoleNFS is the NFS system every node netboots: one key shared by all nodes, stored
	// under node 0 whatever Target.NodeID says. It comes from the configuration.
	RoleNFS = "nfs"
	// RoleSystem is the system deployed on one node: its key is made by the pimaster and
	// written onto the card, and pinned, before the card first boots.
	RoleSystem = "system"
)

// ErrNoHostKey is returned (wrapped) by Dial when no key is pinned for the target.
var ErrNoHostKey = errkind.NoHostKey

// ErrHostKeyMismatch is matched (errors.Is) by Dial's *MismatchError: the node presented a key
// other than the pinned one. No command is run.
var ErrHostKeyMismatch = errkind.HostKeyMismatch

// HostKeyStore gives the pinned host keys. It is defined here, by its consumer, and
// implemented by store.(*Store) without either package importing the other: a missing key is
// reported as found == false with a nil error rather than as a sentinel error, so no error
// value has to be shared or adapted between the packages. err is for real failures only.
// Keys are exchanged in authorized_keys format ("ssh-ed25519 AAAA…", no comment).
type HostKeyStore interface {
	HostKey(ctx context.Context, role string, nodeID uint) (key string, found bool, err error)
}

// StaticHostKey is a HostKeyStore holding one known key (authorized_keys format) for every
// role and node, for tests and one-off tools.
type StaticHostKey string

// HostKey returns the static key.
func (s StaticHostKey) HostKey(context.Context, string, uint) (string, bool, error) {
	return string(s), s != "", nil
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

// HostKey returns the pinned key.
func (m *MemoryHostKeys) HostKey(_ context.Context, role string, nodeID uint) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[memKey{role, nodeID}]
	return k, ok, nil
}

// PinHostKey pins key, replacing the one pinned before.
func (m *MemoryHostKeys) PinHostKey(_ context.Context, role string, nodeID uint, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = make(map[memKey]string)
	}
	m.keys[memKey{role, nodeID}] = key
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
