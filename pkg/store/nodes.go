package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Nodes returns every node with its switch, by switch and port.
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	var ns []Node
	err := s.DB.WithContext(ctx).Preload("Switch").
		Joins("JOIN switches ON switches.id = nodes.switch_id").
		Order("switches.name, nodes.port, nodes.name").Find(&ns).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to list nodes: %w", err)
	}
	return ns, nil
}

// Node returns the node with id, with its switch.
func (s *Store) Node(ctx context.Context, id uint) (*Node, error) {
	var n Node
	if err := s.DB.WithContext(ctx).Preload("Switch").First(&n, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &n, nil
}

// CreateNode inserts n; ErrDuplicate when the name is taken, ErrInUse when its switch port
// already has a node.
func (s *Store) CreateNode(ctx context.Context, n *Node) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := portFree(tx, n); err != nil {
			return err
		}
		return saveError("node", tx.Omit("Switch").Create(n).Error)
	})
}

// UpdateNode saves every column of n.
func (s *Store) UpdateNode(ctx context.Context, n *Node) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := portFree(tx, n); err != nil {
			return err
		}
		res := tx.Model(&Node{}).Where("id = ?", n.ID).Select("*").Omit("id", "created_at", "Switch").Updates(n)
		if res.Error != nil {
			return saveError("node", res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// ErrPortTaken: another node is on that switch port.
var ErrPortTaken = fmt.Errorf("%w: another node is on that switch port", ErrInUse)

func portFree(tx *gorm.DB, n *Node) error {
	var c int64
	if err := tx.Model(&Node{}).Where("switch_id = ? AND port = ? AND id <> ?", n.SwitchID, n.Port, n.ID).Count(&c).Error; err != nil {
		return err
	}
	if c > 0 {
		return ErrPortTaken
	}
	return nil
}

// DeleteNode deletes a node that no deployment used (ErrInUse otherwise); its past reservations
// forget it.
func (s *Store) DeleteNode(ctx context.Context, id uint) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var c int64
		if err := tx.Model(&Deployment{}).Where("node_id = ?", id).Count(&c).Error; err != nil {
			return err
		}
		if c > 0 {
			return ErrInUse
		}
		if err := tx.Exec("DELETE FROM reservation_nodes WHERE node_id = ?", id).Error; err != nil {
			return err
		}
		res := tx.Delete(&Node{}, id)
		if res.Error != nil {
			return saveError("node", res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// NodeStatus is one node as the resources page shows it.
type NodeStatus struct {
	Node
	// Held is true when a reservation covers now; HolderID, Holder (a display name, never an
	// e-mail), ReservationID and Until describe it.
	Held          bool
	HolderID      uint
	Holder        string
	ReservationID uint
	Until         time.Time
	// NextStart is the start of the next future reservation, if any.
	NextStart *time.Time
	// The node's latest deployment, if any.
	DeploymentID uint
	Process      string
	State        string
}

// Free reports whether the node can be taken now: nobody holds it and its last deployment is
// destroyed (or it never had one).
func (ns *NodeStatus) Free() bool {
	return !ns.Held && (ns.DeploymentID == 0 || (ns.Process == "destroy" && ns.State == "destroyed"))
}

// NodeStatuses returns every node with who holds it at now and its latest deployment's state.
func (s *Store) NodeStatuses(ctx context.Context, now time.Time) ([]NodeStatus, error) {
	now = now.UTC()
	nodes, err := s.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	db := s.DB.WithContext(ctx)
	type resRow struct {
		NodeID        uint
		ReservationID uint
		UserID        uint
		StartsAt      time.Time
		EndsAt        time.Time
		FirstName     string
		LastName      string
		Email         string
	}
	var rows []resRow
	err = db.Table("reservation_nodes").
		Select("reservation_nodes.node_id, reservations.id AS reservation_id, reservations.user_id, reservations.starts_at, reservations.ends_at, users.first_name, users.last_name, users.email").
		Joins("JOIN reservations ON reservations.id = reservation_nodes.reservation_id").
		Joins("JOIN users ON users.id = reservations.user_id").
		Where("reservations.ends_at > ?", now).Order("reservations.starts_at").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to read reservations: %w", err)
	}
	type depRow struct {
		ID      uint
		NodeID  uint
		Process string
		State   string
	}
	var deps []depRow
	err = db.Model(&Deployment{}).Select("id, node_id, process, state").
		Where("id IN (?)", db.Model(&Deployment{}).Select("MAX(id)").Group("node_id")).Scan(&deps).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to read deployments: %w", err)
	}
	byNode := make(map[uint]*NodeStatus, len(nodes))
	out := make([]NodeStatus, len(nodes))
	for i, n := range nodes {
		out[i].Node = n
		byNode[n.ID] = &out[i]
	}
	for _, r := range rows {
		ns := byNode[r.NodeID]
		if ns == nil {
			continue
		}
		if !r.StartsAt.After(now) {
			u := User{ID: r.UserID, FirstName: r.FirstName, LastName: r.LastName, Email: r.Email}
			ns.Held, ns.HolderID, ns.Holder, ns.ReservationID, ns.Until = true, r.UserID, u.DisplayName(), r.ReservationID, r.EndsAt
		} else if ns.NextStart == nil {
			t := r.StartsAt
			ns.NextStart = &t
		}
	}
	for _, d := range deps {
		if ns := byNode[d.NodeID]; ns != nil {
			ns.DeploymentID, ns.Process, ns.State = d.ID, d.Process, d.State
		}
	}
	return out, nil
}
