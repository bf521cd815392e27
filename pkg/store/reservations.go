package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/piseduce/piseduce/pkg/process"
)

// CleanupMargin: a reservation that starts within this margin needs its nodes' previous
// deployments destroyed already, not only their reservations ended.
const CleanupMargin = 15 * time.Minute

// ConflictError says which nodes are not available for the requested time.
type ConflictError struct {
	Nodes  []string
	Reason string
}

func (e *ConflictError) Error() string {
	if len(e.Nodes) == 0 {
		return "store: " + e.Reason
	}
	return fmt.Sprintf("store: %s: %s", e.Reason, strings.Join(e.Nodes, ", "))
}

// ErrConflict matches every *ConflictError with errors.Is.
var ErrConflict = errors.New("store: nodes not available")

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ReservationRequest asks for nodes from StartsAt to EndsAt: the named NodeIDs, or Count free
// nodes of Model.
type ReservationRequest struct {
	UserID   uint
	NodeIDs  []uint
	Model    string
	Count    int
	StartsAt time.Time
	EndsAt   time.Time
	// TimeZone is the IANA zone the times were entered in (empty: UTC).
	TimeZone string
}

// txOptions: on MariaDB each read after the row locks must see what was committed before the
// lock was granted, hence READ COMMITTED; SQLite's single connection serializes everything.
func (s *Store) txOptions() *sql.TxOptions {
	if s.Dialect == "mysql" {
		return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	return nil
}

// lockNodes reads the nodes selected by cond, in id order, locking their rows (SELECT … FOR
// UPDATE) on MariaDB: two reservations of the same node wait for each other here.
func (s *Store) lockNodes(tx *gorm.DB, cond string, args ...any) ([]Node, error) {
	q := tx.Model(&Node{}).Where(cond, args...).Order("id")
	if s.Dialect == "mysql" {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var ns []Node
	if err := q.Find(&ns).Error; err != nil {
		return nil, fmt.Errorf("store: unable to lock nodes: %w", err)
	}
	return ns, nil
}

// unavailable returns the ids, among ids, of nodes that another reservation (not exceptRes)
// holds at some time of [start, end); and, when start is near now, of nodes whose previous
// deployment is not destroyed yet.
func unavailable(tx *gorm.DB, ids []uint, start, end, now time.Time, exceptRes uint) (map[uint]bool, error) {
	busy := map[uint]bool{}
	var overlap []uint
	err := tx.Table("reservation_nodes").Select("reservation_nodes.node_id").
		Joins("JOIN reservations ON reservations.id = reservation_nodes.reservation_id").
		Where("reservation_nodes.node_id IN ? AND reservations.starts_at < ? AND reservations.ends_at > ? AND reservations.id <> ?",
			ids, end, start, exceptRes).
		Pluck("reservation_nodes.node_id", &overlap).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to check reservations: %w", err)
	}
	for _, id := range overlap {
		busy[id] = true
	}
	if start.Before(now.Add(CleanupMargin)) {
		var dirty []uint
		q := unfinished(tx.Model(&Deployment{}).Where("node_id IN ? AND reservation_id <> ?", ids, exceptRes))
		if err := q.Pluck("node_id", &dirty).Error; err != nil {
			return nil, fmt.Errorf("store: unable to check deployments: %w", err)
		}
		for _, id := range dirty {
			busy[id] = true
		}
	}
	return busy, nil
}

// CreateReservation reserves nodes for req.UserID. Inside one transaction it locks the
// candidate node rows, rechecks that none is held by an overlapping reservation, and links the
// chosen ones: a node is never given to two reservations that overlap, however many requests
// race. *ConflictError (errors.Is ErrConflict) says which nodes are taken. The user's quotas
// are checked in the same transaction, under the user's row lock (*QuotaError when exceeded).
func (s *Store) CreateReservation(ctx context.Context, req ReservationRequest, now time.Time) (*Reservation, error) {
	now = now.UTC()
	// Whole seconds: the same value on every database (MariaDB keeps milliseconds, SQLite nanoseconds).
	start, end := req.StartsAt.UTC().Truncate(time.Second), req.EndsAt.UTC().Truncate(time.Second)
	if !end.After(start) {
		return nil, errors.New("store: a reservation must end after it starts")
	}
	if len(req.NodeIDs) == 0 && (req.Model == "" || req.Count < 1) {
		return nil, errors.New("store: a reservation needs nodes")
	}
	r := &Reservation{UserID: req.UserID, StartsAt: start, EndsAt: end, TimeZone: req.TimeZone}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The user first, then the nodes (the order every transaction takes them in): the
		// user's own racing requests wait here, and then see each other's reservations.
		u, err := s.lockUser(tx, req.UserID)
		if err != nil {
			return err
		}
		var chosen []Node
		if len(req.NodeIDs) > 0 {
			ids := uniq(req.NodeIDs)
			nodes, err := s.lockNodes(tx, "id IN ?", ids)
			if err != nil {
				return err
			}
			if len(nodes) != len(ids) {
				return ErrNotFound
			}
			busy, err := unavailable(tx, ids, start, end, now, 0)
			if err != nil {
				return err
			}
			if taken := nodeNames(nodes, busy); len(taken) > 0 {
				return &ConflictError{Nodes: taken, Reason: "already reserved for that time"}
			}
			chosen = nodes
		} else {
			nodes, err := s.lockNodes(tx, "model = ?", req.Model)
			if err != nil {
				return err
			}
			ids := make([]uint, len(nodes))
			for i, n := range nodes {
				ids[i] = n.ID
			}
			busy, err := unavailable(tx, ids, start, end, now, 0)
			if err != nil {
				return err
			}
			sortByName(nodes, func(n Node) string { return n.Name })
			for _, n := range nodes {
				if !busy[n.ID] && len(chosen) < req.Count {
					chosen = append(chosen, n)
				}
			}
			if len(chosen) < req.Count {
				return &ConflictError{Reason: fmt.Sprintf("only %d node(s) of model %s are free for that time", len(chosen), req.Model)}
			}
		}
		if err := checkQuota(tx, u, 0, len(chosen), start, end); err != nil {
			return err
		}
		if err := tx.Omit(clause.Associations).Create(r).Error; err != nil {
			return fmt.Errorf("store: unable to create reservation: %w", err)
		}
		links := make([]map[string]any, len(chosen))
		for i, n := range chosen {
			links[i] = map[string]any{"reservation_id": r.ID, "node_id": n.ID}
		}
		if err := tx.Table("reservation_nodes").Create(links).Error; err != nil {
			return fmt.Errorf("store: unable to link reservation nodes: %w", err)
		}
		r.Nodes = chosen
		return nil
	}, s.txOptions())
	if err != nil {
		return nil, err
	}
	return r, nil
}

func uniq(ids []uint) []uint {
	seen := map[uint]bool{}
	var out []uint
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Reservation returns the reservation with id, with its nodes (and their switch) and user.
func (s *Store) Reservation(ctx context.Context, id uint) (*Reservation, error) {
	var r Reservation
	err := s.db.WithContext(ctx).Preload("Nodes").Preload("Nodes.Switch").Preload("User").First(&r, id).Error
	if err != nil {
		return nil, notFound(err)
	}
	sortByName(r.Nodes, func(n Node) string { return n.Name })
	return &r, nil
}

// UserReservations returns the reservations of user userID that end after since, soonest first.
// userID 0 returns everyone's.
func (s *Store) UserReservations(ctx context.Context, userID uint, since time.Time) ([]Reservation, error) {
	var rs []Reservation
	q := s.db.WithContext(ctx).Preload("Nodes").Preload("User").Where("ends_at > ?", since.UTC()).Order("starts_at, id")
	if userID != 0 {
		q = q.Where("user_id = ?", userID)
	}
	if err := q.Find(&rs).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list reservations: %w", err)
	}
	for i := range rs {
		sortByName(rs[i].Nodes, func(n Node) string { return n.Name })
	}
	return rs, nil
}

// ExtendReservation moves the end of reservation id to newEnd (later than today's end), if no
// other reservation holds one of its nodes by then and the user's quotas allow it; same
// locking as CreateReservation.
func (s *Store) ExtendReservation(ctx context.Context, id uint, newEnd, now time.Time) error {
	newEnd, now = newEnd.UTC().Truncate(time.Second), now.UTC()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r Reservation
		if err := tx.First(&r, id).Error; err != nil {
			return notFound(err)
		}
		if !r.EndsAt.After(now) {
			return &ConflictError{Reason: "this reservation has ended"}
		}
		if !newEnd.After(r.EndsAt) {
			return errors.New("store: an extension must end later than the reservation")
		}
		u, err := s.lockUser(tx, r.UserID)
		if err != nil {
			return err
		}
		var ids []uint
		if err := tx.Table("reservation_nodes").Where("reservation_id = ?", id).Pluck("node_id", &ids).Error; err != nil {
			return err
		}
		if err := checkQuota(tx, u, id, len(ids), r.StartsAt, newEnd); err != nil {
			return err
		}
		nodes, err := s.lockNodes(tx, "id IN ?", ids)
		if err != nil {
			return err
		}
		// Only the added time [EndsAt, newEnd) needs checking; the node cleanup check does not apply.
		busy, err := unavailable(tx, ids, r.EndsAt, newEnd, time.Time{}, id)
		if err != nil {
			return err
		}
		if taken := nodeNames(nodes, busy); len(taken) > 0 {
			return &ConflictError{Nodes: taken, Reason: "reserved by someone else after this reservation"}
		}
		res := tx.Model(&Reservation{}).Where("id = ? AND ends_at = ?", id, r.EndsAt).
			Updates(map[string]any{"ends_at": newEnd, "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("store: unable to extend reservation %d: %w", id, res.Error)
		}
		if res.RowsAffected == 0 {
			return &ConflictError{Reason: "the reservation changed meanwhile; try again"}
		}
		return nil
	}, s.txOptions())
}

// EndReservation ends reservation id now (or drops it when it has not started) and sends its
// deployed nodes to destroy.
func (s *Store) EndReservation(ctx context.Context, id uint, now time.Time) error {
	now = now.UTC()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r Reservation
		if err := tx.First(&r, id).Error; err != nil {
			return notFound(err)
		}
		if r.StartsAt.After(now) {
			return deleteReservations(tx, []uint{id})
		}
		if err := s.destroyDeployments(ctx, tx, "reservation_id = ?", id); err != nil {
			return err
		}
		if !r.EndsAt.After(now) {
			return nil
		}
		return tx.Model(&Reservation{}).Where("id = ?", id).Updates(map[string]any{"ends_at": now, "updated_at": now}).Error
	})
}

// DeployReservation creates one deploy request per node of reservation resID that has no
// deployment yet, each a copy of tmpl. The reservation must be running at now and its nodes
// clean of any earlier deployment.
func (s *Store) DeployReservation(ctx context.Context, resID uint, tmpl Deployment, now time.Time) ([]Deployment, error) {
	now = now.UTC()
	var out []Deployment
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r Reservation
		q := tx
		if s.Dialect == "mysql" {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.First(&r, resID).Error; err != nil {
			return notFound(err)
		}
		if r.StartsAt.After(now) {
			return &ConflictError{Reason: "this reservation has not started yet"}
		}
		if !r.EndsAt.After(now) {
			return &ConflictError{Reason: "this reservation has ended"}
		}
		var ids []uint
		if err := tx.Table("reservation_nodes").Where("reservation_id = ?", resID).Pluck("node_id", &ids).Error; err != nil {
			return err
		}
		var have []uint
		if err := tx.Model(&Deployment{}).Where("reservation_id = ?", resID).Pluck("node_id", &have).Error; err != nil {
			return err
		}
		done := map[uint]bool{}
		for _, id := range have {
			done[id] = true
		}
		var todo []uint
		for _, id := range ids {
			if !done[id] {
				todo = append(todo, id)
			}
		}
		if len(todo) == 0 {
			return &ConflictError{Reason: "every node of this reservation is already deployed"}
		}
		nodes, err := s.lockNodes(tx, "id IN ?", todo)
		if err != nil {
			return err
		}
		busy, err := unavailable(tx, todo, now, r.EndsAt, now, resID)
		if err != nil {
			return err
		}
		var dirty []string
		for _, n := range nodes {
			if busy[n.ID] {
				dirty = append(dirty, n.Name)
			}
		}
		if len(dirty) > 0 {
			return &ConflictError{Nodes: dirty, Reason: "still being cleaned up after the previous user; try again in a minute"}
		}
		var env Environment
		if err := tx.First(&env, tmpl.EnvironmentID).Error; err != nil {
			return notFound(err)
		}
		if err := canRun(process.Deploy, nodes, &env); err != nil {
			return err
		}
		for _, n := range nodes {
			d := tmpl
			d.ID, d.ReservationID, d.NodeID, d.UserID = 0, resID, n.ID, r.UserID
			d.Node, d.Reservation, d.Environment = Node{}, Reservation{}, Environment{}
			out = append(out, d)
		}
		return (&Store{db: tx, Dialect: s.Dialect}).CreateDeployments(ctx, out)
	}, s.txOptions())
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeploymentFilter selects deployments for a list.
type DeploymentFilter struct {
	UserID        uint // 0: everyone's
	ReservationID uint
	IDs           []uint
	// Current keeps the deployments of reservations that end after this time, or that are not
	// destroyed yet.
	Current time.Time
}

// Deployments returns the deployments matching f, with node, environment and reservation.
func (s *Store) Deployments(ctx context.Context, f DeploymentFilter) ([]Deployment, error) {
	q := s.db.WithContext(ctx).Preload("Node").Preload("Environment").Preload("Reservation").
		Joins("JOIN nodes ON nodes.id = deployments.node_id").Order("deployments.reservation_id")
	if f.UserID != 0 {
		q = q.Where("deployments.user_id = ?", f.UserID)
	}
	if f.ReservationID != 0 {
		q = q.Where("deployments.reservation_id = ?", f.ReservationID)
	}
	if f.IDs != nil {
		q = q.Where("deployments.id IN ?", f.IDs)
	}
	if !f.Current.IsZero() {
		// A released node's deployment stays only until it is destroyed.
		q = q.Where("((deployments.reservation_id IN (?) AND deployments.released = ?) OR NOT (deployments.process = ? AND deployments.state = ?))",
			s.db.WithContext(ctx).Model(&Reservation{}).Select("id").Where("ends_at > ?", f.Current.UTC()), false, process.Destroy, process.Destroyed)
	}
	var ds []Deployment
	if err := q.Find(&ds).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list deployments: %w", err)
	}
	sort.SliceStable(ds, func(i, j int) bool {
		if ds[i].ReservationID != ds[j].ReservationID {
			return ds[i].ReservationID < ds[j].ReservationID
		}
		return NameLess(ds[i].Node.Name, ds[j].Node.Name)
	})
	return ds, nil
}

// DeploymentEvents returns the state events of deployment id, oldest first.
func (s *Store) DeploymentEvents(ctx context.Context, id uint) ([]StateEvent, error) {
	var evs []StateEvent
	err := s.db.WithContext(ctx).Where("deployment_id = ?", id).Order("started_at, id").Find(&evs).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to list events of deployment %d: %w", id, err)
	}
	return evs, nil
}

// nodeNames returns the names of the nodes in busy, in the order of nodes.
func nodeNames(nodes []Node, busy map[uint]bool) []string {
	var out []string
	for _, n := range nodes {
		if busy[n.ID] {
			out = append(out, n.Name)
		}
	}
	return out
}
