package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// MaxEndReason bounds the reason an admin gives for ending a reservation, in characters.
const MaxEndReason = 1000

// ErrNoReason: an admin ends a reservation only with a reason for its holder.
var ErrNoReason = errors.New("store: a reason is required")

// lockReservation reads reservation id, locking its row on MariaDB: two requests that change
// the same reservation's nodes wait for each other.
func (s *Store) lockReservation(tx *gorm.DB, id uint) (*Reservation, error) {
	q := tx
	if s.Dialect == "mysql" {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var r Reservation
	if err := q.First(&r, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &r, nil
}

// AdminEndReservation ends reservation id now for reason, on behalf of admin adminID: its
// deployments are destroyed (the nodes are free once they are), and a reservation that has not
// started lets its nodes go at once. The row stays, with the reason, for its holder's pages;
// with mail, an e-mail to the holder is queued in the same transaction (Notification).
func (s *Store) AdminEndReservation(ctx context.Context, id, adminID uint, reason string, now time.Time, mail bool) error {
	now = now.UTC().Truncate(time.Second)
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return ErrNoReason
	}
	if utf8.RuneCountInString(reason) > MaxEndReason {
		return fmt.Errorf("store: the reason is longer than %d characters", MaxEndReason)
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.lockReservation(tx, id)
		if err != nil {
			return err
		}
		if !r.EndsAt.After(now) {
			return &ConflictError{Reason: "this reservation has already ended"}
		}
		var names []string
		if err := tx.Table("reservation_nodes").Joins("JOIN nodes ON nodes.id = reservation_nodes.node_id").
			Where("reservation_nodes.reservation_id = ?", id).Order("nodes.name").Pluck("nodes.name", &names).Error; err != nil {
			return fmt.Errorf("store: unable to read the nodes of reservation %d: %w", id, err)
		}
		future := r.StartsAt.After(now)
		if future {
			// Nothing was deployed yet: the nodes are free for others at once.
			if err := tx.Table("reservation_nodes").Where("reservation_id = ?", id).Delete(nil).Error; err != nil {
				return fmt.Errorf("store: unable to free the nodes of reservation %d: %w", id, err)
			}
		} else if err := s.destroyDeployments(ctx, tx, "reservation_id = ?", id); err != nil {
			return err
		}
		err = tx.Model(&Reservation{}).Where("id = ?", id).Updates(map[string]any{
			"ends_at": now, "ended_by": adminID, "ended_at": now, "end_reason": reason, "updated_at": now}).Error
		if err != nil {
			return fmt.Errorf("store: unable to end reservation %d: %w", id, err)
		}
		if !mail {
			return nil
		}
		var u User
		if err := tx.First(&u, r.UserID).Error; err != nil {
			return notFound(err)
		}
		what := "was ended"
		if future {
			what = "was cancelled before it started"
		}
		body := fmt.Sprintf("Your PiSeduce reservation #%d (%s, %s to %s) %s by an admin.\n\nReason: %s\n\n"+
			"Its nodes are destroyed and given back; they are no longer yours.\n",
			id, strings.Join(names, ", "), inZone(r.StartsAt, r.TimeZone), inZone(r.EndsAt, r.TimeZone), what, reason)
		return queueNotification(tx, Notification{Key: fmt.Sprintf("ended:%d", id), UserID: u.ID, To: u.Email,
			Subject: fmt.Sprintf("Your reservation #%d was ended by an admin", id), Body: body}, now)
	}, s.txOptions())
}

// EndedByAdmin returns the reservations of user userID that an admin ended after since, the
// last one first.
func (s *Store) EndedByAdmin(ctx context.Context, userID uint, since time.Time) ([]Reservation, error) {
	var rs []Reservation
	err := s.db.WithContext(ctx).Where("user_id = ? AND ended_by <> 0 AND ended_at > ?", userID, since.UTC()).
		Order("ended_at DESC, id DESC").Find(&rs).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to list ended reservations: %w", err)
	}
	return rs, nil
}

// ReleaseNode gives node nodeID of reservation resID back before the reservation ends: the
// reservation stops holding it (others may reserve it, and can deploy it once its deployment
// is destroyed: see unavailable), its deployment is destroyed and marked released, and the
// rest of the reservation stays. The last node is not released: the reservation is ended.
func (s *Store) ReleaseNode(ctx context.Context, resID, nodeID uint, now time.Time) error {
	now = now.UTC()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.lockReservation(tx, resID)
		if err != nil {
			return err
		}
		if !r.EndsAt.After(now) {
			return &ConflictError{Reason: "this reservation has ended"}
		}
		var ids []uint
		if err := tx.Table("reservation_nodes").Where("reservation_id = ?", resID).Pluck("node_id", &ids).Error; err != nil {
			return fmt.Errorf("store: unable to read the nodes of reservation %d: %w", resID, err)
		}
		held := false
		for _, id := range ids {
			held = held || id == nodeID
		}
		if !held {
			return ErrNotFound
		}
		if len(ids) == 1 {
			return &ConflictError{Reason: "it is the last node of this reservation: end the reservation instead"}
		}
		if err := tx.Table("reservation_nodes").Where("reservation_id = ? AND node_id = ?", resID, nodeID).Delete(nil).Error; err != nil {
			return fmt.Errorf("store: unable to release the node: %w", err)
		}
		if err := s.destroyDeployments(ctx, tx, "reservation_id = ? AND node_id = ?", resID, nodeID); err != nil {
			return err
		}
		return tx.Model(&Deployment{}).Where("reservation_id = ? AND node_id = ?", resID, nodeID).
			Updates(map[string]any{"released": true, "updated_at": now}).Error
	}, s.txOptions())
}

// inZone formats t in the IANA zone tz (UTC when empty or unknown), as the pages do.
func inZone(t time.Time, tz string) string {
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
}
