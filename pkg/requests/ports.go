package requests

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/store"
)

// Switch is the power control a port request needs; pkg/power's drivers are ones.
type Switch interface {
	Set(ctx context.Context, port int, on bool) error
	Cycle(ctx context.Context, port int, offFor time.Duration) error
	Status(ctx context.Context, port int) (power.PortStatus, error)
	StatusAll(ctx context.Context) (map[int]power.PortStatus, error)
}

// Ports carries out the port requests of every switch, one at a time.
type Ports struct {
	Store *store.Store
	// Owner names this pitasks in the requests it holds (the engine's owner).
	Owner string
	// Open returns the power control of a switch (pitasks builds it through pkg/power).
	Open func(*store.Switch) (Switch, error)
	// Lease: how long a claimed request stays ours without renewal [DefaultLease].
	Lease time.Duration
	// Poll: how often the table is read when there is nothing to do [DefaultPoll].
	Poll time.Duration
	// CycleOff: how long a power-cycle keeps the port off [power.OffWait, as the engine's hard reboot].
	CycleOff time.Duration
	// Timeout bounds the work of one request [2m].
	Timeout time.Duration
	Log     *slog.Logger
}

// Run carries out port requests until ctx ends.
func (p *Ports) Run(ctx context.Context) {
	p.defaults()
	serve(ctx, p.Poll, p.Log, "port requests", p.Next)
}

func (p *Ports) defaults() {
	if p.Lease == 0 {
		p.Lease = DefaultLease
	}
	if p.Poll == 0 {
		p.Poll = DefaultPoll
	}
	if p.CycleOff == 0 {
		p.CycleOff = power.OffWait
	}
	if p.Timeout == 0 {
		p.Timeout = 2 * time.Minute
	}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
}

// Next claims the oldest port request there is (or one a stopped pitasks held), carries it out
// and records the outcome. It reports whether there was one.
func (p *Ports) Next(ctx context.Context) (bool, error) {
	p.defaults()
	r, err := p.Store.ClaimPortRequest(ctx, p.Owner, time.Now(), p.Lease)
	if err != nil || r == nil {
		return false, err
	}
	log := p.Log.With("request", r.ID, "switch", r.Switch.Name, "port", r.Port, "action", r.Action, "attempt", r.Attempts)
	renew := func(ctx context.Context, until time.Time) error {
		return p.Store.RenewPortRequest(ctx, r.ID, p.Owner, until)
	}
	var states map[int]store.PortState
	var runErr error
	holdLease(ctx, p.Lease, log, renew, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, p.Timeout)
		defer cancel()
		states, runErr = p.carryOut(ctx, r)
	})
	// Written even when ctx ended (pitasks stopping): the page shows what happened.
	err = p.Store.FinishPortRequest(context.WithoutCancel(ctx), r.ID, p.Owner, states, runErr, time.Now())
	log.Info("port request ended", "err", runErr)
	return true, err
}

func (p *Ports) carryOut(ctx context.Context, r *store.PortRequest) (map[int]store.PortState, error) {
	sw, err := p.Open(&r.Switch)
	if err != nil {
		return nil, fmt.Errorf("switch %s: %w", r.Switch.Name, err)
	}
	if r.Action == store.PortStatus {
		all, err := sw.StatusAll(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[int]store.PortState, len(all))
		for port, st := range all {
			out[port] = portState(st)
		}
		return out, nil
	}
	switch r.Action {
	case store.PortOn, store.PortOff:
		err = sw.Set(ctx, r.Port, r.Action == store.PortOn)
	case store.PortCycle:
		err = sw.Cycle(ctx, r.Port, p.CycleOff)
	default:
		err = fmt.Errorf("unknown port action %q", r.Action)
	}
	if err != nil {
		return nil, err
	}
	st, err := sw.Status(ctx, r.Port)
	if err != nil {
		return nil, fmt.Errorf("%s done, but reading the port back: %w", r.Action, err)
	}
	return map[int]store.PortState{r.Port: portState(st)}, nil
}

func portState(st power.PortStatus) store.PortState {
	ps := store.PortState{On: st.On}
	if st.Delivering {
		ps.Detail = "delivering power"
	}
	return ps
}
