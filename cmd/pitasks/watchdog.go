package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/piseduce/piseduce/pkg/engine"
)

// tickWatch passes the engine's observations on (to the metrics) and notes when the last tick
// ended, for systemd's watchdog.
type tickWatch struct {
	engine.Observer
	last atomic.Int64 // Unix nanoseconds: the end of the last tick, or the start
}

func (w *tickWatch) Tick(d time.Duration) {
	w.Observer.Tick(d)
	w.last.Store(time.Now().UnixNano())
}

func (w *tickWatch) started(now time.Time) { w.last.Store(now.UnixNano()) }

// alive tells the watchdog whether the tick loop works: the tick due after the last one has
// ended, or is due less than the watchdog's timeout ago. A tick that hangs (on a database
// lock, say) keeps the next ones from running (engine.Tick skips while one runs), so feeding
// stops and systemd restarts pitasks; a slow schedule (@every 5m) is not taken for a wedge.
func (w *tickWatch) alive(sched cron.Schedule) func(context.Context, time.Duration) error {
	return func(_ context.Context, timeout time.Duration) error {
		last := time.Unix(0, w.last.Load())
		due := sched.Next(last)
		if late := time.Since(due); late > timeout {
			return fmt.Errorf("tick loop wedged: the tick due at %s has not ended (%s late); the last ended at %s",
				due.Format(time.RFC3339), late.Round(time.Second), last.Format(time.RFC3339))
		}
		return nil
	}
}

// tickInterval is the longest time between two ticks of sched over the next few, from now:
// the heartbeat's staleness is counted in it.
func tickInterval(sched cron.Schedule, now time.Time) time.Duration {
	var longest time.Duration
	for i, t := 0, sched.Next(now); i < 8; i++ {
		next := sched.Next(t)
		longest, t = max(longest, next.Sub(t)), next
	}
	return longest
}
