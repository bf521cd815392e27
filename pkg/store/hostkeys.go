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
	err = s.DB.WithContext(ctx).Where("role = ? AND node_id = ?", role, nodeID).First(&hk).Error
	if errors.Is(notFound(err), ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: unable to read the %s host key of node %d: %w", role, nodeID, err)
	}
	return hk.Key, true, nil
}

// SetHostKey pins key for role and nodeID when none is pinned yet. An existing key is kept:
// trust on first use stays first-writer-wins when two connections learn at once (the caller
// reads the key back to see which one won); to replace a key, ForgetHostKey first.
func (s *Store) SetHostKey(ctx context.Context, role string, nodeID uint, key string) error {
	if role == "" || key == "" {
		return fmt.Errorf("store: unable to save a host key: role and key are required")
	}
	err := s.DB.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&HostKey{Role: role, NodeID: nodeID, Key: key}).Error
	if err != nil {
		return fmt.Errorf("store: unable to save the %s host key of node %d: %w", role, nodeID, err)
	}
	return nil
}

// ForgetHostKey removes the pinned key of role and nodeID (done before each deployment so the
// new system's key is learned on first contact). Forgetting a missing key is not an error.
func (s *Store) ForgetHostKey(ctx context.Context, role string, nodeID uint) error {
	err := s.DB.WithContext(ctx).Where("role = ? AND node_id = ?", role, nodeID).Delete(&HostKey{}).Error
	if err != nil {
		return fmt.Errorf("store: unable to forget the %s host key of node %d: %w", role, nodeID, err)
	}
	return nil
}
