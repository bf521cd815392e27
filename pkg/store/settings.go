package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Setting returns the value stored under key, or ErrNotFound.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var st Setting
	if err := s.db.WithContext(ctx).Where("`key` = ?", key).First(&st).Error; err != nil {
		return "", notFound(err)
	}
	return st.Value, nil
}

// Settings returns every stored setting.
func (s *Store) Settings(ctx context.Context) (map[string]string, error) {
	var sts []Setting
	if err := s.db.WithContext(ctx).Find(&sts).Error; err != nil {
		return nil, fmt.Errorf("store: unable to read settings: %w", err)
	}
	m := make(map[string]string, len(sts))
	for _, st := range sts {
		m[st.Key] = st.Value
	}
	return m, nil
}

// SetSettings stores every key of values, all or none.
func (s *Store) SetSettings(ctx context.Context, values map[string]string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for k, v := range values {
			err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "key"}},
				DoUpdates: clause.AssignmentColumns([]string{"value"})}).
				Create(&Setting{Key: k, Value: v}).Error
			if err != nil {
				return fmt.Errorf("store: unable to save setting %s: %w", k, err)
			}
		}
		return nil
	})
}

// EnsureSetting returns the value under key; when there is none, it stores gen's value first.
// Two processes starting at once agree on one value: the insert does nothing when a row exists.
func (s *Store) EnsureSetting(ctx context.Context, key string, gen func() (string, error)) (string, error) {
	if v, err := s.Setting(ctx, key); err == nil {
		return v, nil
	} else if err != ErrNotFound {
		return "", err
	}
	v, err := gen()
	if err != nil {
		return "", err
	}
	err = s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&Setting{Key: key, Value: v}).Error
	if err != nil {
		return "", fmt.Errorf("store: unable to save setting %s: %w", key, err)
	}
	return s.Setting(ctx, key)
}
