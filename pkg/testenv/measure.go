package testenv

import (
	"runtime/metrics"
	"syscall"
	"time"
)

// CPUTime is this process's user and system CPU time so far, for benchmarks' CPU per unit.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// HeapObjects is the bytes of the Go heap's objects now, live or not yet collected.
func HeapObjects() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// PeakHeap samples HeapObjects every 10 ms until the returned stop is called, which returns
// the highest value seen.
func PeakHeap() (stop func() int64) {
	done, peak := make(chan struct{}), make(chan int64)
	go func() {
		var p int64
		for {
			p = max(p, HeapObjects())
			select {
			case <-done:
				peak <- max(p, HeapObjects())
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() int64 { close(done); return <-peak }
}
