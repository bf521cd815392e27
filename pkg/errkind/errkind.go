// Package errkind holds the kinds of error that one package returns and another, which must not
// link the first, tells apart with errors.Is: the drivers' errors, counted by pkg/metrics,
// which pifrontend links without the SNMP and SSH drivers. A driver's exported sentinels are
// these same values (power.ErrNoAnswer is errkind.SwitchNoAnswer). It imports nothing of ours.
package errkind

import "errors"

// Talking to a switch (pkg/power) failed.
var (
	SwitchNoAnswer    = errors.New("no answer from switch")
	SwitchAuth        = errors.New("switch rejected the SNMPv3 credentials")
	SwitchSNMP        = errors.New("switch returned an SNMP error")
	SwitchNoSuchPort  = errors.New("switch has no such OID")
	SwitchBadValue    = errors.New("unexpected value from switch")
	SwitchReadBack    = errors.New("port state read back differs from what was set")
	SwitchCycleAborts = errors.New("power cycle aborted, port left off")
)

// Switch lists the kinds above: the errors of talking to a switch, not of its configuration.
func Switch() []error {
	return []error{SwitchNoAnswer, SwitchAuth, SwitchSNMP, SwitchNoSuchPort, SwitchBadValue, SwitchReadBack, SwitchCycleAborts}
}

// Talking to a node over SSH (pkg/remote) failed.
var (
	// NodeUnreachable: refused, no route, no answer, a failed handshake, a session that could
	// not open or ended early.
	NodeUnreachable = errors.New("node unreachable")
	// NoHostKey: no host key is pinned for the node, so nothing was trusted.
	NoHostKey = errors.New("remote: no host key pinned")
	// HostKeyMismatch: the node presented a key other than the pinned one.
	HostKeyMismatch = errors.New("remote: host key mismatch")
	// CommandFailed: a command ran on the node and ended with a non-zero status or a signal.
	CommandFailed = errors.New("remote: command failed")
)
