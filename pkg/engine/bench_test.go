package engine

import (
	"context"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// BenchmarkTick measures one tick in the steady state of a busy cluster: 1,000 nodes, 200 of
// them deploying and waiting for their node (each tick leases, polls and saves all 200).
func BenchmarkTick(b *testing.B) {
	for _, dialect := range storetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			s := storetest.Open(b, dialect)
			c := storetest.Seed(b, s, 1000)
			c.Deploy(b, s, 200)
			f := newFakeSteps()
			f.post = func(context.Context, *Task) (bool, error) { return false, nil }
			clock := newClock()
			e, err := New(Options{Store: s, Steps: f.steps(), Rebooter: f, Log: quietLog(), Clock: clock,
				Workers: 200, PollInterval: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Stop(context.Background())
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := e.Tick(ctx); err != nil {
					b.Fatal(err)
				}
				e.Wait()
				clock.Add(time.Second)
			}
		})
	}
}
