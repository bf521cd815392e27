package store

import "context"

// systemKeyRole is remote.RoleSystem (pkg/store does not link the SSH code; pkg/web's
// TestDeploymentHostKey pins a key under remote.RoleSystem and reads it back here).
const systemKeyRole = "system"

// SystemHostKey is the host key, in authorized_keys form, pinned for the system deployed on
// node nodeID: what its owner's ssh must see (found is false before the card is written).
func (s *Store) SystemHostKey(ctx context.Context, nodeID uint) (key string, found bool, err error) {
	return s.HostKey(ctx, systemKeyRole, nodeID)
}
