package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/piseduce/piseduce/pkg/process"
)

// Nodes returns every node with its switch, by switch and port.
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	var ns []Node
	err := s.db.WithContext(ctx).Preload("Switch").
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
	if err := s.db.WithContext(ctx).Preload("Switch").First(&n, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &n, nil
}

// NodeByName returns the node called name, with its switch; ErrNotFound when there is none.
func (s *Store) NodeByName(ctx context.Context, name string) (*Node, error) {
	var n Node
	if err := s.db.WithContext(ctx).Preload("Switch").Where("name = ?", name).Take(&n).Error; err != nil {
		return nil, notFound(err)
	}
	return &n, nil
}

// CreateNode validates and inserts n: *InvalidError for a bad field, *DuplicateError when its
// name, IP, MAC, serial or switch port is another node's.
func (s *Store) CreateNode(ctx context.Context, n *Node) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := checkNode(tx, n); err != nil {
			return err
		}
		return saveError("node", tx.Omit("Switch").Create(n).Error)
	})
}

// UpdateNode validates n and saves every column of it, as CreateNode.
func (s *Store) UpdateNode(ctx context.Context, n *Node) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := checkNode(tx, n); err != nil {
			return err
		}
		return updateRow(tx, "node", n.ID, n)
	})
}

// DeleteNode deletes a node that no deployment used (ErrInUse otherwise); its past reservations
// and its pinned host keys forget it.
func (s *Store) DeleteNode(ctx context.Context, id uint) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
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
		if err := tx.Where("node_id = ?", id).Delete(&HostKey{}).Error; err != nil {
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
	// e-mail), ReservationID, Until and Zone (the reservation's TimeZone) describe it.
	Held          bool
	HolderID      uint
	Holder        string
	ReservationID uint
	Until         time.Time
	Zone          string
	// NextStart is the start of the next future reservation, if any, entered in NextZone.
	NextStart *time.Time
	NextZone  string
	// The node's latest deployment, if any; Queued when it waits for a worker.
	DeploymentID uint
	Process      string
	State        process.StateName
	Queued       bool
}

// Free reports whether the node can be taken now: nobody holds it and its last deployment is
// destroyed (or it never had one). A value receiver: templates call it on values.
func (ns NodeStatus) Free() bool {
	return !ns.Held && (ns.DeploymentID == 0 || (ns.Process == process.Destroy && ns.State == process.Destroyed))
}

// NodeStatuses returns every node with who holds it at now and its latest deployment's state.
// It is the resources page's query, run often on big clusters: three plain queries scanned
// without reflection.
func (s *Store) NodeStatuses(ctx context.Context, now time.Time) ([]NodeStatus, error) {
	now = now.UTC()
	db, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT nodes.id, nodes.name, nodes.switch_id, nodes.port, nodes.ip, nodes.mac,
		nodes.serial, nodes.model, switches.name, switches.port_count, switches.master_port
		FROM nodes JOIN switches ON switches.id = nodes.switch_id ORDER BY switches.name, nodes.port, nodes.name`)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list nodes: %w", err)
	}
	var out []NodeStatus
	for rows.Next() {
		var ns NodeStatus
		var ip, mac, serial, model sql.NullString
		n := &ns.Node
		if err := rows.Scan(&n.ID, &n.Name, &n.SwitchID, &n.Port, &ip, &mac, &serial, &model,
			&n.Switch.Name, &n.Switch.PortCount, &n.Switch.MasterPort); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: unable to read nodes: %w", err)
		}
		n.IP, n.MAC, n.Serial, n.Model, n.Switch.ID = ip.String, mac.String, serial.String, model.String, n.SwitchID
		out = append(out, ns)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: unable to read nodes: %w", err)
	}
	byNode := make(map[uint]*NodeStatus, len(out))
	for i := range out {
		byNode[out[i].ID] = &out[i]
	}

	rows, err = db.QueryContext(ctx, `SELECT reservation_nodes.node_id, reservations.id, reservations.user_id,
		reservations.starts_at, reservations.ends_at, reservations.time_zone, users.first_name, users.last_name, users.email
		FROM reservation_nodes JOIN reservations ON reservations.id = reservation_nodes.reservation_id
		JOIN users ON users.id = reservations.user_id
		WHERE reservations.ends_at > ? ORDER BY reservations.starts_at`, now)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read reservations: %w", err)
	}
	for rows.Next() {
		var nodeID, resID uint
		var u User
		var starts, ends timeValue
		var zone, first, last sql.NullString
		if err := rows.Scan(&nodeID, &resID, &u.ID, &starts, &ends, &zone, &first, &last, &u.Email); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: unable to read reservations: %w", err)
		}
		u.FirstName, u.LastName = first.String, last.String
		ns := byNode[nodeID]
		if ns == nil {
			continue
		}
		if !starts.t.After(now) {
			ns.Held, ns.HolderID, ns.Holder, ns.ReservationID, ns.Until, ns.Zone = true, u.ID, u.DisplayName(), resID, ends.t, zone.String
		} else if ns.NextStart == nil {
			t := starts.t
			ns.NextStart, ns.NextZone = &t, zone.String
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: unable to read reservations: %w", err)
	}

	rows, err = db.QueryContext(ctx, `SELECT id, node_id, process, state, queued FROM deployments
		WHERE id IN (SELECT MAX(id) FROM deployments GROUP BY node_id)`)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read deployments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, nodeID uint
		var proc string
		var state process.StateName
		var queued sql.NullBool
		if err := rows.Scan(&id, &nodeID, &proc, &state, &queued); err != nil {
			return nil, fmt.Errorf("store: unable to read deployments: %w", err)
		}
		if ns := byNode[nodeID]; ns != nil {
			ns.DeploymentID, ns.Process, ns.State, ns.Queued = id, proc, state, queued.Bool
		}
	}
	return out, rows.Err()
}

// timeValue scans a time from either driver: MariaDB gives time.Time (parseTime=true); the
// SQLite driver gives time.Time or, for some columns, text.
type timeValue struct{ t time.Time }

func (v *timeValue) Scan(src any) error {
	switch x := src.(type) {
	case time.Time:
		v.t = x.UTC()
		return nil
	case nil:
		v.t = time.Time{}
		return nil
	case string:
		return v.parse(x)
	case []byte:
		return v.parse(string(x))
	}
	return fmt.Errorf("store: cannot read %T as a time", src)
}

func (v *timeValue) parse(s string) error {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			v.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("store: cannot read %q as a time", s)
}
