// Package power switches Raspberry Pis on and off through the ports of a switch.
//
// A switch's settings (powerconf.Config, in a package of their own so that pifrontend can
// validate them without linking a driver) name its driver kind; Open is the one place that
// turns them into a Controller. The drivers are SNMP (PoE switches: POWER-ETHERNET-MIB
// pethPsePortAdminEnable or a vendor OID with the same 1=on / 2=off convention) and command
// (the admin's programs). Fake is a goroutine-safe stand-in for other packages' unit tests.
// This package imports no store package.
package power

import (
	"context"
	"errors"
	"time"

	"github.com/piseduce/piseduce/pkg/errkind"
)

// PortStatus is what the switch says about one port.
type PortStatus struct {
	On         bool // admin state: the port is enabled (pethPsePortAdminEnable = 1)
	Delivering bool // the port delivers power (pethPsePortDetectionStatus = 3); false when the driver cannot tell
}

// Controller is a switch's power driver, as Open returns it. powerconf.Drivers refuse the master port
// and ports outside 1..Ports.
type Controller interface {
	// Set switches port on or off.
	Set(ctx context.Context, port int, on bool) error
	// Status reads the state of port.
	Status(ctx context.Context, port int) (PortStatus, error)
	// StatusAll reads every port 1..Ports, the master port included.
	StatusAll(ctx context.Context) (map[int]PortStatus, error)
	// Cycle switches port off, waits offFor (OffWait, unless a test is in a hurry) and
	// switches it on again. If ctx ends during the wait, the port is left off and the error
	// wraps ErrCycleAborted.
	Cycle(ctx context.Context, port int, offFor time.Duration) error
}

// OffWait is how long a port stays off in a power cycle or before a deployment powers the
// node on again (a Pi needs its capacitors drained to reset): pitasks, the admin's command
// and the web all wait this long.
const OffWait = 3 * time.Second

// Errors callers can test with errors.Is. Those of talking to a switch are errkind's, so that
// metrics can count them without linking the drivers.
var (
	ErrMasterPort   = errors.New("refusing to switch the master port")
	ErrPortRange    = errors.New("port out of range")
	ErrNoAnswer     = errkind.SwitchNoAnswer
	ErrAuth         = errkind.SwitchAuth
	ErrSNMP         = errkind.SwitchSNMP
	ErrNoSuchPort   = errkind.SwitchNoSuchPort
	ErrBadValue     = errkind.SwitchBadValue
	ErrReadBack     = errkind.SwitchReadBack
	ErrCycleAborted = errkind.SwitchCycleAborts
)
