package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// The web only writes requests; pitasks carries them out under a lease, as it does deployments:
// the owner renews LeaseUntil while it works, and a request whose lease ran out belongs to a
// pitasks that stopped. A port request is taken over by the next claim (switching a port or
// reading the switch again does no harm), up to MaxPortAttempts claims; a discovery run, which
// powers ports and registers nodes step by step, is ended with StoppedDuringRun instead.

// StoppedDuringRun is the error of a discovery run whose pitasks stopped before ending it.
const StoppedDuringRun = "pitasks stopped during the run (its lease ran out before the run ended)"

// MaxPortAttempts bounds how many times a port request is claimed.
const MaxPortAttempts = 3

// RequestPort asks pitasks to switch port of switch switchID on, off or to power-cycle it, or
// (action PortStatus, port 0) to read every port. The port must be one of the switch's, not
// the pimaster's (*InvalidError otherwise). A status request while another one is pending
// returns that one.
func (s *Store) RequestPort(ctx context.Context, switchID uint, port int, action string, by uint) (*PortRequest, error) {
	var r *PortRequest
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var sw Switch
		if err := lockForUpdate(tx, s.Dialect).First(&sw, switchID).Error; err != nil {
			return notFound(err)
		}
		bad := func(field, format string, a ...any) error {
			return &InvalidError{Kind: "switch", Name: sw.Name, Field: field, Reason: fmt.Sprintf(format, a...)}
		}
		switch action {
		case PortStatus:
			if port != 0 {
				return bad("port", "a status request reads every port (port 0), not port %d", port)
			}
			var pending PortRequest
			err := tx.Where("switch_id = ? AND action = ? AND state IN ?", switchID, PortStatus,
				[]string{RequestPending, RequestRunning}).Order("id").First(&pending).Error
			if err == nil {
				r = &pending
				return nil
			}
			if !errors.Is(err, gorm.ErrRecordNotFound) {
				return err
			}
		case PortOn, PortOff, PortCycle:
			if port < 1 || port > sw.PortCount {
				return bad("port", "no port %d (ports 1 to %d)", port, sw.PortCount)
			}
			if port == sw.MasterPort {
				return bad("port", "port %d powers the pimaster: it is never switched on request", port)
			}
		default:
			return bad("action", "unknown port action %q (on, off, cycle or status)", action)
		}
		r = &PortRequest{SwitchID: switchID, Port: port, Action: action, RequestedBy: by, State: RequestPending}
		return tx.Omit("Switch").Create(r).Error
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// PortRequest returns a request with its switch.
func (s *Store) PortRequest(ctx context.Context, id uint) (*PortRequest, error) {
	var r PortRequest
	if err := s.db.WithContext(ctx).Preload("Switch").First(&r, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &r, nil
}

// PortRequests returns the latest on, off and cycle requests on a switch, newest first.
func (s *Store) PortRequests(ctx context.Context, switchID uint, limit int) ([]PortRequest, error) {
	var rs []PortRequest
	err := s.db.WithContext(ctx).Where("switch_id = ? AND action <> ?", switchID, PortStatus).Order("id DESC").Limit(limit).Find(&rs).Error
	return rs, err
}

// LatestPortStatus returns the newest status request of a switch that pitasks ended (done or
// failed), and the one it has not ended yet; each may be nil.
func (s *Store) LatestPortStatus(ctx context.Context, switchID uint) (ended, pending *PortRequest, err error) {
	var rs []PortRequest
	err = s.db.WithContext(ctx).Where("switch_id = ? AND action = ?", switchID, PortStatus).Order("id DESC").Limit(2).Find(&rs).Error
	if err != nil {
		return nil, nil, err
	}
	// At most one status request is pending at a time (RequestPort): the two newest hold both.
	for i := range rs {
		switch rs[i].State {
		case RequestDone, RequestFailed:
			if ended == nil {
				ended = &rs[i]
			}
		default:
			if pending == nil {
				pending = &rs[i]
			}
		}
	}
	return ended, pending, nil
}

// PortStates decodes the ports' states pitasks read (nil before it did).
func (r *PortRequest) PortStates() (map[int]PortState, error) {
	if r.States == "" {
		return nil, nil
	}
	var byName map[string]PortState
	if err := json.Unmarshal([]byte(r.States), &byName); err != nil {
		return nil, fmt.Errorf("store: port request %d: states: %w", r.ID, err)
	}
	out := make(map[int]PortState, len(byName))
	for k, v := range byName {
		p, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("store: port request %d: states: port %q is not a number", r.ID, k)
		}
		out[p] = v
	}
	return out, nil
}

// ClaimPortRequest is for pitasks: it takes the oldest pending request, or one whose owner's
// lease ran out, for owner until now+lease. A request already claimed MaxPortAttempts times is
// ended instead, with the reason.
func (s *Store) ClaimPortRequest(ctx context.Context, owner string, now time.Time, lease time.Duration) (*PortRequest, error) {
	t := now.UTC()
	db := s.db.WithContext(ctx)
	for {
		var r PortRequest
		err := db.Preload("Switch").Where("state = ? OR (state = ? AND (lease_until IS NULL OR lease_until < ?))",
			RequestPending, RequestRunning, t).Order("id").First(&r).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		// Only if nobody claimed or ended it since it was read.
		q := db.Model(&PortRequest{}).Where("id = ? AND state = ? AND owner = ? AND attempts = ?", r.ID, r.State, r.Owner, r.Attempts)
		if r.Attempts >= MaxPortAttempts {
			err := q.Updates(map[string]any{"state": RequestFailed, "ended_at": t,
				"error": fmt.Sprintf("pitasks stopped during the request %d times: given up", r.Attempts)}).Error
			if err != nil {
				return nil, err
			}
			continue
		}
		until := t.Add(lease)
		res := q.Updates(map[string]any{"state": RequestRunning, "owner": owner, "lease_until": until, "started_at": t, "attempts": r.Attempts + 1})
		if res.Error != nil {
			return nil, res.Error
		}
		if res.RowsAffected == 1 {
			r.State, r.Owner, r.LeaseUntil, r.StartedAt, r.Attempts = RequestRunning, owner, &until, &t, r.Attempts+1
			return &r, nil
		}
		// Another pitasks took it first: look again.
	}
}

// RenewPortRequest extends owner's lease on request id until until; ErrLeaseLost when it is
// no longer owner's.
func (s *Store) RenewPortRequest(ctx context.Context, id uint, owner string, until time.Time) error {
	return s.updateOwned(ctx, &PortRequest{}, id, owner, map[string]any{"lease_until": until.UTC()})
}

// FinishPortRequest ends owner's request id: done with the ports' states read, or failed with
// runErr's message. ErrLeaseLost when it is no longer owner's.
func (s *Store) FinishPortRequest(ctx context.Context, id uint, owner string, states map[int]PortState, runErr error, now time.Time) error {
	u := map[string]any{"state": RequestDone, "ended_at": now.UTC()}
	if runErr != nil {
		u["state"], u["error"] = RequestFailed, runErr.Error()
	}
	if states != nil {
		b, err := json.Marshal(states)
		if err != nil {
			return err
		}
		u["states"] = string(b)
	}
	return s.updateOwned(ctx, &PortRequest{}, id, owner, u)
}

// RenewDiscovery extends owner's lease on run id until until; ErrLeaseLost when it is no
// longer owner's.
func (s *Store) RenewDiscovery(ctx context.Context, id uint, owner string, until time.Time) error {
	return s.updateOwned(ctx, &DiscoveryRun{}, id, owner, map[string]any{"lease_until": until.UTC()})
}

// updateOwned applies u to the running request id of model's table if owner holds it.
func (s *Store) updateOwned(ctx context.Context, model any, id uint, owner string, u map[string]any) error {
	res := s.db.WithContext(ctx).Model(model).Where("id = ? AND state = ? AND owner = ?", id, RequestRunning, owner).Updates(u)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrLeaseLost
	}
	return nil
}
