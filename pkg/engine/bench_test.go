package engine

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// BenchmarkTick measures one tick at 1,000 nodes with 200 deployments (issue 17, item 1):
//   - busy: the 200 wait for their node and are all due at every tick (each tick leases,
//     polls and saves all 200), for as many ticks as it takes;
//   - idle: the 200 wait for a next check an hour away: nothing is due.
//
// It reports ms/tick beside the goals, which `make bench` prints.
func BenchmarkTick(b *testing.B) {
	cases := []struct {
		name    string
		poll    time.Duration
		due     int64 // deployments polled per tick
		goalMS  float64
		goalMem string
	}{
		{"busy", time.Second, 200, 20, " and < 1 MB allocated"},
		{"idle", time.Hour, 0, 2, ""},
	}
	for _, dialect := range storetest.Dialects {
		// The floor: one write committed alone, as the heartbeat every tick writes. On MariaDB
		// it is the disk's flush, which no tick can go under.
		b.Run(dialect+"/commit", func(b *testing.B) {
			s := storetest.Open(b, dialect)
			db := storetest.DB(s)
			if err := db.Exec("INSERT INTO pitasks_heartbeats (owner, leases) VALUES ('bench', 0)").Error; err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := db.Exec("UPDATE pitasks_heartbeats SET leases = leases + 1 WHERE owner = 'bench'").Error; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/tick")
		})
		for _, c := range cases {
			b.Run(dialect+"/"+c.name, func(b *testing.B) {
				s := storetest.Open(b, dialect)
				cl := storetest.Seed(b, s, 1000)
				cl.Deploy(b, s, 200)
				// In env_copy, its copy done, each waits in a state an hour long: the clock may run
				// for as many ticks as the benchmark takes without any deployment running out of time.
				if err := storetest.DB(s).Model(&store.Deployment{}).Where("id > 0").
					Updates(map[string]any{"state": process.EnvCopy, "exec_done": true}).Error; err != nil {
					b.Fatal(err)
				}
				f := newFakeSteps()
				var polls atomic.Int64
				f.post = func(context.Context, *Task) (bool, error) { polls.Add(1); return false, nil }
				clock := newClock()
				e, err := New(Options{Store: s, Steps: f.steps(), Rebooter: f, Log: quietLog(), Clock: clock,
					Workers: 200, PollInterval: c.poll})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Stop(context.Background())
				ctx := context.Background()
				tick := func() {
					if err := e.Tick(ctx); err != nil {
						b.Fatal(err)
					}
					e.Wait()
					clock.Add(time.Second)
				}
				tick() // the first turn ends the queued wait of every request: not the steady state
				polls.Store(0)
				b.ReportAllocs()
				for b.Loop() {
					tick()
				}
				if n := polls.Load(); n != c.due*int64(b.N) {
					b.Fatalf("%d polls in %d ticks, want %d a tick", n, b.N, c.due)
				}
				ms := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N)
				b.ReportMetric(ms, "ms/tick")
				if dialect == "mysql" {
					b.Logf("goal on MariaDB: < %g ms%s per tick; measured %.2f ms", c.goalMS, c.goalMem, ms)
				}
			})
		}
	}
}
