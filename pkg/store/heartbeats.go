package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Heartbeat is one pitasks process's sign of life: it writes LastTick (and what it holds) on
// every tick. A heartbeat that stops tells the web that no worker runs, and lets a peer take
// the process's leases over at once instead of waiting for them to run out (TakeOver).
type Heartbeat struct {
	ID uint `gorm:"primaryKey"`
	// Owner is the name the process leases under (engine.Options.Owner).
	Owner   string `gorm:"size:64;uniqueIndex;not null"`
	Host    string `gorm:"size:255"`
	PID     int
	Version string `gorm:"size:64"`
	// Machine tells one host and process namespace from another (boot id and PID namespace):
	// only a process with the same Machine can tell by its PID that this one is gone.
	Machine string `gorm:"size:128"`
	// TickMS is the process's tick: three ticks without a heartbeat and it is taken for dead.
	TickMS    int64
	StartedAt time.Time
	LastTick  time.Time
	// What the process holds at its last tick: deployment leases, discovery runs.
	Leases      int
	Discoveries int
	// StoppedAt is set when the process stopped cleanly or was taken over; StopReason says which.
	StoppedAt  *time.Time
	StopReason string `gorm:"size:255"`
}

// TableName keeps the table's name explicit: "heartbeats" alone would not say whose.
func (Heartbeat) TableName() string { return "pitasks_heartbeats" }

// Tick is the process's tick as a duration.
func (h *Heartbeat) Tick() time.Duration { return time.Duration(h.TickMS) * time.Millisecond }

// Alive reports whether the process ticked within its last three ticks at now and has not
// stopped.
func (h *Heartbeat) Alive(now time.Time) bool {
	return h.StoppedAt == nil && now.Sub(h.LastTick) <= 3*h.Tick()
}

// ErrTakenOver is returned by Beat when a peer declared this process dead and took its leases:
// whatever it still runs is no longer its own.
var ErrTakenOver = errors.New("store: this pitasks was taken for dead and its leases taken over")

// Beat records h's tick: LastTick, Leases and the number of discovery runs h.Owner holds, in
// one UPDATE. The first beat of a process inserts its row. When the row says the process was
// taken over, the row is made live again and ErrTakenOver returned.
func (s *Store) Beat(ctx context.Context, h *Heartbeat) error {
	db := s.db.WithContext(ctx)
	runs := db.Model(&DiscoveryRun{}).Select("COUNT(*)").Where("state = ? AND owner = ?", DiscoveryRunning, h.Owner)
	res := db.Model(&Heartbeat{}).Where("owner = ? AND stopped_at IS NULL", h.Owner).
		Updates(map[string]any{"last_tick": h.LastTick.UTC(), "leases": h.Leases, "discoveries": runs})
	if res.Error != nil {
		return fmt.Errorf("store: heartbeat: %w", res.Error)
	}
	if res.RowsAffected > 0 {
		return nil
	}
	var prev Heartbeat
	err := db.Where("owner = ?", h.Owner).First(&prev).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		h.StartedAt, h.StoppedAt, h.StopReason = h.LastTick.UTC(), nil, ""
		// Another statement of ours may have raced it in: nothing to do then.
		if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(h).Error; err != nil {
			return fmt.Errorf("store: heartbeat: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("store: heartbeat: %w", err)
	case prev.StoppedAt == nil:
		return nil // the same tick written twice (MySQL counts unchanged rows as unaffected)
	}
	if err := db.Model(&Heartbeat{}).Where("owner = ?", h.Owner).
		Updates(map[string]any{"last_tick": h.LastTick.UTC(), "leases": h.Leases, "stopped_at": nil, "stop_reason": ""}).Error; err != nil {
		return fmt.Errorf("store: heartbeat: %w", err)
	}
	return fmt.Errorf("%w (%s)", ErrTakenOver, prev.StopReason)
}

// StopHeartbeat marks owner's heartbeat stopped, for reason, at now (a clean stop).
func (s *Store) StopHeartbeat(ctx context.Context, owner, reason string, now time.Time) error {
	return s.db.WithContext(ctx).Model(&Heartbeat{}).Where("owner = ? AND stopped_at IS NULL", owner).
		Updates(map[string]any{"stopped_at": now.UTC(), "stop_reason": reason}).Error
}

// Heartbeats returns every pitasks process recorded, the latest tick first.
func (s *Store) Heartbeats(ctx context.Context) ([]Heartbeat, error) {
	var hs []Heartbeat
	err := s.db.WithContext(ctx).Order("last_tick DESC").Order("id DESC").Find(&hs).Error
	return hs, err
}

// PruneHeartbeats removes the rows of processes that stopped before before.
func (s *Store) PruneHeartbeats(ctx context.Context, before time.Time) error {
	return s.db.WithContext(ctx).Where("stopped_at IS NOT NULL AND stopped_at < ?", before.UTC()).Delete(&Heartbeat{}).Error
}

// WorkerHealth is what the web says of the pitasks processes.
type WorkerHealth struct {
	// Alive counts the processes that ticked within their last three ticks.
	Alive int
	// LastTick is the latest tick of any process; zero when none ever ran.
	LastTick time.Time
}

// Running reports whether any pitasks works.
func (w WorkerHealth) Running() bool { return w.Alive > 0 }

// WorkerHealth reads the heartbeats at now.
func (s *Store) WorkerHealth(ctx context.Context, now time.Time) (WorkerHealth, error) {
	var hs []Heartbeat
	if err := s.db.WithContext(ctx).Select("last_tick", "tick_ms", "stopped_at").Find(&hs).Error; err != nil {
		return WorkerHealth{}, fmt.Errorf("store: heartbeats: %w", err)
	}
	var w WorkerHealth
	for i := range hs {
		if hs[i].Alive(now) {
			w.Alive++
		}
		if hs[i].LastTick.After(w.LastTick) {
			w.LastTick = hs[i].LastTick
		}
	}
	return w, nil
}

// TakenOver is what TakeOver did.
type TakenOver struct {
	// Owners are the processes declared dead now.
	Owners []string
	// Deployments, Discoveries and Ports count the leases freed.
	Deployments, Discoveries, Ports int64
}

// TakeOver declares dead the processes other than taker whose heartbeat is older than
// cutoff, and those in gone (processes the taker saw are gone, with why), then frees the
// leases of every process declared dead: deployments go back to be claimed at once, the
// discovery runs they ran end as StoppedDuringRun, their port requests are claimed again.
// Each is one conditional UPDATE on the heartbeats, so two takers never both act on a process
// that beat in between; a process that beats after it was declared dead learns it (Beat).
// With force the leases are freed even when no process was declared dead now (at start, in
// case a taker stopped between the two).
func (s *Store) TakeOver(ctx context.Context, taker string, now, cutoff time.Time, gone map[string]string, force bool) (TakenOver, error) {
	db := s.db.WithContext(ctx)
	var out TakenOver
	var stale []Heartbeat
	if err := db.Select("owner", "last_tick").Where("stopped_at IS NULL AND owner <> ?", taker).
		Where("last_tick < ?", cutoff.UTC()).Or("stopped_at IS NULL AND owner IN ?", keys(gone)).Find(&stale).Error; err != nil {
		return out, fmt.Errorf("store: heartbeats: %w", err)
	}
	for _, h := range stale {
		reason, q := gone[h.Owner], db.Model(&Heartbeat{}).Where("owner = ? AND stopped_at IS NULL", h.Owner)
		if reason == "" {
			reason = fmt.Sprintf("no heartbeat since %s: taken over by %s", h.LastTick.UTC().Format(time.RFC3339), taker)
			q = q.Where("last_tick < ?", cutoff.UTC())
		}
		res := q.Updates(map[string]any{"stopped_at": now.UTC(), "stop_reason": reason})
		if res.Error != nil {
			return out, fmt.Errorf("store: heartbeats: %w", res.Error)
		}
		if res.RowsAffected > 0 {
			out.Owners = append(out.Owners, h.Owner)
		}
	}
	if len(out.Owners) == 0 && !force {
		return out, nil
	}
	dead := db.Model(&Heartbeat{}).Select("owner").Where("stopped_at IS NOT NULL AND owner <> ?", taker)
	res := db.Model(&Deployment{}).Where("lease_owner IN (?)", dead).
		UpdateColumns(map[string]any{"lease_owner": "", "lease_until": time.Time{}}) // not updated_at, as ReleaseLease
	if res.Error != nil {
		return out, fmt.Errorf("store: take over deployments: %w", res.Error)
	}
	out.Deployments = res.RowsAffected
	res = db.Model(&DiscoveryRun{}).Where("state = ? AND owner IN (?)", DiscoveryRunning, dead).
		Updates(map[string]any{"state": DiscoveryFailed, "error": StoppedDuringRun, "ended_at": now.UTC()})
	if res.Error != nil {
		return out, fmt.Errorf("store: take over discovery runs: %w", res.Error)
	}
	out.Discoveries = res.RowsAffected
	res = db.Model(&PortRequest{}).Where("state = ? AND owner IN (?)", RequestRunning, dead).Update("lease_until", nil)
	if res.Error != nil {
		return out, fmt.Errorf("store: take over port requests: %w", res.Error)
	}
	out.Ports = res.RowsAffected
	return out, nil
}

func keys(m map[string]string) []string {
	out := []string{""} // never an empty IN list
	for k := range m {
		out = append(out, k)
	}
	return out
}

// InspectWorkers reads the pitasks heartbeats of the database at connURL at now, without
// creating or changing anything (pitasks check); recorded is false when the database has no
// heartbeats table yet.
func InspectWorkers(ctx context.Context, connURL string, now time.Time) (w WorkerHealth, recorded bool, err error) {
	s, err := connect(ctx, connURL, true)
	if err != nil {
		return w, false, err
	}
	defer s.Close()
	if !s.db.Migrator().HasTable(&Heartbeat{}) {
		return w, false, nil
	}
	w, err = s.WorkerHealth(ctx, now)
	return w, err == nil, err
}
