package web

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
)

// PortState is what a switch says about one PoE port.
type PortState struct {
	// On: the port's power is enabled (pethPsePortAdminEnable).
	On bool `json:"on"`
	// Detail is the switch's own word on the port (e.g. "delivering power"), if any.
	Detail string `json:"detail,omitempty"`
}

// Power controls the PoE ports of one switch. cmd/pifrontend adapts pkg/power to it; handler
// tests use a fake.
type Power interface {
	StatusAll(ctx context.Context) (map[int]PortState, error)
	Set(ctx context.Context, port int, on bool) error
	Cycle(ctx context.Context, port int) error
}

// PowerDialer opens the PoE control of a switch.
type PowerDialer func(sw *store.Switch) (Power, error)

// errNoPower: pifrontend was started without PoE control.
var errNoPower = errors.New("PoE control is not available in this pifrontend")

// powerTimeout bounds one SNMP exchange started from a page.
const powerTimeout = 10 * time.Second

func (s *Server) openPower(sw *store.Switch) (Power, error) {
	if s.power == nil {
		return nil, errNoPower
	}
	return s.power(sw)
}

// portStatus reads every port of sw; the error is for the page, not fatal.
func (s *Server) portStatus(ctx context.Context, sw *store.Switch) (map[int]PortState, error) {
	p, err := s.openPower(sw)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, powerTimeout)
	defer cancel()
	return p.StatusAll(ctx)
}

// setPort turns port on or off, or power-cycles it ("on", "off", "cycle"), for admin, and logs
// it. The pimaster's own port is left alone: pkg/power refuses to touch it, and so does the page.
func (s *Server) setPort(ctx context.Context, admin uint, sw *store.Switch, port int, action string) error {
	if port < 1 || port > sw.PortCount {
		return badInput("Switch %s has no port %d.", sw.Name, port)
	}
	if port == sw.MasterPort {
		return conflict("Port %d powers the pimaster: it is never switched from here.", port)
	}
	p, err := s.openPower(sw)
	if err != nil {
		return conflict("%v.", err)
	}
	ctx, cancel := context.WithTimeout(ctx, powerTimeout)
	defer cancel()
	switch action {
	case "on":
		err = p.Set(ctx, port, true)
	case "off":
		err = p.Set(ctx, port, false)
	case "cycle":
		err = p.Cycle(ctx, port)
	default:
		return badInput("Unknown power action %q (on, off or cycle).", action)
	}
	if err != nil {
		return &formError{msg: fmt.Sprintf("Switch %s port %d: %v", sw.Name, port, err), code: 502}
	}
	s.log.Info("PoE port changed", "admin", admin, "switch", sw.Name, "port", port, "action", action)
	return nil
}
