package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
)

// calRes is a reservation the brute force knows of.
type calRes struct {
	user       uint
	nodes      []uint
	start, end time.Time
}

// bruteFits says whether need of cand are free for [t, t+d) and, when q is set, whether user
// stays within q, looking at every 15 minutes from t and from grid (every time of cal is on
// grid's 15-minute steps, and d whole hours: the use changes only on one of those steps).
func bruteFits(cal []calRes, cand []uint, need int, user uint, q store.Quota, t, grid time.Time, d time.Duration) (nodesOK, quotaOK bool) {
	free := 0
	for _, id := range cand {
		ok := true
		for _, r := range cal {
			for _, n := range r.nodes {
				if n == id && r.start.Before(t.Add(d)) && r.end.After(t) {
					ok = false
				}
			}
		}
		if ok {
			free++
		}
	}
	nodesOK = free >= need
	quotaOK = true
	if !nodesOK {
		return nodesOK, false // the quota does not matter
	}
	mine := []calRes{{user: user, nodes: make([]uint, need), start: t, end: t.Add(d)}}
	for _, r := range cal {
		if r.user == user {
			mine = append(mine, r)
		}
	}
	const step = 15 * time.Minute
	steps := func(from, to time.Time) []time.Time {
		var out []time.Time
		for p := from; !p.After(to); p = p.Add(step) {
			out = append(out, p)
		}
		for p := grid.Add(from.Sub(grid).Truncate(step)); !p.After(to); p = p.Add(step) {
			if !p.Before(from) {
				out = append(out, p)
			}
		}
		return out
	}
	if q.Nodes > 0 {
		for _, p := range steps(t, t.Add(d-time.Second)) {
			n := 0
			for _, r := range mine {
				if !r.start.After(p) && r.end.After(p) {
					n += len(r.nodes)
				}
			}
			if n > q.Nodes {
				return nodesOK, false
			}
		}
	}
	if q.NodeHours > 0 {
		for _, e := range steps(t, t.Add(d+store.QuotaWindow)) {
			var use time.Duration
			for _, r := range mine {
				s, f := r.start, r.end
				if w := e.Add(-store.QuotaWindow); w.After(s) {
					s = w
				}
				if e.Before(f) {
					f = e
				}
				if f.After(s) {
					use += time.Duration(len(r.nodes)) * f.Sub(s)
				}
			}
			if use > time.Duration(q.NodeHours)*time.Hour {
				return nodesOK, false
			}
		}
	}
	return nodesOK, quotaOK
}

// TestEarliestFitBruteForce: on random calendars (nodes of two models on two switches,
// reservations of two users, random quotas), EarliestFit's answer fits, by a brute force, and
// no 15-minute step before it does (the quota on node-hours may fit between two steps); its
// nodes-only answer is the first step at which enough nodes are free (every node time is on
// that grid); CreateReservation accepts the request at that start.
func TestEarliestFitBruteForce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 4, 2)
		sw2 := store.Switch{Name: "sw2", IP: "127.0.0.2", Community: "private", PortCount: 4, OID: ".1.3.6.1.2.1.105.1.1.1.3.1"}
		check(t, s.CreateSwitch(ctx, &sw2))
		for i := 0; i < 3; i++ {
			n := store.Node{Name: fmt.Sprintf("node-%d", 7+i), SwitchID: sw2.ID, Port: i + 1, Model: "RPI4B", Serial: fmt.Sprintf("%08x", 7+i)}
			check(t, s.CreateNode(ctx, &n))
			c.nodes = append(c.nodes, n)
		}
		users := []uint{c.alice.ID, c.bob.ID}
		rng := rand.New(rand.NewSource(12))
		base := time.Now().UTC().Truncate(time.Hour)
		cases := 60
		if testing.Short() {
			cases = 15
		}
		quotaHeld := 0
		for k := 0; k < cases; k++ {
			// Each case far from the others: no reservation of one meets another's windows.
			now := base.Add(time.Duration(k) * 60 * 24 * time.Hour)
			check(t, s.SetQuota(ctx, store.Quota{}))
			var cal []calRes
			for i, n := 0, 3+rng.Intn(14); i < n; i++ {
				start := now.Add(time.Duration(rng.Intn(160)-10) * time.Hour)
				r := calRes{user: users[rng.Intn(2)], start: start, end: start.Add(time.Duration(1+rng.Intn(24)) * time.Hour)}
				for j, m := 0, 1+rng.Intn(3); j < m; j++ {
					r.nodes = append(r.nodes, c.nodes[rng.Intn(len(c.nodes))].ID)
				}
				res, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: r.user, NodeIDs: r.nodes, StartsAt: r.start, EndsAt: r.end}, now)
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				check(t, err)
				r.nodes = nil
				for _, n := range res.Nodes {
					r.nodes = append(r.nodes, n.ID)
				}
				cal = append(cal, r)
			}
			var q store.Quota
			if rng.Intn(2) == 0 {
				q = store.Quota{Nodes: []int{0, 2, 3, 4}[rng.Intn(4)], NodeHours: []int{0, 8, 20, 40}[rng.Intn(4)]}
			}
			check(t, s.SetQuota(ctx, q))

			req := store.FitRequest{UserID: c.bob.ID, Duration: time.Duration(1+rng.Intn(30)) * time.Hour,
				NotBefore: now.Add(time.Duration(rng.Intn(48*4)) * 15 * time.Minute), Until: now.Add(20 * 24 * time.Hour)}
			var cand []uint
			need := 0
			if rng.Intn(3) == 0 {
				for j, m := 0, 1+rng.Intn(3); j < m; j++ {
					req.NodeIDs = append(req.NodeIDs, c.nodes[rng.Intn(len(c.nodes))].ID)
				}
				seen := map[uint]bool{}
				for _, id := range req.NodeIDs {
					if !seen[id] {
						seen[id] = true
						cand = append(cand, id)
					}
				}
				need = len(cand)
			} else {
				req.Model, req.Count = "RPI4B", 1+rng.Intn(4)
				switch rng.Intn(3) {
				case 1:
					req.SwitchID = c.sw.ID
				case 2:
					req.SwitchID = sw2.ID
				}
				for _, n := range c.nodes {
					if n.Model == req.Model && (req.SwitchID == 0 || n.SwitchID == req.SwitchID) {
						cand = append(cand, n.ID)
					}
				}
				need = req.Count
			}
			fit, err := s.EarliestFit(ctx, req, now)
			check(t, err)

			var wantStart, wantFree time.Time
			if need <= len(cand) {
				for at := req.NotBefore; !at.After(req.Until); at = at.Add(15 * time.Minute) {
					nodesOK, quotaOK := bruteFits(cal, cand, need, c.bob.ID, q, at, now, req.Duration)
					if nodesOK && wantFree.IsZero() {
						wantFree = at
					}
					if nodesOK && quotaOK {
						wantStart = at
						break
					}
				}
			}
			desc := fmt.Sprintf("case %d (times in hours from now): request %v nodes %v for %s from %v, quota %+v, calendar:",
				k, need, cand, req.Duration, req.NotBefore.Sub(now).Hours(), q)
			for _, r := range cal {
				desc += fmt.Sprintf(" user %d nodes %v %v-%v;", r.user, r.nodes, r.start.Sub(now).Hours(), r.end.Sub(now).Hours())
			}
			desc += fmt.Sprintf(" got start %v nodes free %v quota %q", fit.Start.Sub(now).Hours(), fit.NodesFree.Sub(now).Hours(), fit.Quota)
			if !fit.Start.IsZero() {
				if nodesOK, quotaOK := bruteFits(cal, cand, need, c.bob.ID, q, fit.Start, now, req.Duration); !nodesOK || !quotaOK {
					t.Fatalf("%s; that start does not fit: nodes %v, quota %v", desc, nodesOK, quotaOK)
				}
			}
			if !wantStart.IsZero() && (fit.Start.IsZero() || fit.Start.After(wantStart)) {
				t.Fatalf("%s; brute force start %v", desc, wantStart.Sub(now).Hours())
			}
			if !fit.NodesFree.Equal(wantFree) {
				t.Fatalf("%s; brute force nodes free %v", desc, wantFree.Sub(now).Hours())
			}
			alone := (q.Nodes > 0 && need > q.Nodes) || (q.NodeHours > 0 && time.Duration(need)*req.Duration > time.Duration(q.NodeHours)*time.Hour)
			if fit.QuotaAlone != (alone && need <= len(cand)) {
				t.Fatalf("%s; the request alone exceeds the quota: %v", desc, alone)
			}
			if blocked := !fit.NodesFree.IsZero() && !fit.NodesFree.Equal(fit.Start); blocked != (fit.Quota != "") {
				t.Fatalf("%s; the quota holds it back: %v", desc, blocked)
			}
			if fit.Quota != "" {
				quotaHeld++
			}
			if !fit.Start.IsZero() {
				_, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: req.NodeIDs, Model: req.Model,
					Count: req.Count, StartsAt: fit.Start, EndsAt: fit.Start.Add(req.Duration)}, now)
				if err != nil {
					t.Fatalf("%s; reserving at that start: %v", desc, err)
				}
			}
		}
		if quotaHeld == 0 {
			t.Fatal("no case was held back by a quota: the cases test too little")
		}
	})
}

// TestEarliestFitCleanup: a node whose last deployment is still being destroyed is not free
// before the cleanup margin, as CreateReservation says; too few nodes never fit; unknown nodes are not found.
func TestEarliestFitCleanup(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 1, 0)
		now := time.Now().UTC().Truncate(time.Second)
		r, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.alice.ID, NodeIDs: []uint{c.nodes[0].ID},
			StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour)}, now)
		check(t, err)
		_, err = s.DeployReservation(ctx, r.ID, store.Deployment{EnvironmentID: c.env.ID, Name: "x"}, now)
		check(t, err)
		check(t, s.EndReservation(ctx, r.ID, now))
		fit, err := s.EarliestFit(ctx, store.FitRequest{UserID: c.bob.ID, Model: "RPI4B", Count: 1, Duration: time.Hour,
			NotBefore: now, Until: now.Add(24 * time.Hour)}, now)
		check(t, err)
		if want := now.Add(store.CleanupMargin); !fit.Start.Equal(want) {
			t.Fatalf("fit %+v, want the end of the cleanup margin %s", fit, want)
		}
		_, err = s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, Model: "RPI4B", Count: 1,
			StartsAt: fit.Start.Add(-time.Minute), EndsAt: fit.Start.Add(time.Hour)}, now)
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("a minute earlier: %v, want a conflict", err)
		}

		check(t, s.SetQuota(ctx, store.Quota{Nodes: 1}))
		fit, err = s.EarliestFit(ctx, store.FitRequest{UserID: c.bob.ID, Model: "RPI4B", Count: 2, Duration: time.Hour,
			NotBefore: now, Until: now.Add(24 * time.Hour)}, now)
		check(t, err)
		if !fit.Start.IsZero() || fit.Nodes != 1 {
			t.Fatalf("two of one node: %+v", fit)
		}
		_, err = s.EarliestFit(ctx, store.FitRequest{UserID: c.bob.ID, NodeIDs: []uint{c.nodes[0].ID, 9999}, Duration: time.Hour,
			NotBefore: now, Until: now.Add(24 * time.Hour)}, now)
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("an unknown node: %v", err)
		}
	})
}

// TestAvailabilityTimeline: each node of the filter, in name order, with the reservations that
// meet the period and their holder; the filter's choices.
func TestAvailabilityTimeline(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 2, 1)
		sw2 := store.Switch{Name: "sw2", IP: "127.0.0.2", Community: "private", PortCount: 4, OID: ".1.3.6.1.2.1.105.1.1.1.3.1"}
		check(t, s.CreateSwitch(ctx, &sw2))
		n4 := store.Node{Name: "node-10", SwitchID: sw2.ID, Port: 1, Model: "RPI4B", Serial: "0000000a"}
		check(t, s.CreateNode(ctx, &n4))
		now := time.Now().UTC().Truncate(time.Second)
		r1, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.alice.ID, NodeIDs: []uint{c.nodes[0].ID, n4.ID},
			StartsAt: now, EndsAt: now.Add(2 * time.Hour)}, now)
		check(t, err)
		_, err = s.CreateReservation(ctx, store.ReservationRequest{UserID: c.bob.ID, NodeIDs: []uint{c.nodes[0].ID},
			StartsAt: now.Add(10 * time.Hour), EndsAt: now.Add(12 * time.Hour)}, now)
		check(t, err)

		tl, err := s.Availability(ctx, store.AvailabilityFilter{From: now.Add(time.Hour), To: now.Add(24 * time.Hour)})
		check(t, err)
		var got []string
		for _, n := range tl {
			line := n.Name + "@" + n.SwitchName
			for _, b := range n.Blocks {
				line += fmt.Sprintf(" %s:%v-%v", b.Holder, b.Start.Sub(now).Hours(), b.End.Sub(now).Hours())
			}
			got = append(got, line)
		}
		want := []string{"node-1@sw1 Alice A:0-2 Bob:10-12", "node-2@sw1", "node-3@sw1", "node-10@sw2 Alice A:0-2"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("timeline %q, want %q", got, want)
		}
		if tl[0].Blocks[0].ReservationID != r1.ID || tl[0].Blocks[0].UserID != c.alice.ID {
			t.Errorf("first block: %+v", tl[0].Blocks[0])
		}
		tl, err = s.Availability(ctx, store.AvailabilityFilter{From: now.Add(3 * time.Hour), To: now.Add(9 * time.Hour), Model: "RPI4B", Switch: "sw1"})
		check(t, err)
		if len(tl) != 2 || tl[0].Name != "node-1" || len(tl[0].Blocks) != 0 {
			t.Fatalf("RPI4B on sw1, between the reservations: %+v", tl)
		}
		models, switches, err := s.NodeKinds(ctx)
		check(t, err)
		if fmt.Sprint(models) != "[RPI3Bplus RPI4B]" || fmt.Sprint(switches) != "[sw1 sw2]" {
			t.Fatalf("kinds: %v %v", models, switches)
		}
	})
}
