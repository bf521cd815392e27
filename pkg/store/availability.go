package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"gorm.io/gorm"
)

// Block is one reservation of one node on the availability timeline.
type Block struct {
	ReservationID uint
	UserID        uint
	// Holder is the user's display name (never an e-mail); the web shows it to admins only.
	Holder     string
	Start, End time.Time
}

// NodeTimeline is one node and its reservations that meet the asked period, earliest first.
type NodeTimeline struct {
	ID         uint
	Name       string
	Model      string
	SwitchID   uint
	SwitchName string
	Blocks     []Block
}

// AvailabilityFilter selects the nodes and the period of Availability.
type AvailabilityFilter struct {
	From, To time.Time
	Model    string // "": every model
	Switch   string // a switch's name; "": every switch
}

// Availability returns the nodes matching f, in name order, each with the reservations that
// meet [f.From, f.To).
func (s *Store) Availability(ctx context.Context, f AvailabilityFilter) ([]NodeTimeline, error) {
	db := s.db.WithContext(ctx)
	q := db.Model(&Node{}).Preload("Switch")
	if f.Model != "" {
		q = q.Where("model = ?", f.Model)
	}
	if f.Switch != "" {
		q = q.Where("switch_id IN (?)", db.Model(&Switch{}).Select("id").Where("name = ?", f.Switch))
	}
	var nodes []Node
	if err := q.Find(&nodes).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list nodes: %w", err)
	}
	sortByName(nodes, func(n Node) string { return n.Name })
	out := make([]NodeTimeline, len(nodes))
	byID := make(map[uint]*NodeTimeline, len(nodes))
	ids := make([]uint, len(nodes))
	for i, n := range nodes {
		out[i] = NodeTimeline{ID: n.ID, Name: n.Name, Model: n.Model, SwitchID: n.SwitchID, SwitchName: n.Switch.Name}
		byID[n.ID] = &out[i]
		ids[i] = n.ID
	}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		NodeID, ReservationID, UserID uint
		StartsAt, EndsAt              time.Time
	}
	err := db.Table("reservation_nodes").
		Select("reservation_nodes.node_id, reservations.id AS reservation_id, reservations.user_id, reservations.starts_at, reservations.ends_at").
		Joins("JOIN reservations ON reservations.id = reservation_nodes.reservation_id").
		Where("reservation_nodes.node_id IN ? AND reservations.starts_at < ? AND reservations.ends_at > ?", ids, f.To.UTC(), f.From.UTC()).
		Order("reservations.starts_at, reservations.id").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to read reservations: %w", err)
	}
	names := map[uint]string{}
	for _, r := range rows {
		names[r.UserID] = ""
	}
	if len(names) > 0 {
		uids := make([]uint, 0, len(names))
		for id := range names {
			uids = append(uids, id)
		}
		var us []User
		if err := db.Where("id IN ?", uids).Find(&us).Error; err != nil {
			return nil, fmt.Errorf("store: unable to read users: %w", err)
		}
		for i := range us {
			names[us[i].ID] = us[i].DisplayName()
		}
	}
	for _, r := range rows {
		t := byID[r.NodeID]
		t.Blocks = append(t.Blocks, Block{ReservationID: r.ReservationID, UserID: r.UserID, Holder: names[r.UserID],
			Start: r.StartsAt.UTC(), End: r.EndsAt.UTC()})
	}
	return out, nil
}

// NodeKinds returns the models of the nodes and the names of the switches that have nodes,
// sorted: the choices of the availability filter.
func (s *Store) NodeKinds(ctx context.Context) (models, switches []string, err error) {
	db := s.db.WithContext(ctx)
	if err := db.Model(&Node{}).Distinct("model").Order("model").Pluck("model", &models).Error; err != nil {
		return nil, nil, fmt.Errorf("store: unable to list models: %w", err)
	}
	err = db.Model(&Switch{}).Where("id IN (?)", db.Model(&Node{}).Select("switch_id")).Order("name").Pluck("name", &switches).Error
	if err != nil {
		return nil, nil, fmt.Errorf("store: unable to list switches: %w", err)
	}
	sort.Slice(switches, func(i, j int) bool { return NameLess(switches[i], switches[j]) })
	return models, switches, nil
}

// FitRequest asks when a reservation could start: the named NodeIDs, or Count nodes of Model
// (on switch SwitchID when not 0), for Duration, starting at NotBefore or later (and not before
// now), at the latest at Until.
type FitRequest struct {
	UserID    uint // whose quota applies; 0: none
	NodeIDs   []uint
	Model     string
	SwitchID  uint
	Count     int
	Duration  time.Duration
	NotBefore time.Time
	Until     time.Time
}

// Fit answers a FitRequest.
type Fit struct {
	// Start is the earliest start at which the request fits both the nodes' calendars and the
	// user's quotas; zero when it does not fit before Until.
	Start time.Time
	// NodesFree is the earliest start at which enough nodes are free, quotas aside (zero: none
	// before Until). When it is earlier than Start, or Start is zero, Quota names the limit
	// (QuotaLimitNodes or QuotaLimitNodeHours) that holds the request back; QuotaAlone says
	// the request alone exceeds it, so it never fits.
	NodesFree  time.Time
	Quota      string
	QuotaAlone bool
	// Nodes is how many nodes may serve the request (of Model, on SwitchID, or the list).
	Nodes int
}

// EarliestFit finds, for req, the earliest start at which CreateReservation would accept it:
// the nodes are not reserved by anyone during [start, start+Duration), a node whose last
// deployment is not destroyed yet is not taken to start within CleanupMargin of now (as
// CreateReservation refuses), and the user (not an admin) stays within the quotas. The
// nodes-only answer is exact; the quota one is the earliest of the starts where the user's
// use changes course (where their reservations start or end, or leave the rolling window), as
// QuotaError.FitsAt is.
func (s *Store) EarliestFit(ctx context.Context, req FitRequest, now time.Time) (Fit, error) {
	now = now.UTC().Truncate(time.Second)
	d := req.Duration.Truncate(time.Second)
	if d <= 0 {
		return Fit{}, fmt.Errorf("store: a reservation must end after it starts")
	}
	t0 := req.NotBefore.UTC().Truncate(time.Second)
	if t0.Before(now) {
		t0 = now
	}
	until := req.Until.UTC()
	db := s.db.WithContext(ctx)

	var nodes []Node
	need := req.Count
	if len(req.NodeIDs) > 0 {
		ids := uniq(req.NodeIDs)
		if err := db.Where("id IN ?", ids).Find(&nodes).Error; err != nil {
			return Fit{}, fmt.Errorf("store: unable to read nodes: %w", err)
		}
		if len(nodes) != len(ids) {
			return Fit{}, ErrNotFound
		}
		need = len(nodes)
	} else {
		q := db.Where("model = ?", req.Model)
		if req.SwitchID != 0 {
			q = q.Where("switch_id = ?", req.SwitchID)
		}
		if err := q.Find(&nodes).Error; err != nil {
			return Fit{}, fmt.Errorf("store: unable to read nodes: %w", err)
		}
	}
	fit := Fit{Nodes: len(nodes)}
	if need < 1 || need > len(nodes) {
		return fit, nil
	}
	cal, err := readCalendar(db, nodes, t0, now)
	if err != nil {
		return Fit{}, err
	}

	var q Quota
	var hs []held
	if req.UserID != 0 {
		var u User
		if err := db.First(&u, req.UserID).Error; err != nil {
			return Fit{}, notFound(err)
		}
		if !u.Admin {
			if q, err = readQuota(db); err != nil {
				return Fit{}, err
			}
		}
		if q.Nodes > 0 || q.NodeHours > 0 {
			if hs, err = heldBy(db, u.ID, 0, t0.Add(-QuotaWindow), farFuture); err != nil {
				return Fit{}, err
			}
			if limit := q.exceeded(nil, need, t0, t0.Add(d)); limit != "" {
				fit.Quota, fit.QuotaAlone = limit, true
				fit.NodesFree = cal.earliest(cal.starts(t0, until, d, nil), need, d)
				return fit, nil
			}
		}
	}

	// Between two of these starts, whether enough nodes are free and whether the user stays
	// within the nodes quota do not change, and the user's peak use of a rolling window is a
	// convex function of the start: at t0, where a node's reservation ends or comes within d,
	// where the cleanup margin passes, where one of the user's reservations starts, ends or
	// leaves a window (less d, a window, or both), and at until.
	extra := []time.Time{until}
	for _, h := range hs {
		for _, b := range []time.Time{h.start, h.end, h.start.Add(QuotaWindow), h.end.Add(QuotaWindow)} {
			for _, back := range []time.Duration{0, d, QuotaWindow, d + QuotaWindow} {
				extra = append(extra, b.Add(-back))
			}
		}
	}
	starts := cal.starts(t0, until, d, extra)
	nodesQuota := Quota{Nodes: q.Nodes}
	for i, t := range starts {
		if cal.fits(t, need, d) {
			if fit.NodesFree.IsZero() {
				fit.NodesFree = t
			}
			limit := q.exceeded(hs, need, t, t.Add(d))
			if limit == "" {
				fit.Start = t
				return fit, nil
			}
			fit.Quota = limit
		}
		// Inside (t, next), whole seconds as the database keeps them.
		if i+1 == len(starts) {
			break
		}
		lo, hi := t.Add(time.Second), starts[i+1].Add(-time.Second)
		if hi.Before(lo) || !cal.fits(lo, need, d) {
			continue
		}
		if fit.NodesFree.IsZero() {
			fit.NodesFree = lo
		}
		if nodesQuota.exceeded(hs, need, lo, lo.Add(d)) != "" {
			fit.Quota = QuotaLimitNodes
			continue
		}
		if at, ok := q.firstWithin(hs, need, d, lo, hi); ok {
			fit.Start = at
			return fit, nil
		}
		fit.Quota = QuotaLimitNodeHours
	}
	return fit, nil
}

// firstWithin is the first start in [lo, hi], to the second, at which need nodes for d keep
// the peak use of a window within q.NodeHours, with hs held; the peak is convex in the start
// over [lo, hi] (see EarliestFit), so its low point is found by ternary search and the first
// start under the limit before it by bisection.
func (q Quota) firstWithin(hs []held, need int, d time.Duration, lo, hi time.Time) (time.Time, bool) {
	limit := time.Duration(q.NodeHours) * time.Hour
	all := append(hs[:len(hs):len(hs)], held{nodes: need})
	peak := func(sec int64) time.Duration {
		t := lo.Add(time.Duration(sec) * time.Second)
		all[len(all)-1].start, all[len(all)-1].end = t, t.Add(d)
		return peakUse(all, t, t.Add(d))
	}
	a, b := int64(0), int64(hi.Sub(lo)/time.Second)
	for b-a > 2 {
		m1, m2 := a+(b-a)/3, b-(b-a)/3
		if peak(m1) > peak(m2) {
			a = m1
		} else {
			b = m2
		}
	}
	low := a
	for m := a + 1; m <= b; m++ {
		if peak(m) < peak(low) {
			low = m
		}
	}
	if peak(low) > limit {
		return time.Time{}, false
	}
	a, b = 0, low // the first second at or under the limit is in [a, b]
	for a < b {
		m := (a + b) / 2
		if peak(m) <= limit {
			b = m
		} else {
			a = m + 1
		}
	}
	return lo.Add(time.Duration(a) * time.Second), true
}

// calendar is what holds each candidate node from some time on.
type calendar struct {
	now  time.Time
	busy map[uint][][2]time.Time // node id: reserved [start, end)
	// dirty: nodes whose last deployment is not destroyed: not to be taken before now+CleanupMargin.
	dirty map[uint]bool
	ids   []uint
}

func readCalendar(db *gorm.DB, nodes []Node, from, now time.Time) (*calendar, error) {
	c := &calendar{now: now, busy: map[uint][][2]time.Time{}, dirty: map[uint]bool{}}
	for _, n := range nodes {
		c.ids = append(c.ids, n.ID)
	}
	var rows []struct {
		NodeID           uint
		StartsAt, EndsAt time.Time
	}
	err := db.Table("reservation_nodes").Select("reservation_nodes.node_id, reservations.starts_at, reservations.ends_at").
		Joins("JOIN reservations ON reservations.id = reservation_nodes.reservation_id").
		Where("reservation_nodes.node_id IN ? AND reservations.ends_at > ?", c.ids, from).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to read reservations: %w", err)
	}
	for _, r := range rows {
		c.busy[r.NodeID] = append(c.busy[r.NodeID], [2]time.Time{r.StartsAt.UTC(), r.EndsAt.UTC()})
	}
	var dirty []uint
	if err := unfinished(db.Model(&Deployment{}).Where("node_id IN ?", c.ids)).Pluck("node_id", &dirty).Error; err != nil {
		return nil, fmt.Errorf("store: unable to check deployments: %w", err)
	}
	for _, id := range dirty {
		c.dirty[id] = true
	}
	return c, nil
}

// starts returns, sorted and once each, the starts from t0 to until worth trying: t0, the ends
// of the reservations and their starts less d, the end of the cleanup margin, and extra.
func (c *calendar) starts(t0, until time.Time, d time.Duration, extra []time.Time) []time.Time {
	ts := []time.Time{t0, c.now.Add(CleanupMargin)}
	for _, rs := range c.busy {
		for _, r := range rs {
			ts = append(ts, r[1], r[0].Add(-d))
		}
	}
	ts = append(ts, extra...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	var out []time.Time
	for _, t := range ts {
		if t.Before(t0) || t.After(until) || (len(out) > 0 && t.Equal(out[len(out)-1])) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// fits says whether need of the nodes are free for [t, t+d).
func (c *calendar) fits(t time.Time, need int, d time.Duration) bool {
	free := 0
	for _, id := range c.ids {
		if c.dirty[id] && t.Before(c.now.Add(CleanupMargin)) {
			continue
		}
		ok := true
		for _, r := range c.busy[id] {
			if r[0].Before(t.Add(d)) && r[1].After(t) {
				ok = false
				break
			}
		}
		if ok {
			free++
		}
	}
	return free >= need
}

// earliest is the first of ts at which need nodes are free (zero: none).
func (c *calendar) earliest(ts []time.Time, need int, d time.Duration) time.Time {
	for _, t := range ts {
		if c.fits(t, need, d) {
			return t
		}
	}
	return time.Time{}
}
