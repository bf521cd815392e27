package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// Environments returns every environment by name.
func (s *Store) Environments(ctx context.Context) ([]Environment, error) {
	var es []Environment
	if err := s.db.WithContext(ctx).Order("name").Find(&es).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list environments: %w", err)
	}
	sortByName(es, func(e Environment) string { return e.Name })
	return es, nil
}

// VisibleEnvironments returns the environments user userID may deploy: the default ones, the
// user's own, and the user environments that have no owner (the original's, which it offered
// to everyone); admins see all of them but the hidden ones. Environments without an image
// (boot tests only) are never offered.
func (s *Store) VisibleEnvironments(ctx context.Context, userID uint, admin bool) ([]Environment, error) {
	var es []Environment
	q := s.db.WithContext(ctx).Order("name").Where("image_name <> ''")
	if admin {
		q = q.Where("type <> ?", EnvHidden)
	} else {
		q = q.Where("type = ? OR (type = ? AND owner_id IN ?)", EnvDefault, EnvUser, []uint{0, userID})
	}
	if err := q.Find(&es).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list environments: %w", err)
	}
	sortByName(es, func(e Environment) string { return e.Name })
	return es, nil
}

// Environment returns the environment with id.
func (s *Store) Environment(ctx context.Context, id uint) (*Environment, error) {
	var e Environment
	if err := s.db.WithContext(ctx).First(&e, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &e, nil
}

// CreateEnvironment validates and inserts e: *InvalidError for a bad field, *DuplicateError
// when the name is taken.
func (s *Store) CreateEnvironment(ctx context.Context, e *Environment) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := checkEnvironment(tx, e); err != nil {
			return err
		}
		return saveError("environment", tx.Create(e).Error)
	})
}

// CheckEnvironment validates e and checks that its name is free, without saving it: for a
// caller about to do slow work (measuring an image) first.
func (s *Store) CheckEnvironment(ctx context.Context, e *Environment) error {
	return checkEnvironment(s.db.WithContext(ctx), e)
}

// UpdateEnvironment validates e and saves every column of it, as CreateEnvironment.
func (s *Store) UpdateEnvironment(ctx context.Context, e *Environment) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := checkEnvironment(tx, e); err != nil {
			return err
		}
		return updateRow(tx, "environment", e.ID, e)
	})
}

// DeleteEnvironment deletes an environment no deployment uses (ErrInUse otherwise).
func (s *Store) DeleteEnvironment(ctx context.Context, id uint) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
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
