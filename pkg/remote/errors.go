package remote

import (
	"errors"
	"slices"

	"github.com/piseduce/piseduce/pkg/errkind"
)

// The kinds of errors of a connection, matched with errors.Is; the host-key kinds are
// ErrNoHostKey and ErrHostKeyMismatch (hostkey.go), a command that failed is an *ExitError.
var (
	// ErrUnreachable: the node could not be reached, or the connection broke: refused, no
	// route, no answer, a failed handshake, a session that could not open or ended early.
	// A node that is still booting gives it; retrying may help.
	ErrUnreachable = errkind.NodeUnreachable
	// ErrTimeout: the node did not answer in time (an ErrUnreachable too).
	ErrTimeout = errors.New("no answer in time")
)

// kinded gives err the kinds for errors.Is, its text unchanged.
type kinded struct {
	err   error
	kinds []error
}

func (k kinded) Error() string                 { return k.err.Error() }
func (k kinded) Unwrap() error                 { return k.err }
func (k kinded) Is(target error) bool          { return slices.Contains(k.kinds, target) }
func withKind(err error, kinds ...error) error { return kinded{err: err, kinds: kinds} }
