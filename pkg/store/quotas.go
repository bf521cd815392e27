package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// Keys of the admin's quota settings ("" or "0": no limit).
const (
	SettingQuotaNodes     = "quota_nodes"
	SettingQuotaNodeHours = "quota_node_hours"
)

// QuotaWindow is the rolling period of the node-hours quota.
const QuotaWindow = 7 * 24 * time.Hour

// Quota is what one user who is not an admin may hold; zero means no limit.
type Quota struct {
	// Nodes: the most nodes held at any one time.
	Nodes int
	// NodeHours: the most node-hours reserved in any QuotaWindow.
	NodeHours int
}

// Limits of quota kinds, as QuotaError.Limit says.
const (
	QuotaLimitNodes     = "nodes"
	QuotaLimitNodeHours = "node-hours"
)

// QuotaError: the reservation would take the user over a quota.
type QuotaError struct {
	// Limit is QuotaLimitNodes or QuotaLimitNodeHours; Max its value.
	Limit string
	Max   int
	// FitsAt is the earliest time found at which the same request (count, duration) fits
	// the quotas; zero when the request alone exceeds them.
	FitsAt time.Time
}

func (e *QuotaError) Error() string {
	var msg string
	if e.Limit == QuotaLimitNodes {
		msg = fmt.Sprintf("store: quota: at most %d node(s) held at once", e.Max)
	} else {
		msg = fmt.Sprintf("store: quota: at most %d node-hours in any %s", e.Max, QuotaWindow)
	}
	if e.FitsAt.IsZero() {
		return msg + ": the request alone exceeds it"
	}
	return msg + "; the same request fits from " + e.FitsAt.UTC().Format(time.RFC3339)
}

// ReadQuota returns the quota settings.
func (s *Store) ReadQuota(ctx context.Context) (Quota, error) {
	return readQuota(s.db.WithContext(ctx))
}

func readQuota(tx *gorm.DB) (Quota, error) {
	var sts []Setting
	if err := tx.Where("`key` IN ?", []string{SettingQuotaNodes, SettingQuotaNodeHours}).Find(&sts).Error; err != nil {
		return Quota{}, fmt.Errorf("store: unable to read the quotas: %w", err)
	}
	var q Quota
	for _, st := range sts {
		n, err := strconv.Atoi(st.Value)
		if err != nil || n < 0 {
			continue // saved by SetQuota only: anything else is no limit
		}
		if st.Key == SettingQuotaNodes {
			q.Nodes = n
		} else {
			q.NodeHours = n
		}
	}
	return q, nil
}

// SetQuota stores the quotas.
func (s *Store) SetQuota(ctx context.Context, q Quota) error {
	if q.Nodes < 0 || q.NodeHours < 0 {
		return errors.New("store: a quota is 0 (no limit) or more")
	}
	return s.SetSettings(ctx, map[string]string{SettingQuotaNodes: strconv.Itoa(q.Nodes), SettingQuotaNodeHours: strconv.Itoa(q.NodeHours)})
}

// held is nodes held by one reservation from start to end.
type held struct {
	start, end time.Time
	nodes      int
}

// heldBy returns the reservations of userID but except that meet [from, to), with their node counts.
func heldBy(tx *gorm.DB, userID, except uint, from, to time.Time) ([]held, error) {
	var rows []struct {
		StartsAt, EndsAt time.Time
		N                int
	}
	err := tx.Table("reservations").Select("reservations.starts_at, reservations.ends_at, COUNT(reservation_nodes.node_id) AS n").
		Joins("JOIN reservation_nodes ON reservation_nodes.reservation_id = reservations.id").
		Where("reservations.user_id = ? AND reservations.id <> ? AND reservations.starts_at < ? AND reservations.ends_at > ?", userID, except, to, from).
		Group("reservations.id, reservations.starts_at, reservations.ends_at").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to read the reservations of user %d: %w", userID, err)
	}
	out := make([]held, len(rows))
	for i, r := range rows {
		out[i] = held{start: r.StartsAt.UTC(), end: r.EndsAt.UTC(), nodes: r.N}
	}
	return out, nil
}

// overlap is how long [s1, e1) and [s2, e2) share.
func overlap(s1, e1, s2, e2 time.Time) time.Duration {
	s, e := s1, e1
	if s2.After(s) {
		s = s2
	}
	if e2.Before(e) {
		e = e2
	}
	if !e.After(s) {
		return 0
	}
	return e.Sub(s)
}

// exceeded says which quota taking nodes from start to end would exceed with hs held ("": none).
func (q Quota) exceeded(hs []held, nodes int, start, end time.Time) string {
	all := append(hs[:len(hs):len(hs)], held{start, end, nodes})
	if q.Nodes > 0 {
		// The count held only rises at a start: look at the new one's and those inside it.
		for _, t := range all {
			if t.start.Before(start) || !t.start.Before(end) {
				continue
			}
			n := 0
			for _, h := range all {
				if !h.start.After(t.start) && h.end.After(t.start) {
					n += h.nodes
				}
			}
			if n > q.Nodes {
				return QuotaLimitNodes
			}
		}
	}
	if q.NodeHours > 0 && peakUse(all, start, end) > time.Duration(q.NodeHours)*time.Hour {
		return QuotaLimitNodeHours
	}
	return ""
}

// peakUse is the most node-time all hold in one QuotaWindow among the windows that meet
// [start, end), the new reservation's.
func peakUse(all []held, start, end time.Time) time.Duration {
	// The use of the window ending at e is continuous and piecewise linear in e, bending
	// where e or e-QuotaWindow meets a start or an end: over the windows that meet the new
	// reservation, e in (start, end+QuotaWindow), it is highest at one of those points or at
	// the ends of that range (which are such points too).
	var peak time.Duration
	for _, h := range all {
		for _, e := range []time.Time{h.start, h.end, h.start.Add(QuotaWindow), h.end.Add(QuotaWindow)} {
			if e.Before(start) || e.After(end.Add(QuotaWindow)) {
				continue
			}
			var use time.Duration
			for _, o := range all {
				use += time.Duration(o.nodes) * overlap(o.start, o.end, e.Add(-QuotaWindow), e)
			}
			peak = max(peak, use)
		}
	}
	return peak
}

// checkQuota refuses, with a *QuotaError, nodes taken by userID from start to end (a new
// reservation, or except's new length) when it would exceed the quotas; admins have none. The
// caller holds the user's row lock (lockUser), so that the user's other requests wait.
func checkQuota(tx *gorm.DB, u *User, except uint, nodes int, start, end time.Time) error {
	if u.Admin {
		return nil
	}
	q, err := readQuota(tx)
	if err != nil || (q.Nodes == 0 && q.NodeHours == 0) {
		return err
	}
	// Whatever can matter: windows around the request, and starts for a later try up to a
	// window after the last reservation met.
	hs, err := heldBy(tx, u.ID, except, start.Add(-QuotaWindow), end.Add(QuotaWindow))
	if err != nil {
		return err
	}
	limit := q.exceeded(hs, nodes, start, end)
	if limit == "" {
		return nil
	}
	qe := &QuotaError{Limit: limit, Max: q.Nodes}
	if limit == QuotaLimitNodeHours {
		qe.Max = q.NodeHours
	}
	if q.exceeded(nil, nodes, start, end) != "" {
		return qe
	}
	// Later starts where something frees up: as a reservation ends, or leaves the window.
	// Reservations after the request are read too, as a later start may meet them. A window
	// after the last one ends, the request fits (it fits alone): the search always ends.
	later, err := heldBy(tx, u.ID, except, start.Add(-QuotaWindow), farFuture)
	if err != nil {
		return err
	}
	d := end.Sub(start)
	var tries []time.Time
	for _, h := range later {
		for _, t := range []time.Time{h.end, h.start.Add(QuotaWindow), h.end.Add(QuotaWindow), h.end.Add(QuotaWindow - d)} {
			if t.After(start) {
				tries = append(tries, t)
			}
		}
	}
	sort.Slice(tries, func(i, j int) bool { return tries[i].Before(tries[j]) })
	for _, t := range tries {
		if q.exceeded(later, nodes, t, t.Add(d)) == "" {
			qe.FitsAt = t
			break
		}
	}
	return qe
}

// farFuture bounds "every reservation from now on".
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// QuotaUse is what a user holds against the quotas at a time.
type QuotaUse struct {
	Quota Quota
	// Exempt: admins have no quota.
	Exempt bool
	// NodesNow: nodes held now; NodeHoursPast: node-hours held in the QuotaWindow up to now;
	// NodeHoursAhead: node-hours reserved from now on.
	NodesNow                      int
	NodeHoursPast, NodeHoursAhead float64
}

// UserQuotaUse returns the quotas and what user u holds against them at now.
func (s *Store) UserQuotaUse(ctx context.Context, u *User, now time.Time) (QuotaUse, error) {
	now = now.UTC()
	db := s.db.WithContext(ctx)
	q, err := readQuota(db)
	if err != nil {
		return QuotaUse{}, err
	}
	hs, err := heldBy(db, u.ID, 0, now.Add(-QuotaWindow), farFuture)
	if err != nil {
		return QuotaUse{}, err
	}
	use := QuotaUse{Quota: q, Exempt: u.Admin}
	for _, h := range hs {
		if !h.start.After(now) && h.end.After(now) {
			use.NodesNow += h.nodes
		}
		use.NodeHoursPast += float64(h.nodes) * overlap(h.start, h.end, now.Add(-QuotaWindow), now).Hours()
		use.NodeHoursAhead += float64(h.nodes) * overlap(h.start, h.end, now, farFuture).Hours()
	}
	return use, nil
}
