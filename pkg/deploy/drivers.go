package deploy

import (
	"sync"
	"time"

	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/store"
)

// PowerDrivers opens the power driver of each switch (power.Open, whatever its kind) from its
// database row, once per version of the row.
type PowerDrivers struct {
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
func (s *PowerDrivers) Controller(sw *store.Switch) (power.Controller, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[sw.ID]; ok && c.updated.Equal(sw.UpdatedAt) {
		return c.ctl, nil
	}
	ctl, err := power.Open(sw.PowerConfig(s.Timeout, s.Retries))
	if err != nil {
		return nil, err
	}
	if s.cache == nil {
		s.cache = map[uint]cachedSwitch{}
	}
	s.cache[sw.ID] = cachedSwitch{updated: sw.UpdatedAt, ctl: ctl}
	return ctl, nil
}
