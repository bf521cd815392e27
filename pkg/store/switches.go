package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
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

// Switches returns every switch by name.
func (s *Store) Switches(ctx context.Context) ([]Switch, error) {
	var sws []Switch
	if err := s.DB.WithContext(ctx).Order("name").Find(&sws).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list switches: %w", err)
	}
	return sws, nil
}

// Switch returns the switch with id.
func (s *Store) Switch(ctx context.Context, id uint) (*Switch, error) {
	var sw Switch
	if err := s.DB.WithContext(ctx).First(&sw, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &sw, nil
}

// CreateSwitch inserts sw; ErrDuplicate when the name is taken.
func (s *Store) CreateSwitch(ctx context.Context, sw *Switch) error {
	return saveError("switch", s.DB.WithContext(ctx).Create(sw).Error)
}

// UpdateSwitch saves every column of sw.
func (s *Store) UpdateSwitch(ctx context.Context, sw *Switch) error {
	res := s.DB.WithContext(ctx).Model(&Switch{}).Where("id = ?", sw.ID).Select("*").Omit("id", "created_at").Updates(sw)
	if res.Error != nil {
		return saveError("switch", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteSwitch deletes a switch that powers no node (ErrInUse otherwise).
func (s *Store) DeleteSwitch(ctx context.Context, id uint) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
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
