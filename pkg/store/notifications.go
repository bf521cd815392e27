package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/piseduce/piseduce/pkg/process"
)

// Notification is one e-mail of the outbox: pifrontend and pitasks queue them, pitasks alone
// sends them (pkg/notify). Key names the event (one row per event: queueing it again does
// nothing), so an event is mailed once however often it is seen.
type Notification struct {
	ID      uint   `gorm:"primaryKey"`
	Key     string `gorm:"column:event_key;size:191;uniqueIndex;not null"`
	UserID  uint   `gorm:"index;not null"`
	To      string `gorm:"column:to_address;size:255;not null"`
	Subject string `gorm:"size:255;not null"`
	Body    string `gorm:"type:text"`
	// SentAt is set once the SMTP server took the message; until then a sender retries it
	// from NextAttemptAt, at most MaxNotificationAttempts times.
	SentAt        *time.Time
	NextAttemptAt time.Time `gorm:"index"`
	Attempts      int       `gorm:"not null;default:0"`
	LastError     string    `gorm:"type:text"`
	// ClaimOwner is the pitasks process sending it, until ClaimUntil.
	ClaimOwner string `gorm:"size:64"`
	ClaimUntil time.Time
	CreatedAt  time.Time
}

// MaxNotificationAttempts: a message the SMTP server refused this many times is given up.
const MaxNotificationAttempts = 12

// NotifyWindow bounds how far back QueueNotifications looks for events: a pitasks stopped
// longer than that does not mail old news when it starts again.
const NotifyWindow = 24 * time.Hour

// queueNotification adds n to the outbox unless its event is there already.
func queueNotification(tx *gorm.DB, n Notification, now time.Time) error {
	n.CreatedAt, n.NextAttemptAt, n.ClaimUntil = now, now, now
	if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "event_key"}}, DoNothing: true}).Create(&n).Error; err != nil {
		return fmt.Errorf("store: unable to queue the notification %s: %w", n.Key, err)
	}
	return nil
}

// SetNotify turns user id's e-mail notifications on (from now) or off.
func (s *Store) SetNotify(ctx context.Context, id uint, on bool, now time.Time) error {
	var since any // NULL: off
	if on {
		since = now.UTC().Truncate(time.Second)
	}
	res := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", id).Updates(map[string]any{"notify_since": since, "updated_at": now.UTC()})
	if res.Error != nil {
		return fmt.Errorf("store: unable to save the notification choice: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// QueueNotifications queues the e-mails of the events seen at now, for the users who asked
// for them, since they asked: a deployment reached deployed, lost or failed; a running
// reservation ends within the hour. Each event is queued once (see Notification.Key).
func (s *Store) QueueNotifications(ctx context.Context, now time.Time) (int, error) {
	now = now.UTC()
	db := s.db.WithContext(ctx)
	var deps []struct {
		ID         uint
		Generation int64
		Process    string
		State      process.StateName
		Name       string
		NodeName   string
		UserID     uint
		Email      string
	}
	err := db.Table("deployments").
		Select("deployments.id, deployments.generation, deployments.process, deployments.state, deployments.name, nodes.name AS node_name, users.id AS user_id, users.email").
		Joins("JOIN users ON users.id = deployments.user_id").Joins("JOIN nodes ON nodes.id = deployments.node_id").
		Where("users.notify_since IS NOT NULL AND users.email NOT LIKE ?", "%"+deletedDomain).
		Where("deployments.updated_at >= users.notify_since AND deployments.updated_at > ?", now.Add(-NotifyWindow)).
		Where("((deployments.process = ? AND deployments.state = ?) OR deployments.state IN ?)",
			process.Deploy, process.Deployed, []process.StateName{process.Lost, process.Failed}).
		Order("deployments.id").Scan(&deps).Error
	if err != nil {
		return 0, fmt.Errorf("store: unable to find deployment events: %w", err)
	}
	var ending []struct {
		ID       uint
		EndsAt   time.Time
		TimeZone string
		UserID   uint
		Email    string
	}
	err = db.Table("reservations").Select("reservations.id, reservations.ends_at, reservations.time_zone, users.id AS user_id, users.email").
		Joins("JOIN users ON users.id = reservations.user_id").
		Where("users.notify_since IS NOT NULL AND users.email NOT LIKE ?", "%"+deletedDomain).
		Where("reservations.starts_at <= ? AND reservations.ends_at > ? AND reservations.ends_at <= ?", now, now, now.Add(time.Hour)).
		Order("reservations.id").Scan(&ending).Error
	if err != nil {
		return 0, fmt.Errorf("store: unable to find ending reservations: %w", err)
	}
	var ns []Notification
	for _, d := range deps {
		what := map[process.StateName]string{
			process.Deployed: "is deployed: the node runs your system",
			process.Lost:     "is lost: the node stopped answering (see its page)",
			process.Failed:   "failed (see its page for the error)",
		}[d.State]
		label := d.NodeName
		if d.Name != "" {
			label = d.Name + " on " + d.NodeName
		}
		ns = append(ns, Notification{Key: fmt.Sprintf("deployment:%d:%d:%s", d.ID, d.Generation, d.State), UserID: d.UserID, To: d.Email,
			Subject: fmt.Sprintf("%s: %s", d.NodeName, d.State),
			Body:    fmt.Sprintf("Your deployment %s (%s) %s.\n", label, d.Process, what)})
	}
	for _, r := range ending {
		ns = append(ns, Notification{Key: fmt.Sprintf("ending:%d:%d", r.ID, r.EndsAt.Unix()), UserID: r.UserID, To: r.Email,
			Subject: fmt.Sprintf("Your reservation #%d ends within the hour", r.ID),
			Body: fmt.Sprintf("Your PiSeduce reservation #%d ends at %s; its nodes are destroyed then.\n"+
				"Extend it on the My deployments page if you need them longer.\n", r.ID, inZone(r.EndsAt, r.TimeZone))})
	}
	for _, n := range ns {
		if err := queueNotification(db, n, now); err != nil {
			return 0, err
		}
	}
	return len(ns), nil
}

// ClaimNotifications takes up to limit messages due at now for owner, until now+lease; a
// conditional UPDATE per row, so two pitasks never take the same message.
func (s *Store) ClaimNotifications(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Notification, error) {
	now = now.UTC()
	db := s.db.WithContext(ctx)
	var due []Notification
	err := db.Where("sent_at IS NULL AND attempts < ? AND next_attempt_at <= ? AND claim_until <= ?", MaxNotificationAttempts, now, now).
		Order("next_attempt_at, id").Limit(limit).Find(&due).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to find notifications to send: %w", err)
	}
	var out []Notification
	for _, n := range due {
		res := db.Model(&Notification{}).Where("id = ? AND sent_at IS NULL AND claim_until <= ?", n.ID, now).
			Updates(map[string]any{"claim_owner": owner, "claim_until": now.Add(lease)})
		if res.Error != nil {
			return out, fmt.Errorf("store: unable to claim notification %d: %w", n.ID, res.Error)
		}
		if res.RowsAffected == 1 {
			n.ClaimOwner = owner
			out = append(out, n)
		}
	}
	return out, nil
}

// NotificationSent records that the SMTP server took message id.
func (s *Store) NotificationSent(ctx context.Context, id uint, owner string, now time.Time) error {
	return s.db.WithContext(ctx).Model(&Notification{}).Where("id = ? AND claim_owner = ?", id, owner).
		Updates(map[string]any{"sent_at": now.UTC(), "attempts": gorm.Expr("attempts + 1"), "last_error": ""}).Error
}

// NotificationFailed records a failed attempt at message id, to try again from retryAt.
func (s *Store) NotificationFailed(ctx context.Context, id uint, owner string, sendErr error, retryAt time.Time) error {
	msg := sendErr.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	return s.db.WithContext(ctx).Model(&Notification{}).Where("id = ? AND claim_owner = ?", id, owner).
		Updates(map[string]any{"attempts": gorm.Expr("attempts + 1"), "last_error": strings.ToValidUTF8(msg, "?"),
			"next_attempt_at": retryAt.UTC(), "claim_until": retryAt.UTC()}).Error
}

// Notifications returns user userID's messages of the outbox (0: everyone's), oldest first.
func (s *Store) Notifications(ctx context.Context, userID uint) ([]Notification, error) {
	q := s.db.WithContext(ctx).Order("id")
	if userID != 0 {
		q = q.Where("user_id = ?", userID)
	}
	var ns []Notification
	if err := q.Find(&ns).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list notifications: %w", err)
	}
	return ns, nil
}
