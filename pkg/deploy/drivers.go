package deploy

import (
	"sync"
	"time"

	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/store"
)

// SNMPSwitches builds the SNMP power driver of each switch from its database row, once per
// version of the row.
type SNMPSwitches struct {
	Timeout time.Duration
	Retries int

	mu    sync.Mutex
	cache map[uint]cachedSwitch
}

type cachedSwitch struct {
	updated time.Time
	ctl     power.Controller
}

// Controller returns the driver of sw.
func (s *SNMPSwitches) Controller(sw *store.Switch) (power.Controller, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[sw.ID]; ok && c.updated.Equal(sw.UpdatedAt) {
		return c.ctl, nil
	}
	ctl, err := power.NewSNMP(PowerConfig(sw, s.Timeout, s.Retries))
	if err != nil {
		return nil, err
	}
	if s.cache == nil {
		s.cache = map[uint]cachedSwitch{}
	}
	s.cache[sw.ID] = cachedSwitch{updated: sw.UpdatedAt, ctl: ctl}
	return ctl, nil
}

// PowerConfig is the power driver's configuration of a switch row.
func PowerConfig(sw *store.Switch, timeout time.Duration, retries int) power.Config {
	return power.Config{Name: sw.Name, Host: sw.IP, Port: sw.SNMPPort, Version: sw.SNMPVersion,
		Community: sw.Community, V3User: sw.V3User, V3AuthProto: sw.V3AuthProto, V3AuthPass: sw.V3AuthPass,
		V3PrivProto: sw.V3PrivProto, V3PrivPass: sw.V3PrivPass, OID: sw.OID, OIDOffset: sw.OIDOffset,
		MasterPort: sw.MasterPort, Ports: sw.PortCount, Timeout: timeout, Retries: retries}
}
