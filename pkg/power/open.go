package power

import (
	"context"
	"fmt"
	"time"

	"github.com/piseduce/piseduce/pkg/power/powerconf"
)

// Open validates c (Normalize) and returns the driver of its kind. It sends nothing. This is
// the one place that maps a driver kind to its implementation: a new kind is added here, in
// powerconf.Drivers, and in powerconf.Config.Normalize.
func Open(c powerconf.Config) (Controller, error) {
	n, err := c.Normalize()
	if err != nil {
		return nil, err
	}
	switch n.Driver {
	case powerconf.DriverSNMP:
		return newSNMP(n), nil
	case powerconf.DriverCommand:
		return newCommand(n), nil
	}
	// Normalize refuses unknown kinds: reaching here is a bug in this package.
	return nil, fmt.Errorf("power: switch %q: driver %q has no implementation", n.Name, n.Driver)
}

// cycleBySet is Cycle for drivers that have no power-cycle operation of their own: set
// switches the port, name is the switch's for messages.
func cycleBySet(ctx context.Context, set func(context.Context, int, bool) error, name string, port int, offFor time.Duration) error {
	if err := set(ctx, port, false); err != nil {
		return err
	}
	t := time.NewTimer(offFor)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("power: cycle port %d of switch %q: %w: %w", port, name, ErrCycleAborted, ctx.Err())
	case <-t.C:
	}
	return set(ctx, port, true)
}

// statusEach is StatusAll for drivers that read one port at a time: ports 1..n, in order.
func statusEach(ctx context.Context, n int, status func(context.Context, int) (PortStatus, error)) (map[int]PortStatus, error) {
	m := make(map[int]PortStatus, n)
	for p := 1; p <= n; p++ {
		st, err := status(ctx, p)
		if err != nil {
			return nil, err
		}
		m[p] = st
	}
	return m, nil
}

// refusePort fails for a port outside 1..Ports of c, and for the master port when the
// operation switches it (set).
func refusePort(c powerconf.Config, op string, port int, set bool) error {
	if port < 1 || port > c.Ports {
		return fmt.Errorf("power: %s: %w: switch %q has ports 1..%d", op, ErrPortRange, c.Name, c.Ports)
	}
	if set && port == c.MasterPort {
		return fmt.Errorf("power: %s: %w (port %d of switch %q powers the master node)", op, ErrMasterPort, port, c.Name)
	}
	return nil
}
