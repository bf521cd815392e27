package main

import (
	"context"
	"time"

	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/web"
)

// snmpPower adapts pkg/power's SNMP driver to the web's Power interface.
func snmpPower(sw *store.Switch) (web.Power, error) {
	p, err := power.NewSNMP(sw.PowerConfig(2*time.Second, 1))
	if err != nil {
		return nil, err
	}
	return snmpSwitch{p}, nil
}

type snmpSwitch struct{ *power.SNMP }

func (s snmpSwitch) StatusAll(ctx context.Context) (map[int]web.PortState, error) {
	m, err := s.SNMP.StatusAll(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int]web.PortState, len(m))
	for port, st := range m {
		ps := web.PortState{On: st.On}
		if st.Delivering {
			ps.Detail = "delivering power"
		}
		out[port] = ps
	}
	return out, nil
}

// Cycle keeps the port off 3 s, as pitasks does for a hard reboot.
func (s snmpSwitch) Cycle(ctx context.Context, port int) error {
	return s.SNMP.Cycle(ctx, port, 3*time.Second)
}
