package store

import (
	"math/rand/v2"
	"testing"
	"time"
)

// bruteExceeded is Quota.exceeded by looking at every hour: with whole-hour calendars the
// node count and each window's use only change on the hour.
func bruteExceeded(q Quota, hs []held, nodes int, start, end time.Time) string {
	all := append(append([]held(nil), hs...), held{start, end, nodes})
	if q.Nodes > 0 {
		for t := start; t.Before(end); t = t.Add(time.Hour) {
			n := 0
			for _, h := range all {
				if !h.start.After(t) && h.end.After(t) {
					n += h.nodes
				}
			}
			if n > q.Nodes {
				return QuotaLimitNodes
			}
		}
	}
	if q.NodeHours > 0 {
		for e := start.Add(time.Hour); e.Before(end.Add(QuotaWindow)); e = e.Add(time.Hour) {
			var use time.Duration
			for _, h := range all {
				use += time.Duration(h.nodes) * overlap(h.start, h.end, e.Add(-QuotaWindow), e)
			}
			if use > time.Duration(q.NodeHours)*time.Hour {
				return QuotaLimitNodeHours
			}
		}
	}
	return ""
}

// TestQuotaExceededAgainstBruteForce compares the breakpoint check with an hour-by-hour one on
// random calendars.
func TestQuotaExceededAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 5))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return base.Add(time.Duration(h) * time.Hour) }
	refused := 0
	for i := range 3000 {
		q := Quota{Nodes: rng.IntN(6), NodeHours: rng.IntN(200)}
		var hs []held
		for range rng.IntN(8) {
			s := rng.IntN(24 * 20)
			hs = append(hs, held{at(s), at(s + 1 + rng.IntN(72)), 1 + rng.IntN(3)})
		}
		s := rng.IntN(24 * 20)
		start, end, nodes := at(s), at(s+1+rng.IntN(72)), 1+rng.IntN(3)
		got, want := q.exceeded(hs, nodes, start, end), bruteExceeded(q, hs, nodes, start, end)
		if got != want {
			t.Fatalf("case %d: quota %+v, held %+v, %d nodes %s–%s: got %q, want %q", i, q, hs, nodes, start, end, got, want)
		}
		if got != "" {
			refused++
		}
	}
	if refused < 300 || refused > 2700 {
		t.Fatalf("%d of 3000 refused: the calendars do not test both answers", refused)
	}
}
