package deploy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/remote"
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
	ctl, err := power.NewSNMP(sw.PowerConfig(s.Timeout, s.Retries))
	if err != nil {
		return nil, err
	}
	if s.cache == nil {
		s.cache = map[uint]cachedSwitch{}
	}
	s.cache[sw.ID] = cachedSwitch{updated: sw.UpdatedAt, ctl: ctl}
	return ctl, nil
}

// GuardedKeys is the host-key store of the SSH dialer: it refuses to learn the NFS system's
// key as a deployed system's key, which would happen if pitasks reached a node that had not
// rebooted from the NFS system yet.
type GuardedKeys struct{ remote.HostKeyStore }

// ErrStillNFS is returned when a node presents the NFS system's key where its own system's is
// expected.
var ErrStillNFS = errors.New("the node still runs the NFS system")

// SetHostKey stores key unless it is the NFS system's key given for a deployed system.
func (g GuardedKeys) SetHostKey(ctx context.Context, role string, nodeID uint, key string) error {
	if role == remote.RoleSystem {
		nfs, found, err := g.HostKey(ctx, remote.RoleNFS, 0)
		if err != nil {
			return err
		}
		if found && sameKey(nfs, key) {
			return fmt.Errorf("node %d: %w", nodeID, ErrStillNFS)
		}
	}
	return g.HostKeyStore.SetHostKey(ctx, role, nodeID, key)
}

func sameKey(a, b string) bool {
	ka, err1 := remote.ParseKey(a)
	kb, err2 := remote.ParseKey(b)
	return err1 == nil && err2 == nil && remote.AuthorizedKey(ka) == remote.AuthorizedKey(kb)
}
