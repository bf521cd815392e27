package main

import (
	"context"
	"time"

	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/web"
)

// openPower adapts the switch's power driver (power.Open, whatever its kind) to the web's
// Power interface.
func openPower(sw *store.Switch) (web.Power, error) {
	p, err := power.Open(sw.PowerConfig(2*time.Second, 1))
	if err != nil {
		return nil, err
	}
	return webPower{p}, nil
}

type webPower struct{ power.Controller }

func (s webPower) StatusAll(ctx context.Context) (map[int]web.PortState, error) {
	m, err := s.Controller.StatusAll(ctx)
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

// Cycle keeps the port off power.OffWait, as pitasks does for a hard reboot.
func (s webPower) Cycle(ctx context.Context, port int) error {
	return s.Controller.Cycle(ctx, port, power.OffWait)
}
