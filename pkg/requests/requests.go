// Package requests carries out, in pitasks, what the web only writes down: port requests
// (store.PortRequest: on, off, power-cycle, read the switch) and node discovery runs
// (store.DiscoveryRun). Each is claimed under a lease that is renewed while it runs, as the
// engine does with deployments: when a pitasks stops, another one takes its port requests over
// and ends its discovery run with the reason (see pkg/store/requests.go).
package requests

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
)

// Defaults of the runners' options.
const (
	DefaultLease = 60 * time.Second
	DefaultPoll  = time.Second
)

// serve calls next until it finds no work, then waits poll, until ctx ends. next reports
// whether it found and did something.
func serve(ctx context.Context, poll time.Duration, log *slog.Logger, what string, next func(context.Context) (bool, error)) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		did, err := next(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error(what, "err", err)
		}
		if did && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// holdLease runs work under a lease renewed every third of lease through renew. When a
// renewal says the lease is lost, work's context is cancelled (another pitasks has the
// request now); errors that leave the lease in doubt are retried at the next renewal.
func holdLease(ctx context.Context, lease time.Duration, log *slog.Logger, renew func(context.Context, time.Time) error, work func(context.Context)) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(wctx, lease/3)
			err := renew(rctx, time.Now().Add(lease))
			rcancel()
			if errors.Is(err, store.ErrLeaseLost) {
				log.Warn("lease lost: another pitasks has the request")
				cancel()
				return
			}
			if err != nil && wctx.Err() == nil {
				log.Warn("lease renewal", "err", err)
			}
		}
	}()
	work(wctx)
	cancel()
	<-done
}
