package store

import (
	"context"
	"fmt"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
)

// PublishedNode is a node the pimaster's nginx publishes: it has a public port and runs a
// deployed system.
type PublishedNode struct {
	Name       string
	IP         string
	PublicPort int
	// Web: its environment serves HTTP on port 80 (the environment's web flag).
	Web bool
}

// PublishedNodes returns the nodes with a public port and an address whose deployment is
// deployed (on its card, not held) in a reservation that has not ended at now, by public
// port. A node being deployed, destroyed or rebooted is not published: its port then
// reaches nothing rather than a system that is going away.
func (s *Store) PublishedNodes(ctx context.Context, now time.Time) ([]PublishedNode, error) {
	var out []PublishedNode
	err := s.db.WithContext(ctx).Table("deployments").
		Select("nodes.name, nodes.ip, nodes.public_port, environments.web").
		Joins("JOIN nodes ON nodes.id = deployments.node_id").
		Joins("JOIN environments ON environments.id = deployments.environment_id").
		Joins("JOIN reservations ON reservations.id = deployments.reservation_id").
		Where("deployments.state = ? AND deployments.hold = '' AND reservations.ends_at > ? AND nodes.public_port > 0 AND nodes.ip <> ''",
			process.Deployed, now).
		Order("nodes.public_port").Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to list the published nodes: %w", err)
	}
	return out, nil
}
