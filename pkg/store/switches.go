package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// saveError maps constraint violations of a create or update to ErrDuplicate / ErrInUse.
func saveError(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return ErrDuplicate
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		return ErrInUse
	}
	return fmt.Errorf("store: unable to save %s: %w", what, err)
}

// updateRow saves every column of row, a *Switch, *Node or *Environment with id, but its id,
// creation time and associations; ErrNotFound when there is no such row.
func updateRow(tx *gorm.DB, what string, id uint, row any) error {
	res := tx.Model(row).Where("id = ?", id).Select("*").Omit("id", "created_at", clause.Associations).Updates(row)
	if res.Error != nil {
		return saveError(what, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// Switches returns every switch by name.
func (s *Store) Switches(ctx context.Context) ([]Switch, error) {
	var sws []Switch
	if err := s.db.WithContext(ctx).Order("name").Find(&sws).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list switches: %w", err)
	}
	sortByName(sws, func(sw Switch) string { return sw.Name })
	return sws, nil
}

// Switch returns the switch with id.
func (s *Store) Switch(ctx context.Context, id uint) (*Switch, error) {
	var sw Switch
	if err := s.db.WithContext(ctx).First(&sw, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &sw, nil
}

// CreateSwitch validates and inserts sw: *InvalidError for a bad field (its power settings
// are the power driver's to judge), *DuplicateError when its name or address is another
// switch's.
func (s *Store) CreateSwitch(ctx context.Context, sw *Switch) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := checkSwitch(tx, sw); err != nil {
			return err
		}
		return saveError("switch", tx.Create(sw).Error)
	})
}

// UpdateSwitch validates sw and saves every column of it, as CreateSwitch; its nodes must
// still be on its ports.
func (s *Store) UpdateSwitch(ctx context.Context, sw *Switch) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := checkSwitch(tx, sw); err != nil {
			return err
		}
		return updateRow(tx, "switch", sw.ID, sw)
	})
}

// DeleteSwitch deletes a switch that powers no node (ErrInUse otherwise).
func (s *Store) DeleteSwitch(ctx context.Context, id uint) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Node{}).Where("switch_id = ?", id).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrInUse
		}
		res := tx.Delete(&Switch{}, id)
		if res.Error != nil {
			return saveError("switch", res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// RequestDiscovery asks pitasks to discover the nodes on ports (nil: every port without a node)
// of switch switchID. One run per switch at a time: ErrInUse when one is pending or running.
func (s *Store) RequestDiscovery(ctx context.Context, switchID uint, ports []int, by uint) (*DiscoveryRun, error) {
	var r *DiscoveryRun
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var sw Switch
		if err := lockForUpdate(tx, s.Dialect).First(&sw, switchID).Error; err != nil {
			return notFound(err)
		}
		var busy int64
		if err := tx.Model(&DiscoveryRun{}).Where("switch_id = ? AND state IN ?", switchID,
			[]string{DiscoveryRequested, DiscoveryRunning}).Count(&busy).Error; err != nil {
			return err
		}
		if busy > 0 {
			return ErrInUse
		}
		list := make([]string, len(ports))
		for i, p := range ports {
			list[i] = strconv.Itoa(p)
		}
		r = &DiscoveryRun{SwitchID: switchID, Ports: strings.Join(list, ","), RequestedBy: by, State: DiscoveryRequested}
		return tx.Omit("Switch").Create(r).Error
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DiscoveryRun returns a run with its switch.
func (s *Store) DiscoveryRun(ctx context.Context, id uint) (*DiscoveryRun, error) {
	var r DiscoveryRun
	if err := s.db.WithContext(ctx).Preload("Switch").First(&r, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &r, nil
}

// DiscoveryRuns returns the latest runs of a switch, newest first.
func (s *Store) DiscoveryRuns(ctx context.Context, switchID uint, limit int) ([]DiscoveryRun, error) {
	var rs []DiscoveryRun
	err := s.db.WithContext(ctx).Omit("output").Where("switch_id = ?", switchID).Order("id DESC").Limit(limit).Find(&rs).Error
	return rs, err
}

// PortList reads Ports.
func (r *DiscoveryRun) PortList() []int {
	var out []int
	for _, f := range strings.Split(r.Ports, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// ClaimDiscovery is for pitasks: it takes the oldest requested run, if any, for owner until
// now+lease. First it ends the runs whose owner's lease ran out, with StoppedDuringRun: a run
// never stays "running" after its pitasks stopped.
func (s *Store) ClaimDiscovery(ctx context.Context, owner string, now time.Time, lease time.Duration) (*DiscoveryRun, error) {
	t := now.UTC()
	db := s.db.WithContext(ctx)
	if err := db.Model(&DiscoveryRun{}).Where("state = ? AND (lease_until IS NULL OR lease_until < ?)", DiscoveryRunning, t).
		Updates(map[string]any{"state": DiscoveryFailed, "error": StoppedDuringRun, "ended_at": t}).Error; err != nil {
		return nil, err
	}
	for {
		var r DiscoveryRun
		err := db.Preload("Switch").Where("state = ?", DiscoveryRequested).Order("id").First(&r).Error
		if err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return nil, nil
			}
			return nil, err
		}
		until := t.Add(lease)
		res := db.Model(&DiscoveryRun{}).Where("id = ? AND state = ?", r.ID, DiscoveryRequested).
			Updates(map[string]any{"state": DiscoveryRunning, "owner": owner, "started_at": t, "lease_until": until})
		if res.Error != nil {
			return nil, res.Error
		}
		if res.RowsAffected == 1 {
			r.State, r.Owner, r.StartedAt, r.LeaseUntil = DiscoveryRunning, owner, &t, &until
			return &r, nil
		}
		// Another pitasks took it first: look again.
	}
}

// AppendDiscoveryOutput adds a line of progress to run id.
func (s *Store) AppendDiscoveryOutput(ctx context.Context, id uint, line string) error {
	line = strings.TrimRight(line, "\n") + "\n"
	concat := "CONCAT(output, ?)"
	if s.Dialect == "sqlite" {
		concat = "output || ?"
	}
	return s.db.WithContext(ctx).Model(&DiscoveryRun{}).Where("id = ?", id).
		Update("output", gorm.Expr(concat, line)).Error
}

// FinishDiscovery ends owner's run id: done, or failed with runErr's message. ErrLeaseLost
// when it is no longer owner's (its lease ran out and another pitasks ended it).
func (s *Store) FinishDiscovery(ctx context.Context, id uint, owner string, runErr error, now time.Time) error {
	u := map[string]any{"state": DiscoveryDone, "ended_at": now.UTC()}
	if runErr != nil {
		u["state"], u["error"] = DiscoveryFailed, runErr.Error()
	}
	return s.updateOwned(ctx, &DiscoveryRun{}, id, owner, u)
}

// lockForUpdate locks the rows tx reads next until it ends (MariaDB; SQLite's write
// transaction already excludes other writers).
func lockForUpdate(tx *gorm.DB, dialect string) *gorm.DB {
	if dialect == "mysql" {
		return tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return tx
}
