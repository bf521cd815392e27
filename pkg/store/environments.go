package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// Environments returns every environment by name.
func (s *Store) Environments(ctx context.Context) ([]Environment, error) {
	var es []Environment
	if err := s.DB.WithContext(ctx).Order("name").Find(&es).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list environments: %w", err)
	}
	return es, nil
}

// VisibleEnvironments returns the environments user userID may deploy: the default ones and
// the user's own; admins see all of them but the hidden ones.
func (s *Store) VisibleEnvironments(ctx context.Context, userID uint, admin bool) ([]Environment, error) {
	var es []Environment
	q := s.DB.WithContext(ctx).Order("name")
	if admin {
		q = q.Where("type <> ?", EnvHidden)
	} else {
		q = q.Where("type = ? OR (type = ? AND owner_id = ?)", EnvDefault, EnvUser, userID)
	}
	if err := q.Find(&es).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list environments: %w", err)
	}
	return es, nil
}

// Environment returns the environment with id.
func (s *Store) Environment(ctx context.Context, id uint) (*Environment, error) {
	var e Environment
	if err := s.DB.WithContext(ctx).First(&e, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &e, nil
}

// CreateEnvironment inserts e; ErrDuplicate when the name is taken.
func (s *Store) CreateEnvironment(ctx context.Context, e *Environment) error {
	return saveError("environment", s.DB.WithContext(ctx).Create(e).Error)
}

// UpdateEnvironment saves every column of e.
func (s *Store) UpdateEnvironment(ctx context.Context, e *Environment) error {
	res := s.DB.WithContext(ctx).Model(&Environment{}).Where("id = ?", e.ID).Select("*").Omit("id", "created_at").Updates(e)
	if res.Error != nil {
		return saveError("environment", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteEnvironment deletes an environment no deployment uses (ErrInUse otherwise).
func (s *Store) DeleteEnvironment(ctx context.Context, id uint) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Deployment{}).Where("environment_id = ?", id).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrInUse
		}
		res := tx.Delete(&Environment{}, id)
		if res.Error != nil {
			return saveError("environment", res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}
