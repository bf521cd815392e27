package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/piseduce/piseduce/pkg/process"
)

// Capture is a request to save a deployed node's card as a new environment (process
// save_env). The web writes Name and Description into the deployment's Scratch with the
// request; pitasks adds what it learns on the way (img_copy), and creates the environment once
// the image is checked (img_check).
type Capture struct {
	Name        string `json:"capture_name"`
	Description string `json:"capture_description,omitempty"`

	// Filled in by img_copy: the image file in img_dir, its format, and the raw card bytes
	// it holds (size, sha256, where the root partition starts).
	File      string `json:"file,omitempty"`
	Format    string `json:"format,omitempty"`
	Size      int64  `json:"size,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	RootStart int64  `json:"root_start,omitempty"`
}

// ParseCapture reads the capture request kept in a deployment's Scratch.
func ParseCapture(scratch string) (Capture, error) {
	var c Capture
	if err := json.Unmarshal([]byte(scratch), &c); err != nil || c.Name == "" {
		return Capture{}, errors.New("store: no capture request in the deployment")
	}
	return c, nil
}

// JSON is c as kept in Scratch.
func (c Capture) JSON() string {
	b, _ := json.Marshal(c)
	return string(b)
}

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
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
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
		u["scratch"] = Capture{Name: name, Description: description}.JSON()
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
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
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
	if err := s.DB.WithContext(ctx).Where("name = ?", name).Take(&e).Error; err != nil {
		return nil, notFound(err)
	}
	return &e, nil
}
