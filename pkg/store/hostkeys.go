package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm/clause"
)

// The methods below implement remote.HostKeyStore (defined by its consumer, pkg/remote)
// without either package importing the other: a missing key is found == false with a nil
// error, not ErrNotFound, so no sentinel error has to be shared or translated.

// HostKey returns the pinned SSH host key (authorized_keys format) of role ("nfs", "system")
// and nodeID; found is false when none is stored.
func (s *Store) HostKey(ctx context.Context, role string, nodeID uint) (key string, found bool, err error) {
	var hk HostKey
	err = s.db.WithContext(ctx).Where("role = ? AND node_id = ?", role, nodeID).First(&hk).Error
	if errors.Is(notFound(err), ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: unable to read the %s host key of node %d: %w", role, nodeID, err)
	}
	return hk.Key, true, nil
}

// PinHostKey pins key for role and nodeID, replacing the key pinned before: the NFS system's
// key from the configuration, a deployed system's key made by pitasks before the card boots.
func (s *Store) PinHostKey(ctx context.Context, role string, nodeID uint, key string) error {
	if role == "" || key == "" {
		return fmt.Errorf("store: unable to pin a host key: role and key are required")
	}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "role"}, {Name: "node_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"key"}),
	}).Create(&HostKey{Role: role, NodeID: nodeID, Key: key}).Error
	if err != nil {
		return fmt.Errorf("store: unable to pin the %s host key of node %d: %w", role, nodeID, err)
	}
	return nil
}
