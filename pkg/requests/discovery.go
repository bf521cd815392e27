package requests

import (
	"context"
	"log/slog"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
)

// Discoveries carries out the node discovery runs admins ask for on the web, one at a time,
// their progress written line by line for the page to show.
type Discoveries struct {
	Store *store.Store
	Owner string
	// Discover runs one discovery, reporting each line of progress (pitasks wires pkg/discovery).
	Discover func(ctx context.Context, run *store.DiscoveryRun, progress func(line string)) error
	Lease    time.Duration // [DefaultLease]
	Poll     time.Duration // [2s]
	Log      *slog.Logger
}

// Run carries out discovery runs until ctx ends.
func (d *Discoveries) Run(ctx context.Context) {
	d.defaults()
	serve(ctx, d.Poll, d.Log, "discovery requests", d.Next)
}

func (d *Discoveries) defaults() {
	if d.Lease == 0 {
		d.Lease = DefaultLease
	}
	if d.Poll == 0 {
		d.Poll = 2 * time.Second
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
}

// Next ends the runs of stopped pitasks, claims the oldest requested run, carries it out and
// records the outcome. It reports whether there was one.
func (d *Discoveries) Next(ctx context.Context) (bool, error) {
	d.defaults()
	r, err := d.Store.ClaimDiscovery(ctx, d.Owner, time.Now(), d.Lease)
	if err != nil || r == nil {
		return false, err
	}
	log := d.Log.With("run", r.ID, "switch", r.Switch.Name)
	log.Info("discovery started")
	progress := func(line string) {
		if err := d.Store.AppendDiscoveryOutput(context.WithoutCancel(ctx), r.ID, line); err != nil {
			log.Warn("discovery output", "err", err)
		}
	}
	renew := func(ctx context.Context, until time.Time) error {
		return d.Store.RenewDiscovery(ctx, r.ID, d.Owner, until)
	}
	var runErr error
	holdLease(ctx, d.Lease, log, renew, func(ctx context.Context) { runErr = d.Discover(ctx, r, progress) })
	err = d.Store.FinishDiscovery(context.WithoutCancel(ctx), r.ID, d.Owner, runErr, time.Now())
	log.Info("discovery ended", "err", runErr)
	return true, err
}
