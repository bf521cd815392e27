package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/piseduce/piseduce/pkg/process"
)

// ErrNotDeployed: a capture was asked of a node that is not deployed (and idle) right now.
var ErrNotDeployed = &ConflictError{Reason: "only a deployed node can be saved as an environment"}

// RequestCapture asks pitasks to save deployment id's card as a new environment named name,
// owned by the deployment's user. The node must be deployed (its process over) and the name
// valid (*InvalidError) and free (*DuplicateError).
func (s *Store) RequestCapture(ctx context.Context, id uint, name, description string) error {
	p, err := process.Get(process.SaveEnv)
	if err != nil {
		return err
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var d Deployment
		if err := tx.First(&d, id).Error; err != nil {
			return notFound(err)
		}
		if process.Allowed(process.Situation{Process: d.Process, State: d.State, Held: d.Hold != "", Running: true}, process.ActSave) != nil {
			return ErrNotDeployed
		}
		if err := checkName("environment", name); err != nil {
			return err
		}
		if err := firstDuplicate(tx, &Environment{}, "environment", name, 0, []check{nameCheck(name)}); err != nil {
			return err
		}
		u := requestUpdates(p.Name, p.First(), time.Now().UTC())
		u["capture_name"], u["capture_description"], u["scratch"] = name, description, ""
		u["resume_process"], u["resume_state"] = "", ""
		u["bytes_done"], u["bytes_total"], u["throughput"] = 0, 0, 0
		res := tx.Model(&Deployment{}).Where("id = ? AND generation = ?", id, d.Generation).Updates(u)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return &ConflictError{Reason: "the deployment changed meanwhile, try again"}
		}
		return nil
	})
}

// CreateCapturedEnvironment inserts the environment a capture made. Creating it again (a
// retried img_check) is not an error: an environment of that name, owner and image file is
// the same one, and e gets its id. Any other environment of that name is ErrDuplicate.
func (s *Store) CreateCapturedEnvironment(ctx context.Context, e *Environment) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var cur Environment
		err := tx.Where("name = ?", e.Name).Take(&cur).Error
		switch {
		case err == nil && cur.OwnerID == e.OwnerID && cur.ImageName == e.ImageName:
			*e = cur
			return nil
		case err == nil:
			return ErrDuplicate
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return fmt.Errorf("store: unable to look environment %s up: %w", e.Name, err)
		}
		if err := checkEnvironment(tx, e); err != nil {
			return err
		}
		return saveError("environment", tx.Create(e).Error)
	})
}

// EnvironmentByName returns the environment called name.
func (s *Store) EnvironmentByName(ctx context.Context, name string) (*Environment, error) {
	var e Environment
	if err := s.db.WithContext(ctx).Where("name = ?", name).Take(&e).Error; err != nil {
		return nil, notFound(err)
	}
	return &e, nil
}
