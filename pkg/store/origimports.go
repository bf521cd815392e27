package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// OriginalImport records which row of the original PiSeduce's database became which row here
// (pkg/origdb), so that an import run again knows what it brought over already, even if that
// row changed here since.
type OriginalImport struct {
	ID        uint   `gorm:"primaryKey"`
	OrigTable string `gorm:"size:16;uniqueIndex:idx_original_row;not null"`
	OrigID    int64  `gorm:"uniqueIndex:idx_original_row;not null"`
	LocalID   uint   `gorm:"not null"`
	CreatedAt time.Time
}

// TableName keeps the table of the first imports.
func (OriginalImport) TableName() string { return "original_imports" }

// CreateOriginalImports creates the table of OriginalImport if it is missing. Only an import
// needs it, so it is made by the first import that writes, not by a migration.
func (s *Store) CreateOriginalImports(ctx context.Context) error {
	if err := s.db.WithContext(ctx).AutoMigrate(&OriginalImport{}); err != nil {
		return fmt.Errorf("store: create table original_imports: %w", err)
	}
	return nil
}

// OriginalImports lists what earlier imports recorded; none when no import ever wrote.
func (s *Store) OriginalImports(ctx context.Context) ([]OriginalImport, error) {
	db := s.db.WithContext(ctx)
	if !db.Migrator().HasTable(&OriginalImport{}) {
		return nil, nil
	}
	var rows []OriginalImport
	if err := db.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: read original_imports: %w", err)
	}
	return rows, nil
}

// RecordOriginalImport records that the original's row orig of table became row local here.
func (s *Store) RecordOriginalImport(ctx context.Context, table string, orig int64, local uint) error {
	return s.db.WithContext(ctx).Create(&OriginalImport{OrigTable: table, OrigID: orig, LocalID: local}).Error
}

// ImportDeployment creates d as it is given, in its process and state: a deployment brought
// over from the original, where it may be anywhere in its life (CreateDeployments starts new ones).
func (s *Store) ImportDeployment(ctx context.Context, d *Deployment) error {
	return s.db.WithContext(ctx).Omit(clause.Associations).Create(d).Error
}

// AdoptEnvironment gives the environment id to owner, if it has no owner yet.
func (s *Store) AdoptEnvironment(ctx context.Context, id, owner uint) error {
	return s.db.WithContext(ctx).Model(&Environment{}).Where("id = ? AND owner_id = 0", id).Update("owner_id", owner).Error
}
